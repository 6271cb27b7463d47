"""Availability: crash loops, image pull failures, unschedulable pods, pending claims,
workloads short of replicas, containers without probes."""

from __future__ import annotations

from collections import defaultdict

from doctor.finding import Category, Severity
from doctor.inventory import Inventory, name_of, namespace_of
from doctor.registry import Hit, check


def _pod(pod: dict) -> str:
    return f"Pod/{namespace_of(pod)}/{name_of(pod)}"


def _waiting(pod: dict, reasons: tuple[str, ...]):
    status = pod.get("status") or {}
    for container in (status.get("initContainerStatuses") or []) + (
        status.get("containerStatuses") or []
    ):
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in reasons:
            yield container, waiting


@check(
    code="AVAIL001",
    severity=Severity.ERROR,
    category=Category.AVAILABILITY,
    summary="A container is in CrashLoopBackOff",
    fix="Read the previous run's log (kubectl logs --previous) and fix the cause it names.",
)
def crash_loop(inventory: Inventory):
    for pod in inventory.of("Pod"):
        for container, waiting in _waiting(pod, ("CrashLoopBackOff",)):
            last = (container.get("lastState") or {}).get("terminated") or {}
            detail = last.get("message") or last.get("reason") or ""
            yield Hit(
                _pod(pod),
                f"container {container.get('name')} keeps crashing "
                f"(restarts: {container.get('restartCount', 0)}, last exit "
                f"{last.get('exitCode', '?')} {last.get('reason', '')})",
                f"{waiting.get('message', 'CrashLoopBackOff')}"
                + (f"; last: {str(detail).strip().splitlines()[-1][:200]}" if detail else ""),
            )


@check(
    code="AVAIL002",
    severity=Severity.ERROR,
    category=Category.AVAILABILITY,
    summary="An image cannot be pulled",
    fix="Fix the image name or tag, or give the pod an imagePullSecret for the registry.",
)
def image_pull(inventory: Inventory):
    for pod in inventory.of("Pod"):
        for container, waiting in _waiting(
            pod, ("ImagePullBackOff", "ErrImagePull", "InvalidImageName")
        ):
            yield Hit(
                _pod(pod),
                f"container {container.get('name')} cannot pull {container.get('image')}",
                waiting.get("message") or waiting.get("reason"),
            )


@check(
    code="AVAIL003",
    severity=Severity.ERROR,
    category=Category.AVAILABILITY,
    summary="A pod is Pending: no node can schedule it",
    fix=(
        "Lower the pod's requests, fix its nodeSelector/tolerations, or add nodes with the "
        "resource it asks for."
    ),
)
def unschedulable(inventory: Inventory):
    for pod in inventory.of("Pod"):
        status = pod.get("status") or {}
        if status.get("phase") != "Pending":
            continue
        for condition in status.get("conditions") or []:
            if (
                condition.get("type") == "PodScheduled"
                and condition.get("reason") == "Unschedulable"
            ):
                yield Hit(
                    _pod(pod),
                    "no node can run this pod; the scheduler says why",
                    condition.get("message", "Unschedulable"),
                )


@check(
    code="AVAIL004",
    severity=Severity.ERROR,
    category=Category.AVAILABILITY,
    summary="A PersistentVolumeClaim is Pending",
    fix="Use a StorageClass that exists and supports the access mode (ReadWriteMany for the output "
    "volume), or create the PersistentVolume it waits for.",
)
def claim_pending(inventory: Inventory):
    for claim in inventory.of("PersistentVolumeClaim"):
        if (claim.get("status") or {}).get("phase") != "Pending":
            continue
        namespace, name = namespace_of(claim), name_of(claim)
        events = inventory.events_by_object.get(("PersistentVolumeClaim", namespace, name), [])
        warnings = [e for e in events if e.get("type") == "Warning"] or events
        evidence = (
            f"{warnings[-1].get('reason')}: {warnings[-1].get('message', '')}"[:300]
            if warnings
            else f"status.phase: Pending, storageClassName: "
            f"{(claim.get('spec') or {}).get('storageClassName', '(default)')}"
        )
        yield Hit(
            f"PersistentVolumeClaim/{namespace}/{name}",
            f"claim {name} is not bound: every pod mounting it stays Pending",
            evidence,
        )


@check(
    code="AVAIL005",
    severity=Severity.WARNING,
    category=Category.AVAILABILITY,
    summary="A Deployment or StatefulSet has fewer ready replicas than desired",
    fix=(
        "Look at the workload's pods and events (kubectl describe) for the reason they are not "
        "ready."
    ),
)
def short_of_replicas(inventory: Inventory):
    for kind in ("Deployment", "StatefulSet"):
        for obj in inventory.of(kind):
            status = obj.get("status")
            if not status:
                continue
            desired = (obj.get("spec") or {}).get("replicas", 1)
            ready = status.get("readyReplicas", 0)
            if ready < desired:
                yield Hit(
                    f"{kind}/{namespace_of(obj)}/{name_of(obj)}",
                    f"{ready} of {desired} replicas are ready",
                    f"spec.replicas: {desired}, status.readyReplicas: {ready}",
                )


def _services_by_workload(inventory: Inventory) -> dict[int, list[str]]:
    """The names of the Services that select each workload's pods, by id of the workload."""
    behind: dict[int, list[str]] = defaultdict(list)
    for service in inventory.services.values():
        for workload in inventory.selected_workloads(service):
            behind[id(workload)].append(name_of(service))
    return behind


@check(
    code="AVAIL006",
    severity=Severity.WARNING,
    category=Category.AVAILABILITY,
    summary="A long-running container has no readiness or liveness probe",
    fix="Add a readinessProbe (and a livenessProbe) so traffic waits for readiness and hung "
    "processes restart.",
)
def missing_probes(inventory: Inventory):
    # DaemonSets, Jobs and bare pods are left out: node agents, run-to-completion work and
    # debug pods take no Service traffic and rarely want a restart on a failed probe.
    behind = _services_by_workload(inventory)
    for workload in inventory.workloads:
        if workload.kind not in ("Deployment", "StatefulSet"):
            continue
        services = sorted(set(behind.get(id(workload), [])))
        for container in workload.containers:
            if container.get("readinessProbe") or container.get("livenessProbe"):
                continue
            name = container.get("name")
            evidence = f"container {name}: no readinessProbe, no livenessProbe"
            if services:
                yield Hit(
                    workload.resource,
                    f"container {name} has no probes: Service {', '.join(services)} sends "
                    "traffic before it is ready and nothing restarts it when it hangs",
                    evidence,
                )
            else:
                yield Hit(
                    workload.resource,
                    f"container {name} has no probes: nothing restarts it when it hangs (no "
                    "Service selects it, so readiness does not gate traffic)",
                    evidence,
                    fix="Add a livenessProbe if the process can hang without exiting.",
                    severity=Severity.INFO,
                )
