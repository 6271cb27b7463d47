"""Reachability, live: components the doctor (or a pod, with --probe-from-pod) cannot connect
to, with the failure named; an unhealthy Ray GCS; Ray and Python versions that differ between
the client, the head and the workers."""

from __future__ import annotations

from doctor.finding import Category, Severity
from doctor.images import parse_image
from doctor.inventory import Inventory
from doctor.live_state import component_resource, resource_of
from doctor.registry import Hit, check
from doctor.state import RayState

FAILURES = {
    "dns": "the name does not resolve (DNS)",
    "refused": "the connection is refused: nothing listens there",
    "timeout": "no answer before the timeout (firewalled, blackholed or hung)",
    "tls": "the TLS handshake failed",
    "auth": "the credentials are refused (auth)",
    "http": "it answers with an HTTP error",
    "error": "it fails",
}
COMPONENT_FIX = {
    "redis": "Start Redis or fix --redis-url / MOCHI_REDIS_URL (and MOCHI_REDIS_PASSWORD).",
    "ray-gcs": "Start the Ray head or fix the GCS address (host:port, default port 6379).",
    "ray-dashboard": "Start the Ray dashboard (--include-dashboard=true) or fix its URL; set "
    "RAY_AUTH_TOKEN when the cluster requires a token.",
    "api": "Start the API or fix --api-url.",
    "kubernetes": "Fix the kubeconfig / --context, or run where the API server is reachable.",
    "address": "Make the address resolve and serve from inside the cluster (Service name, port).",
}


@check(
    code="NET006",
    severity=Severity.ERROR,
    category=Category.CONNECTIVITY,
    summary="A component cannot be reached (DNS, refused, timeout, TLS, auth)",
    fix="Make the component reachable at the address the deployment uses; the evidence names how "
    "the connection failed.",
    needs_live=True,
)
def unreachable(inventory: Inventory):
    for probe in inventory.live.probes or ():
        if probe.ok or probe.component == "output":
            continue
        kind = probe.kind or "error"
        where = probe.where or "doctor"
        origin = "from the doctor" if where == "doctor" else f"from {where}"
        yield Hit(
            resource_of(probe),
            f"{probe.component} at {probe.target} is unreachable {origin}: "
            f"{FAILURES.get(kind, kind)}",
            f"{kind}: {probe.detail}"[:400],
            fix=COMPONENT_FIX.get(probe.component),
        )


def _ray_resource(ray: RayState) -> str:
    return component_resource("ray", ray.address or ray.dashboard_url)


@check(
    code="RAY005",
    severity=Severity.ERROR,
    category=Category.AVAILABILITY,
    summary="The Ray GCS reports itself unhealthy",
    fix=(
        "Look at the head's gcs_server.out; restart the head pod (its GCS holds the cluster state)."
    ),
    needs_live=True,
)
def gcs_unhealthy(inventory: Inventory):
    ray = inventory.live.ray
    if ray is None:
        return
    health = ray.gcs_health
    if health is not None and health.get("healthy") is False:
        yield Hit(
            _ray_resource(ray),
            "the dashboard answers but the GCS health check fails: nodes cannot register, "
            "actors cannot be created",
            f"GET /api/gcs_healthz: {health.get('detail') or 'unhealthy'}",
        )
    elif ray.gcs_reachable is False and ray.dashboard_reachable:
        yield Hit(
            _ray_resource(ray),
            "the dashboard answers but the GCS port does not accept connections",
            f"GCS {ray.address} unreachable",
        )


@check(
    code="RAY006",
    severity=Severity.WARNING,
    category=Category.CONNECTIVITY,
    summary="Ray or Python version differs between the client, the head and the workers",
    fix="Run one Ray version and one Python minor version everywhere: the same image tag for the "
    "head and the workers, and the same pins where the driver runs.",
    needs_live=True,
)
def live_version_skew(inventory: Inventory):
    ray = inventory.live.ray
    head = ray.ray_version if ray is not None else None
    if not head:
        return
    resource = _ray_resource(ray)
    client = ray.client
    if client.get("ray") and client["ray"] != head:
        yield Hit(
            resource,
            f"the doctor's machine runs Ray {client['ray']} but the head runs Ray {head}: a "
            "driver or Ray Client from here is refused",
            f"client ray {client['ray']} vs head ray_version {head}",
            severity=Severity.INFO,
        )
    pythons: dict[str, set[str]] = {}
    for pod in inventory.of("Pod"):
        labels = (pod.get("metadata") or {}).get("labels") or {}
        role = labels.get("ray.io/node-type")
        if role not in ("head", "worker"):
            continue
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            image = parse_image(status.get("image") or "")
            if not image.is_ray:
                continue
            name = (pod.get("metadata") or {}).get("name")
            if image.ray_version() and image.ray_version() != head:
                yield Hit(
                    f"Pod/{(pod.get('metadata') or {}).get('namespace')}/{name}",
                    f"{role} pod {name} runs Ray {image.ray_version()} but the head reports "
                    f"Ray {head}: it cannot join the cluster",
                    f"image {status.get('image')}",
                )
            if image.python_minor():
                pythons.setdefault(image.python_minor(), set()).add(f"{role} {name}")
    if len(pythons) > 1:
        yield Hit(
            resource,
            "Ray pods run different Python versions; objects pickled on one fail on another",
            "; ".join(f"py{v}: {', '.join(sorted(p))}" for v, p in sorted(pythons.items())),
        )
