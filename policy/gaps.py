"""Rules of the former pack that no doctor check covers yet, each kept only for what the doctor
misses, with the check that should take it over. Each is shaped as a doctor check (a function
of the inventory yielding Hits) so that moving it under that code is a move, not a rewrite;
once the doctor has it, its entry here goes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from doctor.checks.exposure import EXPOSED_TYPES, forwarded_control_ports
from doctor.checks.memory import object_store_flag
from doctor.images import MUTABLE_TAGS
from doctor.inventory import Inventory, Workload
from doctor.objects import resource_id
from doctor.registry import Hit
from doctor.resources import amount_or_none, format_gib
from service.image_refs import parse_image

# Ray's GCS, dashboard (its Jobs API runs code) and client ports; Redis listens on 6379 too.
RAY_PORT_NUMBERS = (6379, 8265, 10001)


@dataclass(frozen=True)
class Gap:
    name: str
    successor: str  # the doctor check that should take this rule over
    run: Callable[[Inventory], Iterable[Hit]]


def _containers(inventory: Inventory) -> Iterable[tuple[Workload, dict]]:
    for workload in inventory.workloads:
        for container in workload.all_containers:
            yield workload, container


def image_pinned(inventory: Inventory) -> Iterable[Hit]:
    """SEC006 judges a mutable tag only under imagePullPolicy IfNotPresent; `:latest` or no tag
    is not reproducible under any pull policy."""
    for workload, container in _containers(inventory):
        image = str(container.get("image", ""))
        ref = parse_image(image)
        if not ref.digest and (ref.tag is None or ref.tag in MUTABLE_TAGS):
            yield Hit(
                workload.resource,
                f"{workload.label} container {container.get('name')}: image {image!r} is not "
                "pinned to a version tag or a digest",
                f"image: {image}",
            )


def restricted_security_context(inventory: Inventory) -> Iterable[Hit]:
    """SEC004 reports root (runAsUser 0) and privileged; the restricted profile's other fields
    are not read by any doctor check."""
    for workload, container in _containers(inventory):
        context = workload.security_context(container)
        missing = []
        if context.get("runAsNonRoot") is not True:
            missing.append("must run as non-root (runAsNonRoot: true)")
        if context.get("allowPrivilegeEscalation") is not False:
            missing.append("allowPrivilegeEscalation must be false")
        if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
            missing.append("capabilities must drop ALL")
        if (context.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            missing.append("seccompProfile must be RuntimeDefault")
        if missing:
            yield Hit(
                workload.resource,
                f"{workload.label} container {container.get('name')}: {'; '.join(missing)}",
                f"securityContext (pod and container): {context}",
            )


def resources_set(inventory: Inventory) -> Iterable[Hit]:
    """MEM003 compares a Ray pod's request with its limit when both are set; none reads a
    missing one. (A GPU request other than its limit is MEM003's on Ray pods, and the API
    server refuses it on any other pod.)"""
    for workload, container in _containers(inventory):
        resources = container.get("resources") or {}
        unset = [
            f"{section}.{resource}"
            for section in ("requests", "limits")
            for resource in ("cpu", "memory")
            if resource not in (resources.get(section) or {})
        ]
        if unset:
            yield Hit(
                workload.resource,
                f"{workload.label} container {container.get('name')}: {', '.join(unset)} not set",
                f"resources: {resources}",
            )


def ray_shm(inventory: Inventory) -> Iterable[Hit]:
    """MEM002 skips KubeRay pods (the operator mounts /dev/shm when the pod does not) and never
    compares /dev/shm with the memory limit it counts against."""
    for workload in inventory.workloads:
        container = workload.ray_container
        size = _shm_size(workload, container) if container else None
        if size is None:
            continue
        store = object_store_flag(workload)
        if workload.is_kuberay and store and store[1] is not None and store[1] > size:
            yield Hit(
                workload.resource,
                f"{workload.label}: object store {format_gib(store[1])} > /dev/shm "
                f"{format_gib(size)}",
                f"--object-store-memory={store[0]}",
            )
        limit_text = ((container.get("resources") or {}).get("limits") or {}).get("memory")
        limit = amount_or_none("memory", limit_text) if limit_text else None
        if limit is not None and size > limit:
            yield Hit(
                workload.resource,
                f"{workload.label}: /dev/shm {format_gib(size)} > memory limit {limit_text}",
                f"/dev/shm sizeLimit {format_gib(size)}, limits.memory: {limit_text}",
            )


def _shm_size(workload: Workload, container: dict) -> float | None:
    """GiB of the emptyDir mounted at /dev/shm, when it has a sizeLimit."""
    for mount in container.get("volumeMounts") or []:
        if str(mount.get("mountPath", "")).rstrip("/") == "/dev/shm":
            empty_dir = (workload.volume(mount.get("name")) or {}).get("emptyDir") or {}
            if "sizeLimit" in empty_dir:
                return amount_or_none("memory", empty_dir["sizeLimit"])
    return None


def ports_internal(inventory: Inventory) -> Iterable[Hit]:
    """SEC001 judges the Services in front of a Ray head; a NodePort or LoadBalancer Service
    publishing these ports for anything else (Redis on 6379) is no doctor check's."""
    for service in inventory.of("Service"):
        kind = (service.get("spec") or {}).get("type") or "ClusterIP"
        if kind not in EXPOSED_TYPES or forwarded_control_ports(inventory, service):
            continue
        ports = [p.get("port") for p in (service.get("spec") or {}).get("ports") or []]
        for port in (p for p in ports if p in RAY_PORT_NUMBERS):
            yield Hit(
                resource_id(service),
                f"Service type {kind} exposes port {port} outside the cluster",
                f"type: {kind}, port: {port}",
            )


GAPS = (
    Gap("image-pinned", "SEC006", image_pinned),
    Gap("security-context", "SEC004", restricted_security_context),
    Gap("resources-set", "MEM003", resources_set),
    Gap("ray-shm", "MEM002", ray_shm),
    Gap("ports-internal", "SEC001", ports_internal),
)
