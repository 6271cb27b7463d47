"""Connectivity: hard-coded IPs, names that no Service answers, ports nothing serves,
Services without endpoints, workers stuck waiting for the Ray GCS."""

from __future__ import annotations

from doctor.addresses import (
    BUILTIN_SERVICES,
    Address,
    all_addresses,
    is_bind_or_loopback,
    is_ip,
    service_ports,
    service_reference,
)
from doctor.finding import Category, Severity
from doctor.inventory import (
    Inventory,
    Workload,
    command_text,
    labels_match,
    name_of,
    namespace_of,
)
from doctor.kuberay import DEFAULT_HEAD_PORTS
from doctor.raystart import listening_ports
from doctor.registry import Hit, check


@check(
    code="NET001",
    severity=Severity.ERROR,
    category=Category.CONNECTIVITY,
    summary="An IP address is hard-coded where a Service name belongs",
    fix="Address the peer by its Service name (e.g. ray-head:6379), never a pod or node IP.",
)
def hard_coded_ip(inventory: Inventory):
    seen = set()
    for address in all_addresses(inventory):
        if not address.host or not is_ip(address.host) or is_bind_or_loopback(address.host):
            continue
        key = (address.resource, address.where, address.host)
        if key in seen:
            continue
        seen.add(key)
        yield Hit(
            address.resource,
            f"{address.where} hard-codes the IP {address.host}; pod and node IPs change on "
            "every restart and reschedule",
            address.literal,
        )


def _stem(name: str) -> str:
    for suffix in ("-service", "-svc"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def near_miss(name: str, candidates) -> str | None:
    """The Service a name was plausibly meant to be (`redis-service` for `redis`,
    `ray-head-service` for `ray-head`, a one-letter typo), or None."""
    stem = _stem(name)
    for candidate in sorted(candidates):
        other = _stem(candidate)
        if other == stem or (min(len(stem), len(other)) >= 5 and _one_edit_apart(stem, other)):
            return candidate
    return None


def _one_edit_apart(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def _missing_service(inventory: Inventory, address: Address, ref: tuple[str, str]) -> Hit:
    namespace, name = ref
    in_namespace = sorted(n for ns, n in inventory.services if ns == namespace)
    elsewhere = sorted(ns for ns, n in inventory.services if n == name and ns != namespace)
    prefix = f"{address.where} names host {address.host!r}"
    if "." not in address.host and elsewhere:
        return Hit(
            address.resource,
            f"{prefix}, a short name, which resolves only in the caller's namespace "
            f"{namespace}; Service {name!r} is in namespace {elsewhere[0]}: "
            f"use {name}.{elsewhere[0]}",
            address.literal,
        )
    meant = near_miss(name, in_namespace)
    if meant or (inventory.source != "manifests" and in_namespace):
        hint = f"; did you mean {meant!r}?" if meant else ""
        return Hit(
            address.resource,
            f"{prefix}, but namespace {namespace} has no Service {name!r}{hint} "
            f"(Services: {', '.join(in_namespace)})",
            address.literal,
        )
    return Hit(
        address.resource,
        f"{prefix}: Service {name!r} of namespace {namespace} is not in the input; it may come "
        "from another chart or release, or a managed service",
        address.literal,
        fix=f"Check that it exists where this runs: kubectl get svc -n {namespace} {name}",
        severity=Severity.WARNING,
    )


@check(
    code="NET002",
    severity=Severity.ERROR,
    category=Category.CONNECTIVITY,
    summary="A host name names no Service in its namespace",
    fix="Point the address at an existing Service (kubectl get svc -n NAMESPACE) or create one.",
)
def unknown_service_name(inventory: Inventory):
    seen = set()
    for address in all_addresses(inventory):
        ref = service_reference(address.host, address.namespace, inventory.namespaces)
        if ref is None or ref in inventory.services or ref in BUILTIN_SERVICES:
            continue
        key = (address.resource, address.where, address.host)
        if key in seen:
            continue
        seen.add(key)
        yield _missing_service(inventory, address, ref)


def _is_headless(service: dict) -> bool:
    return (service.get("spec") or {}).get("clusterIP") == "None"


def _served_ports(workload: Workload) -> set[int] | None:
    """Ports a workload's pods are known to serve, or None when that cannot be known (a
    container that declares no containerPort may listen on any port)."""
    served: set[int] = set()
    for container in workload.containers:
        declared = [p for p in container.get("ports") or [] if "containerPort" in p]
        if not declared:
            return None
        served |= {int(p["containerPort"]) for p in declared}
    if workload.ray_role:
        served |= set(listening_ports(workload).values())
        served |= set(DEFAULT_HEAD_PORTS.values()) if workload.is_kuberay else set()
    return served


def _reachable_ports(inventory: Inventory, service: dict) -> set[int] | None:
    """Ports a client of a Service can connect to; None when that cannot be known."""
    ports = service_ports(service)
    if not _is_headless(service):
        return ports
    # A headless Service's name resolves to pod IPs: any port a pod serves answers.
    for workload in inventory.selected_workloads(service):
        served = _served_ports(workload)
        if served is None:
            return None
        ports |= served
    return ports


@check(
    code="NET003",
    severity=Severity.ERROR,
    category=Category.CONNECTIVITY,
    summary="A port that no Service port or container serves",
    fix="Use the port the Service exposes, or expose the port the process listens on.",
)
def unserved_port(inventory: Inventory):
    seen = set()
    for address in all_addresses(inventory):
        if address.port is None:
            continue
        ref = service_reference(address.host, address.namespace, inventory.namespaces)
        service = inventory.services.get(ref) if ref else None
        spec = (service or {}).get("spec") or {}
        if not spec.get("ports") or spec.get("type") == "ExternalName":
            continue
        ports = _reachable_ports(inventory, service)
        key = (address.resource, address.where, address.host, address.port)
        if ports is None or address.port in ports or key in seen:
            continue
        seen.add(key)
        yield Hit(
            address.resource,
            f"{address.where} connects to {address.host}:{address.port}, but Service "
            f"{ref[1]} exposes only {sorted(ports)}",
            address.literal,
        )
    for service in inventory.of("Service"):
        yield from _unserved_target_ports(inventory, service)


def _unserved_target_ports(inventory: Inventory, service: dict):
    for workload in inventory.selected_workloads(service):
        served = _served_ports(workload)
        names = {p.get("name") for c in workload.containers for p in c.get("ports") or []}
        for port in (service.get("spec") or {}).get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            if isinstance(target, str) and not target.isdigit():
                # A named targetPort resolves only to a declared port name.
                if target in names:
                    continue
            elif target is None or served is None or int(target) in served:
                continue
            yield Hit(
                f"Service/{namespace_of(service)}/{name_of(service)}",
                f"port {port.get('port')} forwards to targetPort {target}, which "
                f"{workload.label} does not serve (serves {sorted(served or ())})",
                f"targetPort: {target}",
            )


@check(
    code="NET004",
    severity=Severity.WARNING,
    category=Category.CONNECTIVITY,
    summary="A Service selects no running pod (no endpoints)",
    fix="Make the Service selector match the pod labels of the workload it fronts.",
)
def service_without_endpoints(inventory: Inventory):
    if not inventory.has_runtime_state:
        return
    for service in inventory.of("Service"):
        spec = service.get("spec") or {}
        selector = spec.get("selector") or {}
        if not selector or spec.get("type") == "ExternalName":
            continue
        namespace, name = namespace_of(service), name_of(service)
        endpoints = inventory.get("Endpoints", namespace, name)
        pods = inventory.pods_by_namespace.get(namespace, [])
        if endpoints is not None:
            ready = [a for s in endpoints.get("subsets") or [] for a in s.get("addresses") or []]
            if ready:
                continue
            evidence = f"Endpoints/{namespace}/{name}: no ready addresses"
        elif pods and not inventory.in_namespace("Endpoints", namespace):
            # Without Endpoints in the dump, judge by the pods it holds.
            pod_labels = ((p.get("metadata") or {}).get("labels") or {} for p in pods)
            if any(labels_match(selector, labels) for labels in pod_labels):
                continue
            evidence = f"selector {selector} matches none of {len(pods)} pods"
        else:
            continue
        yield Hit(
            f"Service/{namespace}/{name}",
            f"Service {name} has no ready endpoints: clients of it get connection refused",
            evidence,
        )


def _waits_for_ray(container: dict, pod_is_ray_worker: bool) -> bool:
    text = (container.get("name", "") + " " + command_text(container)).lower()
    return "gcs" in text or "ray health-check" in text or (pod_is_ray_worker and "ray" in text)


@check(
    code="NET005",
    severity=Severity.ERROR,
    category=Category.CONNECTIVITY,
    summary="Ray workers are stuck in init, waiting for the GCS",
    fix="Make the head's GCS reachable at the address the workers wait for (Service name, port).",
)
def workers_waiting_for_gcs(inventory: Inventory):
    for pod in inventory.of("Pod"):
        status = pod.get("status") or {}
        if status.get("phase") != "Pending":
            continue
        labels = (pod.get("metadata") or {}).get("labels") or {}
        spec = pod.get("spec") or {}
        is_worker = labels.get("ray.io/node-type") == "worker" or any(
            "ray start" in command_text(c) and "--head" not in command_text(c)
            for c in spec.get("containers") or []
        )
        init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
        for init_status in status.get("initContainerStatuses") or []:
            state = init_status.get("state") or {}
            if "terminated" in state and state["terminated"].get("exitCode") == 0:
                continue
            container = init_specs.get(init_status.get("name"), {"name": init_status.get("name")})
            if not _waits_for_ray(container, is_worker):
                continue
            since = (state.get("running") or {}).get("startedAt") or (
                state.get("waiting") or {}
            ).get("reason", "")
            restarts = init_status.get("restartCount", 0)
            yield Hit(
                f"Pod/{namespace_of(pod)}/{name_of(pod)}",
                f"init container {init_status.get('name')} has not finished: the worker cannot "
                "reach the Ray GCS it waits for",
                f"initContainer {init_status.get('name')}: "
                f"{next(iter(state), 'unknown')} since {since or '?'}, restarts {restarts}; "
                f"command: {command_text(container)[:160]}",
            )
            break
