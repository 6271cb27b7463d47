"""Connectivity: hard-coded IPs, names that no Service answers, ports nothing serves,
Services without endpoints, workers stuck waiting for the Ray GCS."""

from __future__ import annotations

from doctor.addresses import (
    Address,
    configmap_addresses,
    is_bind_or_loopback,
    is_ip,
    service_ports,
    service_reference,
    workload_addresses,
)
from doctor.inventory import Inventory, command_text, labels_match, name_of, namespace_of
from doctor.raystart import listening_ports
from doctor.registry import Hit, check


def all_addresses(inventory: Inventory) -> list[Address]:
    result = configmap_addresses(inventory)
    for workload in inventory.workloads:
        result.extend(workload_addresses(workload))
    return result


@check(
    "NET001",
    "error",
    "connectivity",
    "An IP address is hard-coded where a Service name belongs",
    "Address the peer by its Service name (e.g. ray-head:6379), never a pod or node IP.",
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


@check(
    "NET002",
    "error",
    "connectivity",
    "A host name names no Service in its namespace",
    "Point the address at an existing Service (kubectl get svc -n NAMESPACE) or create one.",
)
def unknown_service_name(inventory: Inventory):
    namespaces_with_services = {ns for ns, _ in inventory.services}
    seen = set()
    for address in all_addresses(inventory):
        ref = service_reference(address.host, address.namespace, inventory.namespaces)
        if ref is None or ref[0] not in namespaces_with_services or ref in inventory.services:
            continue
        key = (address.resource, address.where, address.host)
        if key in seen:
            continue
        seen.add(key)
        known = ", ".join(sorted(name for ns, name in inventory.services if ns == ref[0]))
        yield Hit(
            address.resource,
            f"{address.where} names host {address.host!r}, but namespace {ref[0]} has no "
            f"Service {ref[1]!r} (Services: {known})",
            address.literal,
        )


@check(
    "NET003",
    "error",
    "connectivity",
    "A port that no Service port or container serves",
    "Use the port the Service exposes, or expose the port the process listens on.",
)
def unserved_port(inventory: Inventory):
    seen = set()
    for address in all_addresses(inventory):
        if address.port is None:
            continue
        ref = service_reference(address.host, address.namespace, inventory.namespaces)
        service = inventory.services.get(ref) if ref else None
        if service is None or not (service.get("spec") or {}).get("ports"):
            continue
        ports = service_ports(service)
        key = (address.resource, address.where, address.host, address.port)
        if address.port in ports or key in seen:
            continue
        seen.add(key)
        yield Hit(
            address.resource,
            f"{address.where} connects to {address.host}:{address.port}, but Service "
            f"{ref[1]} exposes only {sorted(ports)}",
            address.literal,
        )
    for service in inventory.of("Service"):
        for workload in inventory.selected_workloads(service):
            served = {
                int(p["containerPort"])
                for c in workload.containers
                for p in c.get("ports") or []
                if "containerPort" in p
            }
            names = {p.get("name") for c in workload.containers for p in c.get("ports") or []}
            if workload.ray_role:
                served |= set(listening_ports(workload).values())
            elif not served:
                continue
            for port in (service.get("spec") or {}).get("ports") or []:
                target = port.get("targetPort", port.get("port"))
                if isinstance(target, str) and not target.isdigit():
                    if target in names:
                        continue
                elif target is None or int(target) in served:
                    continue
                yield Hit(
                    f"Service/{namespace_of(service)}/{name_of(service)}",
                    f"port {port.get('port')} forwards to targetPort {target}, which "
                    f"{workload.label} does not serve (serves {sorted(served)})",
                    f"targetPort: {target}",
                )


@check(
    "NET004",
    "warning",
    "connectivity",
    "A Service selects no running pod (no endpoints)",
    "Make the Service selector match the pod labels of the workload it fronts.",
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
    "NET005",
    "error",
    "connectivity",
    "Ray workers are stuck in init, waiting for the GCS",
    "Make the head's GCS reachable at the address the workers wait for (Service name, port).",
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
