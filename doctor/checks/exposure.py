"""Exposure: the Ray head's unauthenticated ports (GCS, client, dashboard) reachable from outside
the cluster, by a Service type, a KubeRay head Service, an Ingress or a Gateway API route. A
route or load balancer to the Serve or metrics port alone exposes no control port."""

from __future__ import annotations

from doctor.finding import Category, Severity
from doctor.inventory import Inventory, Workload, name_of, namespace_of
from doctor.kuberay import created_by
from doctor.raystart import listening_ports
from doctor.registry import Hit, check

EXPOSED_TYPES = ("LoadBalancer", "NodePort")
# KubeRay's head port names, as listening_ports() calls them.
PORT_NAMES = {"gcs-server": "GCS", "gcs": "GCS", "client": "Ray Client", "dashboard": "dashboard"}


def control_ports(workload: Workload) -> dict[int, str]:
    """port -> what, for the head's GCS, Ray Client and dashboard ports."""
    return {port: what for what, port in listening_ports(workload).items() if what != "metrics"}


def _target_number(target, heads: list[Workload]) -> int | None:
    """A Service targetPort as a number: named ports resolve through the head containers."""
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    for head in heads:
        for container in head.containers:
            for port in container.get("ports") or []:
                if port.get("name") == target and str(port.get("containerPort", "")).isdigit():
                    return int(port["containerPort"])
    return None


def forwarded_control_ports(inventory: Inventory, service: dict, only=None) -> list[str]:
    """The head control ports a Service forwards to ('dashboard port 8265'); `only` limits the
    Service ports looked at to one port number or name."""
    heads = [w for w in inventory.selected_workloads(service) if w.ray_role == "head"]
    listening = {port: what for head in heads for port, what in control_ports(head).items()}
    found = []
    for port in (service.get("spec") or {}).get("ports") or []:
        if only is not None and only not in (port.get("port"), port.get("name")):
            continue
        number = _target_number(port.get("targetPort", port.get("port")), heads)
        if number in listening:
            found.append(f"{listening[number]} port {port.get('port')}")
    return found


def _reported_as(obj: dict, what: str) -> tuple[str, str]:
    """(resource, how a message names it): an object the doctor derived from a KubeRay object
    is reported on that object."""
    name = name_of(obj)
    owner = created_by(obj)
    if owner:
        return owner, f"the {what} KubeRay creates ({name})"
    return f"{obj.get('kind')}/{namespace_of(obj)}/{name}", f"{obj.get('kind')} {name}"


@check(
    code="SEC001",
    severity=Severity.ERROR,
    category=Category.SECURITY,
    summary="The Ray dashboard, client or GCS port is reachable from outside the cluster",
    fix="Make the Service ClusterIP (serviceType: ClusterIP for KubeRay) and reach the dashboard "
    "with kubectl port-forward; Ray has no authentication on these ports.",
)
def ray_exposed(inventory: Inventory):
    yield from _exposed_services(inventory)
    yield from _exposed_unnamed_heads(inventory)
    yield from _exposed_by_ingress(inventory)
    yield from _exposed_by_route(inventory)


def _exposed_services(inventory: Inventory):
    for service in inventory.services.values():
        kind = (service.get("spec") or {}).get("type") or "ClusterIP"
        if kind not in EXPOSED_TYPES:
            continue
        exposed = forwarded_control_ports(inventory, service)
        if exposed:
            resource, named = _reported_as(service, "head Service")
            yield Hit(
                resource,
                f"{named} of type {kind} publishes the Ray head's {', '.join(exposed)}: anyone "
                "who reaches a node or the load balancer can run code on the cluster",
                f"type: {kind}",
            )


def _exposed_unnamed_heads(inventory: Inventory):
    """RayJob and RayCronJob clusters get a head Service named after a generated cluster name;
    the doctor derives no Service for them, so their serviceType is judged here."""
    for cluster in inventory.kuberay_clusters:
        kind = cluster.head_service_type
        if cluster.kind not in ("RayJob", "RayCronJob") or kind not in EXPOSED_TYPES:
            continue
        ports = cluster.head_ports().items()
        exposed = [f"{PORT_NAMES[n]} port {p}" for n, p in ports if n in PORT_NAMES]
        if exposed:
            yield Hit(
                f"{cluster.kind}/{cluster.namespace}/{cluster.owner_name}",
                f"{cluster.spec_path}.headGroupSpec.serviceType {kind} publishes the Ray head's "
                f"{', '.join(exposed)} to anyone who reaches a node or the load balancer",
                f"serviceType: {kind}",
            )


def _ingress_backends(ingress: dict):
    """(host, path, service name, port number or name) of every Ingress backend."""
    spec = ingress.get("spec") or {}
    default = spec.get("defaultBackend") or spec.get("backend")
    if default:
        yield "*", "/", *_backend(default)
    for rule in spec.get("rules") or []:
        for path in (rule.get("http") or {}).get("paths") or []:
            yield rule.get("host", "*"), path.get("path", "/"), *_backend(path.get("backend") or {})


def _backend(backend: dict) -> tuple[str | None, object]:
    if "service" in backend:  # networking.k8s.io/v1
        service = backend.get("service") or {}
        port = service.get("port") or {}
        return service.get("name"), port.get("number", port.get("name"))
    return backend.get("serviceName"), backend.get("servicePort")  # extensions/v1beta1


def _exposed_by_ingress(inventory: Inventory):
    for ingress in inventory.ingresses:
        namespace = namespace_of(ingress)
        for host, path, service_name, port in _ingress_backends(ingress):
            service = inventory.services.get((namespace, service_name))
            if service is None or port is None:
                continue
            exposed = forwarded_control_ports(inventory, service, only=port)
            if not exposed:
                continue
            resource, named = _reported_as(ingress, "Ingress")
            yield Hit(
                resource,
                f"{named} routes {host}{path} to the Ray head's "
                f"{', '.join(exposed)} (Service {service_name})",
                f"backend: {service_name}:{port}",
            )


def _exposed_by_route(inventory: Inventory):
    for route in inventory.of("HTTPRoute") + inventory.of("GRPCRoute"):
        for rule in (route.get("spec") or {}).get("rules") or []:
            for ref in rule.get("backendRefs") or []:
                if (ref.get("kind") or "Service") != "Service" or ref.get("port") is None:
                    continue
                namespace = ref.get("namespace") or namespace_of(route)
                service = inventory.services.get((namespace, ref.get("name")))
                if service is None:
                    continue
                exposed = forwarded_control_ports(inventory, service, only=ref["port"])
                if exposed:
                    yield Hit(
                        f"{route.get('kind')}/{namespace_of(route)}/{name_of(route)}",
                        f"{route.get('kind')} routes to the Ray head's {', '.join(exposed)} "
                        f"(Service {ref.get('name')})",
                        f"backendRefs: {ref.get('name')}:{ref['port']}",
                    )
