"""Every check module; importing this package registers them all."""

from doctor.checks import (  # noqa: F401
    availability,
    connectivity,
    exposure,
    gpu_usage,
    input_values,
    job_groups,
    jobs,
    kuberay_status,
    memory,
    permissions,
    quota,
    ray,
    ray_state,
    reachability,
    redis_config,
    redis_server,
    scheduling,
    secrets,
    security,
    service,
)

# The modules whose checks read live state (Ray, Redis, the job store, probes), not objects.
LIVE_MODULES = frozenset(
    module.__name__ for module in (gpu_usage, jobs, ray_state, reachability, redis_config, service)
)
