"""What the live state says, read the same way by every live check: the live workers (the
service's own rule, with the deployment's worker TTL), the pool's worker actor class, and the
resource a probe names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from doctor.state import Probe
from service import records
from service.config import Settings

if TYPE_CHECKING:
    from doctor.inventory import Inventory

# The class name Ray lists for the pool's GenerationWorker actors (service.pool._ActorWorker).
WORKER_CLASS = "_ActorWorker"
WORKER_TTL_SETTING = "MOCHI_WORKER_TTL_SECONDS"


@dataclass(frozen=True)
class WorkerTtl:
    """How long after its last heartbeat a worker still counts as live, and who says so."""

    seconds: float
    source: str

    def __str__(self) -> str:
        return f"{self.seconds:g}s ({self.source})"


def worker_ttl(inventory: Inventory) -> WorkerTtl:
    """The deployment's MOCHI_WORKER_TTL_SECONDS, from a ConfigMap or a pod's env in the input;
    else the service's default, assumed: the service keeps no TTL in Redis (and the settings
    ConfigMap infra renders leaves it at the default)."""
    return _deployed_ttl(inventory) or WorkerTtl(
        Settings.worker_ttl_seconds,
        f"the service's default, assumed: the input sets no {WORKER_TTL_SETTING}",
    )


def _deployed_ttl(inventory: Inventory) -> WorkerTtl | None:
    for config_map in inventory.of("ConfigMap"):
        if seconds := _seconds((config_map.get("data") or {}).get(WORKER_TTL_SETTING)):
            name = (config_map.get("metadata") or {}).get("name")
            return WorkerTtl(seconds, f"ConfigMap {name} {WORKER_TTL_SETTING}")
    for workload in inventory.workloads:  # the ConfigMaps their env refers to are read above
        for container in workload.containers:
            setting = workload.env(container).get(WORKER_TTL_SETTING)
            if setting is not None and (seconds := _seconds(setting.value)):
                return WorkerTtl(seconds, f"{workload.resource} env {WORKER_TTL_SETTING}")
    return None


def _seconds(value) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


def live_workers(inventory: Inventory, ttl: WorkerTtl | None = None) -> dict[str, dict]:
    """The registrations of the workers seen within the worker TTL, by the service's own rule
    (a read without a server time: every worker it saw)."""
    jobs = inventory.live.jobs
    if jobs is None:
        return {}
    seconds = (ttl or worker_ttl(inventory)).seconds
    return records.live_workers(jobs.workers_seen, jobs.workers, jobs.server_time or 0, seconds)


def resource_of(probe: Probe) -> str:
    return probe.resource or component_resource(probe.component, probe.target)


def component_resource(component: str, target: str) -> str:
    """How a finding names a component at an address: redis://host:port, ray://..., api://..."""
    target = str(target or "")
    host_port = urlsplit(target).netloc.rsplit("@", 1)[-1] if "://" in target else target
    if component == "redis":
        return f"redis://{host_port}"
    if component in ("ray-gcs", "ray-dashboard", "ray"):
        return f"ray://{host_port}"
    if component == "api":
        return f"api://{host_port}"
    if component == "kubernetes":
        return f"kubernetes://{host_port or target}"
    return target
