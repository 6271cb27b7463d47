"""Resource requests and limits of pods, in GiB of memory, cores and GPUs."""

from __future__ import annotations

import math
from dataclasses import dataclass

from doctor.inventory import Workload
from service.memory_model import parse_quantity_gib

GPU = "nvidia.com/gpu"


def cpu_cores(quantity) -> float:
    text = str(quantity).strip()
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def amount(resource: str, quantity) -> float:
    if resource == "memory":
        return parse_quantity_gib(quantity)
    if resource == "cpu":
        return cpu_cores(quantity)
    return float(quantity)


def container_value(container: dict, kind: str, resource: str) -> float | None:
    """A container's request or limit; a missing request defaults to the limit, as in k8s."""
    resources = container.get("resources") or {}
    value = (resources.get(kind) or {}).get(resource)
    if value is None and kind == "requests":
        value = (resources.get("limits") or {}).get(resource)
    return None if value is None else amount(resource, value)


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
    if isinstance(surge, str) and surge.endswith("%"):
        return math.ceil(workload.replicas * float(surge[:-1]) / 100)
    return int(surge)


def format_gib(value: float) -> str:
    return f"{value:.1f} GiB"
