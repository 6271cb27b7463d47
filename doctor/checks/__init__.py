"""Every check module, named here once; importing this package registers their checks."""

from importlib import import_module

CHECK_MODULE_NAMES = (
    "availability",
    "connectivity",
    "exposure",
    "gpu_usage",
    "input_values",
    "job_groups",
    "jobs",
    "kuberay_status",
    "memory",
    "permissions",
    "quota",
    "ray",
    "ray_state",
    "reachability",
    "redis_config",
    "redis_server",
    "scheduling",
    "secrets",
    "security",
    "service",
)
CHECK_MODULES = tuple(import_module(f"doctor.checks.{name}") for name in CHECK_MODULE_NAMES)
