"""Job groups: with MOCHI_GPUS_PER_JOB = N above 1 a job runs on N ranks, each a whole pipeline
on MOCHI_GPUS_PER_WORKER GPUs, packed on one Ray node (a STRICT_PACK placement group) and joined
by torch.distributed. From the pod templates: a group no Ray pod has the GPUs for, an N that
does not divide the model's attention heads, pods whose GPUs the groups leave idle. Live: workers
whose group could not be placed or whose ranks could not join (their registry entry in Redis),
and the service's placement groups Ray has not placed."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from doctor.finding import Category, Severity
from doctor.inventory import Inventory, Workload
from doctor.live_state import component_resource, live_workers
from doctor.raystart import ray_start_flags, uses_ray_start_params
from doctor.registry import Hit, check
from doctor.resources import GPU, container_value
from service.config import Settings
from service.keys import WORKERS

# genmo/mochi-1-preview's transformer config (num_attention_heads); the doctor does not import
# torch, so the tiny model's count is kept here too, and a test keeps it equal to the built one.
MOCHI_1_ATTENTION_HEADS = 24
TINY_ATTENTION_HEADS = 2
GROUP_NAME = re.compile(r"^mochi-group-(\d+)$")
PLACEMENT, RENDEZVOUS = "placement:", "rendezvous:"
ERROR_CHARS = 300


@dataclass(frozen=True)
class Setting:
    """A MOCHI_* value a pod runs with, and where it is written."""

    name: str
    value: str
    where: str  # ConfigMap/ns/name, or the workload whose container env holds it

    @property
    def evidence(self) -> str:
        return f"{self.name}={self.value} ({self.where})"


def setting(workload: Workload, name: str) -> Setting | None:
    for container in workload.containers:
        value = workload.env(container).get(name)
        if value is not None and value.value is not None:
            where = value.origin if value.origin.startswith("ConfigMap/") else workload.resource
            return Setting(name, value.value, where)
    return None


def ranks_per_job(workload: Workload) -> tuple[int, Setting] | None:
    """MOCHI_GPUS_PER_JOB where it asks for a group: a whole number above 1."""
    found = setting(workload, "MOCHI_GPUS_PER_JOB")
    if found is None or not found.value.strip().isdigit() or int(found.value) < 2:
        return None
    return int(found.value), found


def gpus_per_rank(workload: Workload) -> tuple[float, Setting | None]:
    """MOCHI_GPUS_PER_WORKER, the service's default (CPU ranks) when unset or not a number."""
    found = setting(workload, "MOCHI_GPUS_PER_WORKER")
    if found is None:
        return Settings().gpus_per_worker, None
    try:
        return float(found.value), found
    except ValueError:
        return 0.0, None


def ray_gpus(workload: Workload) -> tuple[float, str]:
    """The GPUs Ray sees on one pod: --num-gpus when given, else the nvidia.com/gpu limit."""
    flag = ray_start_flags(workload).get("--num-gpus")
    if flag is not None:
        try:
            spelled = (
                "rayStartParams.num-gpus: " if uses_ray_start_params(workload) else "--num-gpus="
            )
            return float(flag), f"{workload.label} {spelled}{flag}"
        except ValueError:
            pass
    container = workload.ray_container or {}
    gpus = container_value(container, "limits", GPU) or 0.0
    limit = ((container.get("resources") or {}).get("limits") or {}).get(GPU)
    literal = f"limits.{GPU}: {limit}" if limit is not None else f"no {GPU} limit"
    return gpus, f"{workload.label} {literal}"


def cluster_of(workload: Workload) -> str:
    """The Ray cluster a pod joins: its KubeRay object, or its namespace for plain pods."""
    return workload.resource if workload.is_kuberay else workload.namespace


@dataclass(frozen=True)
class GroupShape:
    """The group one Ray cluster's Mochi pods ask for, and the Ray pods that could hold it."""

    ranks: int
    ranks_setting: Setting
    gpus_per_rank: float
    gpus_setting: Setting | None
    hosts: tuple[Workload, ...]

    @property
    def gpus(self) -> float:
        return self.ranks * self.gpus_per_rank

    @property
    def evidence(self) -> str:
        gpus = self.gpus_setting.evidence if self.gpus_setting else "MOCHI_GPUS_PER_WORKER unset"
        return f"{self.ranks_setting.evidence}; {gpus}"

    def largest_host(self) -> tuple[Workload, float, str]:
        sized = [(host, *ray_gpus(host)) for host in self.hosts]
        return max(sized, key=lambda item: item[1])


def group_shapes(inventory: Inventory) -> list[GroupShape]:
    """One shape per (Ray cluster, N, GPUs per rank) that a Mochi Ray pod is configured with."""
    ray_pods: dict[str, list[Workload]] = {}
    for workload in inventory.workloads:
        if workload.ray_role is not None:
            ray_pods.setdefault(cluster_of(workload), []).append(workload)
    shapes: dict[tuple, GroupShape] = {}
    for cluster, pods in ray_pods.items():
        for workload in pods:
            ranks = ranks_per_job(workload) if workload.runs_mochi_worker else None
            if ranks is None:
                continue
            per_rank, per_rank_setting = gpus_per_rank(workload)
            key = (cluster, ranks[0], per_rank)
            if key not in shapes:
                shapes[key] = GroupShape(
                    ranks[0], ranks[1], per_rank, per_rank_setting, tuple(pods)
                )
    return list(shapes.values())


def _placement_group_index(inventory: Inventory) -> dict[str, dict]:
    """The service's placement groups (mochi-group-<worker index>) in Ray's state, by index."""
    ray = inventory.live.ray
    if ray is None or ray.placement_groups is None:
        return {}
    return {
        match.group(1): group
        for group in ray.placement_groups
        if (match := GROUP_NAME.match(str(group.get("name") or "")))
    }


def _bundles(group: dict) -> str:
    shapes = Counter(
        str((bundle or {}).get("unit_resources") or {}) for bundle in group.get("bundles") or []
    )
    return ", ".join(f"{count} x {shape}" for shape, count in shapes.items()) or "no bundles"


def _scheduling_state(group: dict) -> str:
    return str((group.get("stats") or {}).get("scheduling_state") or "")


def placement_group_evidence(group: dict) -> str:
    state = _scheduling_state(group)
    return (
        f"placement group {group.get('name')} ({group.get('placement_group_id')}): state "
        f"{group.get('state')}{f', scheduling_state {state}' if state else ''}, bundles "
        f"{_bundles(group)}"
    )


def group_workers(inventory: Inventory, prefix: str) -> list[tuple[str, int, str]]:
    """(worker id, N, group_error) of each live worker whose group failed for this reason."""
    found = []
    for worker, info in sorted(live_workers(inventory).items()):
        error = str(info.get("group_error") or "").strip()
        try:
            ranks = int(info.get("gpus_per_job") or 1)
        except (TypeError, ValueError):
            continue
        if ranks > 1 and error.startswith(prefix):
            found.append((worker, ranks, error[:ERROR_CHARS]))
    return found


def live_resource(inventory: Inventory, worker: str) -> str:
    address = inventory.live.ray.address if inventory.live.ray is not None else ""
    return component_resource("ray", address) if address else f"worker/{worker}"


def _registry_evidence(worker: str, ranks: int, error: str) -> str:
    return f"{WORKERS} {worker}: gpus_per_job {ranks}, group_error {error!r}"


@check(
    code="RAY014",
    severity=Severity.ERROR,
    category=Category.AVAILABILITY,
    summary=(
        "A job group cannot be placed: no Ray node has MOCHI_GPUS_PER_JOB x "
        "MOCHI_GPUS_PER_WORKER GPUs for its ranks"
    ),
    fix="Give one Ray worker pod MOCHI_GPUS_PER_JOB x MOCHI_GPUS_PER_WORKER GPUs (nvidia.com/gpu "
    "and num-gpus), or lower MOCHI_GPUS_PER_JOB to what one pod holds.",
)
def group_cannot_be_placed(inventory: Inventory):
    yield from _static_placement(inventory)
    yield from _live_placement(inventory)


def _static_placement(inventory: Inventory):
    for shape in group_shapes(inventory):
        if not shape.gpus_per_rank:
            continue  # CPU ranks: the pod's GPUs do not limit the group
        host, gpus, gpus_evidence = shape.largest_host()
        if gpus >= shape.gpus:
            continue
        yield Hit(
            host.resource,
            f"a job group needs {shape.ranks} ranks x {shape.gpus_per_rank:g} GPUs = "
            f"{shape.gpus:g} GPUs on one Ray node, but the largest Ray pod of its cluster, "
            f"{host.label}, has {gpus:g}: the group is never placed and the workers claim no jobs",
            f"{shape.evidence}; {gpus_evidence}",
        )


def _live_placement(inventory: Inventory):
    placement_groups = _placement_group_index(inventory)
    for worker, ranks, error in group_workers(inventory, PLACEMENT):
        group = placement_groups.pop(worker.rsplit(":", 1)[-1], None)
        evidence = _registry_evidence(worker, ranks, error)
        yield Hit(
            live_resource(inventory, worker),
            f"worker {worker} cannot place its job group of {ranks} ranks on one Ray node "
            f"({error}): it claims no jobs and keeps retrying",
            f"{evidence}; {placement_group_evidence(group)}" if group else evidence,
        )
    for index, group in sorted(placement_groups.items()):
        if group.get("state") != "PENDING":
            continue
        infeasible = _scheduling_state(group) == "INFEASIBLE"
        why = (
            "no Ray node can ever hold its bundles together"
            if infeasible
            else "no Ray node has its bundles free together now"
        )
        yield Hit(
            live_resource(inventory, index),
            f"placement group {group.get('name')} of worker {index}'s job group is PENDING: "
            f"{why}, so the group does not form and the worker claims no jobs",
            placement_group_evidence(group),
            severity=None if infeasible else "warning",
        )


@check(
    code="RAY015",
    severity=Severity.ERROR,
    category=Category.CONNECTIVITY,
    summary=(
        "The ranks of a job group cannot reach each other: the torch.distributed rendezvous failed"
    ),
    fix="Find in the ranks' logs why they did not join: a rank killed while loading (host memory "
    "for N pipelines in one pod), NCCL or gloo on the wrong interface or a small /dev/shm, or a "
    "sidecar intercepting traffic to the pod's own IP.",
    needs_live=True,
)
def ranks_cannot_join(inventory: Inventory):
    for worker, ranks, error in group_workers(inventory, RENDEZVOUS):
        yield Hit(
            live_resource(inventory, worker),
            f"worker {worker}'s {ranks} ranks started but did not join each other over "
            f"torch.distributed ({error}): the group is closed, the worker claims no jobs and "
            "keeps retrying",
            _registry_evidence(worker, ranks, error),
        )


def attention_heads(model: str) -> int:
    """As the service counts them: the tiny model's own, Mochi-1's for any other source."""
    return TINY_ATTENTION_HEADS if model == "tiny" else MOCHI_1_ATTENTION_HEADS


def _divisors(number: int) -> str:
    return ", ".join(str(d) for d in range(1, number + 1) if number % d == 0)


@check(
    code="RAY016",
    severity=Severity.ERROR,
    category=Category.CONFIGURATION,
    summary="MOCHI_GPUS_PER_JOB does not divide the model's attention heads",
    fix="Set MOCHI_GPUS_PER_JOB to a divisor of the model's attention heads (Mochi-1: 1, 2, 3, 4, "
    "6, 8, 12 or 24).",
)
def ranks_do_not_divide_heads(inventory: Inventory):
    seen = set()
    for workload in inventory.workloads:
        ranks = ranks_per_job(workload) if workload.runs_mochi_worker else None
        if ranks is None:
            continue
        count, written = ranks
        model = setting(workload, "MOCHI_MODEL")
        name = model.value if model else Settings().model
        heads = attention_heads(name)
        if heads % count == 0 or (written.where, count, heads) in seen:
            continue
        seen.add((written.where, count, heads))
        model_evidence = model.evidence if model else f"MOCHI_MODEL unset (service default {name})"
        yield Hit(
            written.where,
            f"MOCHI_GPUS_PER_JOB={count} does not divide the {heads} attention heads of model "
            f"{name}: each rank holds whole heads, so the service refuses to form the group; "
            f"use one of {_divisors(heads)}",
            f"{written.evidence}; {model_evidence}",
        )


@check(
    code="RAY017",
    severity=Severity.WARNING,
    category=Category.CONFIGURATION,
    summary="A Ray pod's GPUs are not a multiple of a job group's: the groups leave GPUs idle",
    fix="Give each GPU Ray pod a multiple of MOCHI_GPUS_PER_JOB x MOCHI_GPUS_PER_WORKER GPUs, or "
    "set MOCHI_GPUS_PER_JOB to a divisor of the pipelines one pod holds.",
)
def groups_leave_gpus_idle(inventory: Inventory):
    for shape in group_shapes(inventory):
        if not shape.gpus_per_rank or shape.largest_host()[1] < shape.gpus:
            continue  # CPU ranks, or no pod holds a group at all (RAY014)
        for host in shape.hosts:
            gpus, gpus_evidence = ray_gpus(host)
            pipelines = int(gpus / shape.gpus_per_rank + 1e-9)
            spare = pipelines % shape.ranks
            if not gpus or not spare:
                continue
            idle = spare * shape.gpus_per_rank
            used = (
                "no group fits it"
                if spare == pipelines
                else (f"groups of {shape.ranks} use {pipelines - spare}")
            )
            yield Hit(
                host.resource,
                f"{host.label}: {gpus:g} GPUs hold {pipelines} pipeline(s) of "
                f"{shape.gpus_per_rank:g} GPU(s); {used}, leaving {idle:g} GPU(s) idle",
                f"{gpus_evidence}; {shape.evidence}",
            )
