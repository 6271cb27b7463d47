"""Quota: requests (x replicas, + rolling-update surge) against ResourceQuota, GPUs against the
nodes' allocatable, and `exceeded quota` refusals."""

from __future__ import annotations

from doctor.finding import Category, Severity
from doctor.inventory import Inventory, name_of, namespace_of
from doctor.registry import Hit, check
from doctor.resources import GPU, amount_or_none, pod_totals, surge_pods

# ResourceQuota keys -> (requests|limits, resource)
QUOTA_KEYS = {
    "requests.memory": ("requests", "memory"),
    "memory": ("requests", "memory"),
    "limits.memory": ("limits", "memory"),
    "requests.cpu": ("requests", "cpu"),
    "cpu": ("requests", "cpu"),
    "limits.cpu": ("limits", "cpu"),
    f"requests.{GPU}": ("requests", GPU),
    f"limits.{GPU}": ("limits", GPU),
}


def _fmt(resource: str, value: float) -> str:
    if resource == "memory":
        return f"{value:.1f}Gi"
    return f"{value:g}"


def namespace_demand(inventory: Inventory, namespace: str, kind: str, resource: str):
    """(steady total, total during a rollout, contributions) of one resource in a namespace."""
    steady = surge = 0.0
    parts = []
    for workload in inventory.workloads_in(namespace):
        totals = pod_totals(workload)
        per_pod = (totals.requests if kind == "requests" else totals.limits).get(resource, 0)
        if not per_pod:
            continue
        steady += per_pod * workload.replicas
        extra = surge_pods(workload)
        surge += per_pod * extra
        parts.append(
            f"{workload.label} {workload.replicas}x{_fmt(resource, per_pod)}"
            + (f"+{extra} surge" if extra else "")
        )
    return steady, steady + surge, parts


@check(
    code="QUOTA001",
    severity=Severity.ERROR,
    category=Category.QUOTA,
    summary="The workloads' requests exceed the namespace's ResourceQuota",
    fix="Lower requests or replicas, or raise the ResourceQuota (kubectl edit resourcequota).",
)
def quota_exceeded(inventory: Inventory):
    for quota in inventory.of("ResourceQuota"):
        yield from _quota_hits(inventory, quota, during_rollout=False)


@check(
    code="QUOTA002",
    severity=Severity.WARNING,
    category=Category.QUOTA,
    summary="A rolling update's surge pods would exceed the ResourceQuota",
    fix="Use strategy Recreate (or maxSurge: 0) for large pods such as Ray workers, or leave "
    "headroom in the quota for one surge pod.",
)
def quota_surge(inventory: Inventory):
    for quota in inventory.of("ResourceQuota"):
        yield from _quota_hits(inventory, quota, during_rollout=True)


def _quota_hits(inventory: Inventory, quota: dict, during_rollout: bool):
    namespace = namespace_of(quota)
    hard = (quota.get("spec") or {}).get("hard") or {}
    for key, value in hard.items():
        if key not in QUOTA_KEYS:
            continue
        kind, resource = QUOTA_KEYS[key]
        limit = amount_or_none(resource, value)
        if limit is None:  # not a quantity: CONF001 reports it
            continue
        steady, rollout, parts = namespace_demand(inventory, namespace, kind, resource)
        total = rollout if during_rollout else steady
        if total <= limit or (during_rollout and steady > limit):
            continue
        when = "during a rolling update" if during_rollout else "at steady state"
        yield Hit(
            f"ResourceQuota/{namespace}/{name_of(quota)}",
            f"{key} {when} totals {_fmt(resource, total)}, over the quota's {value}: the "
            f"ReplicaSet controller cannot create the pods past it ({'; '.join(parts)})",
            f"hard.{key}: {value}; requested {_fmt(resource, total)}",
        )


@check(
    code="QUOTA003",
    severity=Severity.ERROR,
    category=Category.QUOTA,
    summary="Pods ask for more GPUs than the nodes can allocate",
    fix="Request at most the GPUs one node has per pod, and no more in total than the nodes offer.",
)
def gpus_against_nodes(inventory: Inventory):
    nodes = inventory.of("Node")
    allocatable = [
        amount_or_none(GPU, ((n.get("status") or {}).get("allocatable") or {}).get(GPU, 0)) or 0
        for n in nodes
    ]
    if not nodes:
        return
    largest, total_available = max(allocatable), sum(allocatable)
    total_asked = 0.0
    for workload in inventory.workloads:
        per_pod = pod_totals(workload).limits.get(GPU, 0) or pod_totals(workload).requests.get(
            GPU, 0
        )
        total_asked += per_pod * workload.replicas
        if per_pod > largest:
            yield Hit(
                workload.resource,
                f"{workload.label} asks {per_pod:g} GPUs per pod but the largest node allocates "
                f"{largest:g}: its pods stay Pending",
                f"{GPU}: {per_pod:g} per pod; nodes allocatable max {largest:g}",
            )
    if total_asked > total_available:
        yield Hit(
            f"Cluster/-/{len(nodes)}-nodes",
            f"workloads ask {total_asked:g} GPUs in total; the {len(nodes)} nodes allocate "
            f"{total_available:g}",
            f"requested {GPU}: {total_asked:g}; allocatable: {total_available:g}",
        )


@check(
    code="QUOTA004",
    severity=Severity.ERROR,
    category=Category.QUOTA,
    summary="Pod creation was refused: exceeded quota",
    fix="Lower the workload's requests or replicas, or raise the ResourceQuota.",
)
def exceeded_quota_events(inventory: Inventory):
    seen = set()
    for event in inventory.events:
        message = str(event.get("message") or "")
        if "exceeded quota" not in message:
            continue
        involved = event.get("involvedObject") or {}
        resource = (
            f"{involved.get('kind', '?')}/{involved.get('namespace') or namespace_of(event)}"
            f"/{involved.get('name', '?')}"
        )
        if resource in seen:
            continue
        seen.add(resource)
        yield Hit(
            resource,
            f"{event.get('reason', 'FailedCreate')} x{event.get('count', 1)}: the quota refused "
            "a pod",
            message.strip()[:300],
        )
