"""Every check module; importing this package registers them all."""

from doctor.checks import (  # noqa: F401
    availability,
    connectivity,
    memory,
    permissions,
    quota,
    ray,
    security,
)
