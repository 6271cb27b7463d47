"""Ray, live: the GCS, and the dashboard's REST and state API (version, GCS health, nodes,
actors, pending tasks, placement groups, jobs). `--ray-address` is a GCS `host:port`, a `ray://`
client address or the dashboard URL; RAY_AUTH_TOKEN, when set, is sent as the Ray auth token."""

from __future__ import annotations

import os
import platform

import httpx

from doctor.sources.probe import Deadline, Probe, describe, failure_kind, tcp_probe
from service.config import RAY_DASHBOARD_PORT

STATE_LIMIT = 2000
NODE_FIELDS = ("node_id", "node_ip", "node_name", "is_head_node", "state", "state_message")
ACTOR_FIELDS = (
    "actor_id",
    "class_name",
    "name",
    "ray_namespace",
    "state",
    "pid",
    "node_id",
    "job_id",
    "num_restarts",
    "required_resources",
)
TASK_FIELDS = ("task_id", "name", "state", "type", "job_id", "actor_id", "required_resources")
JOB_FIELDS = ("submission_id", "job_id", "status", "entrypoint", "start_time", "end_time")
# Ray 2.60's state API has no strategy field; stats.scheduling_state says INFEASIBLE or
# NO_RESOURCES for a PENDING group.
PLACEMENT_GROUP_FIELDS = ("placement_group_id", "name", "state", "bundles", "stats")
PENDING_STATES = "PENDING_NODE_ASSIGNMENT"


def addresses(ray_address: str, dashboard_url: str | None = None) -> tuple[str | None, str]:
    """(GCS host:port or None, dashboard URL) of what the user gave."""
    if ray_address.startswith(("http://", "https://")):
        return None, ray_address.rstrip("/")
    host_port = ray_address.split("://", 1)[-1]
    host = host_port.rsplit(":", 1)[0] if ":" in host_port else host_port
    gcs = None if ray_address.startswith("ray://") else host_port
    return gcs, (dashboard_url or f"http://{host}:{RAY_DASHBOARD_PORT}").rstrip("/")


def client_versions() -> dict:
    """The Ray and Python of the machine the doctor runs on (a Ray client's view)."""
    try:
        from importlib.metadata import version

        ray_version = version("ray")
    except Exception:  # ray not installed where the doctor runs
        ray_version = None
    return {"ray": ray_version, "python": ".".join(platform.python_version_tuple()[:2])}


def read_ray(
    ray_address: str, dashboard_url: str | None, deadline: Deadline, token: str | None = None
) -> tuple[dict, list]:
    gcs, dashboard = addresses(ray_address, dashboard_url)
    probes: list[Probe] = []
    state: dict = {"address": ray_address, "dashboard_url": dashboard, "client": client_versions()}
    if gcs and ":" in gcs:
        host, port = gcs.rsplit(":", 1)
        if port.isdigit():
            probe = tcp_probe("ray-gcs", host, int(port), deadline)
            probes.append(probe)
            state["gcs_reachable"] = probe.ok
    headers = {}
    token = token or os.environ.get("RAY_AUTH_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    with httpx.Client(base_url=dashboard, headers=headers, timeout=deadline.timeout()) as http:

        def get(path: str):
            response = http.get(path, timeout=deadline.timeout())
            if response.status_code in (401, 403):
                raise PermissionError(f"HTTP {response.status_code} from {dashboard}{path}")
            response.raise_for_status()
            return response

        try:
            state["version"] = get("/api/version").json()
        except (httpx.HTTPError, PermissionError, ValueError) as error:
            kind = "auth" if isinstance(error, PermissionError) else failure_kind(error)
            probes.append(Probe("ray-dashboard", dashboard, False, kind, describe(error)))
            state["dashboard_reachable"] = False
            return state, probes
        probes.append(Probe("ray-dashboard", dashboard, True))
        state["dashboard_reachable"] = True
        for key, call in (
            ("gcs_health", lambda: _gcs_health(get)),
            ("nodes", lambda: _listing(get, "nodes", NODE_FIELDS, extra=("resources_total",))),
            ("actors", lambda: _listing(get, "actors", ACTOR_FIELDS)),
            ("pending_tasks", lambda: _pending_tasks(get)),
            (
                "placement_groups",
                lambda: _listing(get, "placement_groups", PLACEMENT_GROUP_FIELDS),
            ),
            (
                "jobs",
                lambda: [_pick(j, JOB_FIELDS + ("driver_info",)) for j in get("/api/jobs/").json()],
            ),
        ):
            if deadline.expired:
                state.setdefault("errors", {})[key] = "the run's deadline passed first"
                continue
            try:
                state[key] = call()
            except (httpx.HTTPError, PermissionError, ValueError, KeyError, TypeError) as error:
                state.setdefault("errors", {})[key] = describe(error)
    return state, probes


def _pick(item: dict, fields) -> dict:
    return {k: item.get(k) for k in fields}


def _gcs_health(get) -> dict:
    try:
        response = get("/api/gcs_healthz")
        return {"healthy": True, "detail": response.text.strip()[:200]}
    except httpx.HTTPStatusError as error:
        return {"healthy": False, "detail": error.response.text.strip()[:300]}


def _listing(get, what: str, fields, extra=()) -> list[dict]:
    data = get(f"/api/v0/{what}?detail=1&limit={STATE_LIMIT}").json()
    return [_pick(item, fields + tuple(extra)) for item in data["data"]["result"]["result"]]


def _pending_tasks(get) -> list[dict]:
    query = (
        f"/api/v0/tasks?detail=1&limit={STATE_LIMIT}"
        f"&filter_keys=state&filter_predicates=%3D&filter_values={PENDING_STATES}"
    )
    data = get(query).json()
    return [_pick(item, TASK_FIELDS) for item in data["data"]["result"]["result"]]
