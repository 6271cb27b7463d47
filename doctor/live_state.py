"""What the live state says, read the same way by every live check: the live workers (the
service's own rule), the pool's worker actor class, and the resource a probe names."""

from __future__ import annotations

from urllib.parse import urlsplit

from service import records
from service.config import Settings

# The class name Ray lists for the pool's GenerationWorker actors (service.pool._ActorWorker).
WORKER_CLASS = "_ActorWorker"


def live_workers(state: dict) -> dict[str, dict]:
    """By the service's own rule, with the TTL the read used (snapshots recorded before it was
    kept: the service's default)."""
    ttl = state.get("worker_ttl_seconds") or Settings.worker_ttl_seconds
    seen = state.get("workers_seen") or {}
    now = state.get("server_time") or 0
    return records.live_workers(seen, state.get("workers") or {}, now, ttl)


def resource_of(probe: dict) -> str:
    if probe.get("resource"):
        return probe["resource"]
    target = str(probe.get("target", ""))
    component = probe.get("component")
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
