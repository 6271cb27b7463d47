"""Every check module; importing this package registers them all."""

from doctor.checks import (  # noqa: F401
    availability,
    connectivity,
    gpu_usage,
    jobs,
    memory,
    permissions,
    quota,
    ray,
    ray_state,
    reachability,
    redis_config,
    security,
    service,
)
