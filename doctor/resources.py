"""Resource requests and limits of pods, in GiB of memory, cores and GPUs."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from doctor.inventory import Workload
from service import quantities
from service.quantities import InvalidQuantity

GPU = "nvidia.com/gpu"
PERCENT = re.compile(r"\d+%")  # an IntOrString percentage, as maxSurge takes it


def amount(resource: str, quantity) -> float:
    """Memory in GiB, CPU in cores, anything else (GPUs) as a count; InvalidQuantity if none."""
    if resource == "memory":
        return quantities.gib(quantity)
    return float(quantities.parse(quantity))


def amount_or_none(resource: str, quantity) -> float | None:
    """amount(), or None for a value that is not a quantity (CONF001 reports those)."""
    try:
        return amount(resource, quantity)
    except InvalidQuantity:
        return None


def container_value(container: dict, kind: str, resource: str) -> float | None:
    """A container's request or limit; a missing request defaults to the limit, as in k8s.
    None when it is not set or is not a quantity."""
    resources = container.get("resources") or {}
    value = (resources.get(kind) or {}).get(resource)
    if value is None and kind == "requests":
        value = (resources.get("limits") or {}).get(resource)
    return None if value is None else amount_or_none(resource, value)


@dataclass(frozen=True)
class PodTotals:
    requests: dict[str, float]
    limits: dict[str, float]


def pod_totals(workload: Workload, resources=("memory", "cpu", GPU)) -> PodTotals:
    """Effective pod requests/limits: max(sum of containers, largest init container)."""
    totals: dict[str, dict[str, float]] = {"requests": {}, "limits": {}}
    for kind in totals:
        for resource in resources:
            running = sum(container_value(c, kind, resource) or 0 for c in workload.containers)
            init = max(
                (container_value(c, kind, resource) or 0 for c in workload.init_containers),
                default=0,
            )
            totals[kind][resource] = max(running, init)
    return PodTotals(totals["requests"], totals["limits"])


def surge_pods(workload: Workload) -> int:
    """Extra pods a rolling update runs at once (Deployments only; Recreate surges none)."""
    if workload.kind != "Deployment" or workload.replicas == 0:
        return 0
    strategy = (workload.obj.get("spec") or {}).get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0
    surge = (strategy.get("rollingUpdate") or {}).get("maxSurge", "25%")
    if isinstance(surge, int):
        return surge
    if PERCENT.fullmatch(str(surge)):
        return math.ceil(workload.replicas * int(str(surge)[:-1]) / 100)
    return 0  # not an int or a percentage: the API server refuses it; CONF001 says so


def format_gib(value: float) -> str:
    return f"{value:.1f} GiB"
