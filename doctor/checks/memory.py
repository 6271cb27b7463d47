"""Memory: Mochi worker pods against the memory model's host footprint (other Ray pods against
Ray's own rules), the object store against /dev/shm, requests equal to limits, the largest job
against GPU memory, OOM kills."""

from __future__ import annotations

from doctor.finding import Category, Severity
from doctor.inventory import Inventory, Workload, name_of, namespace_of
from doctor.memory_inputs import plan_parallelism
from doctor.raystart import ray_start_flags
from doctor.registry import Hit, check
from doctor.resources import GPU, amount_or_none, container_value, format_gib
from service import quantities
from service.memory_model import (
    GIB,
    MOCHI_1,
    plan_generation,
    profile_for,
    worker_host_memory_gib,
)
from service.params import LARGEST_JOB

RAY_DEFAULT_OBJECT_STORE_FRACTION = 0.3
# KubeRay's ray-cluster Helm chart (values.yaml): "To avoid out-of-memory issues, never allocate
# less than 2G memory for the Ray head." Ray documents no such floor for a worker.
RAY_HEAD_MINIMUM = "2G"
RAY_HEAD_MINIMUM_GIB = quantities.gib(RAY_HEAD_MINIMUM)
# What `ray start` raises when the object store does not fit the (cgroup) memory limit.
RAY_STORE_OVER_MEMORY = (
    "The requested object store memory size is greater than the total available memory."
)


def _setting(workload: Workload, name: str) -> str | None:
    for container in workload.containers:
        value = workload.env(container).get(name)
        if value is not None and value.value is not None:
            return value.value
    return None


def parallelism(workload: Workload) -> dict:
    """The memory model's gpus_per_job and dit_precision, from a worker's settings."""
    return plan_parallelism(
        _setting(workload, "MOCHI_GPUS_PER_JOB"), _setting(workload, "MOCHI_DIT_PRECISION")
    )


def object_store_flag(workload: Workload) -> tuple[str, float | None] | None:
    """--object-store-memory as written and in GiB (None when it is not a number of bytes,
    such as an unexpanded $VARIABLE)."""
    value = ray_start_flags(workload).get("--object-store-memory")
    if not value:
        return None
    try:
        return value, int(float(value)) / GIB
    except (ValueError, OverflowError):
        return value, None


def object_store_gib(workload: Workload, limit_gib: float | None) -> tuple[float, str] | None:
    flag = object_store_flag(workload)
    if flag is not None:
        value, gib = flag
        return None if gib is None else (gib, f"--object-store-memory={value}")
    if limit_gib:
        default = RAY_DEFAULT_OBJECT_STORE_FRACTION * limit_gib
        return default, "no --object-store-memory (Ray takes 30% of the limit)"
    return None


def pipelines_per_pod(workload: Workload) -> tuple[int, str]:
    """How many Mochi pipelines one pod holds: GPUs per pod / MOCHI_GPUS_PER_WORKER."""
    container = workload.ray_container or {}
    gpus = container_value(container, "limits", GPU) or 0
    if workload.ray_role == "head" and not gpus:
        return 0, "head without GPUs"
    per_worker = _setting(workload, "MOCHI_GPUS_PER_WORKER")
    if gpus and _positive(per_worker):
        count = max(1, int(gpus // float(per_worker)))
        return count, f"{gpus:g} GPUs / MOCHI_GPUS_PER_WORKER={per_worker}"
    return (1, f"{gpus:g} GPUs") if gpus else (1, "CPU worker")


def _positive(setting: str | None) -> bool:
    try:
        return setting is not None and float(setting) > 0
    except ValueError:
        return False


@check(
    code="MEM001",
    severity=Severity.ERROR,
    category=Category.MEMORY,
    summary=(
        "A Ray pod's memory limit is below what it needs: the Mochi worker model's host "
        "footprint, or Ray's own minimum for a pod that does not run the Mochi worker"
    ),
    fix="Raise the pod's memory limit (and request) to the footprint, or lower "
    "--object-store-memory, or run fewer pipelines per pod.",
)
def ray_pod_memory(inventory: Inventory):
    for workload in inventory.workloads:
        container = workload.ray_container
        if container is None:
            continue
        limit = container_value(container, "limits", "memory")
        if limit is None:
            continue
        judge = mochi_footprint if workload.runs_mochi_worker else ray_minimum
        yield from judge(workload, container, limit)


def _limit_literal(container: dict) -> str:
    return str(((container.get("resources") or {}).get("limits") or {}).get("memory"))


def mochi_footprint(workload: Workload, container: dict, limit: float):
    """This project's worker: pipelines held on the host + object store + process overhead."""
    pipelines, why = pipelines_per_pod(workload)
    store = object_store_gib(workload, limit)
    if store is None:
        return
    profile = profile_for(_setting(workload, "MOCHI_MODEL") or "")
    needed = worker_host_memory_gib(pipelines, store[0], profile)
    if needed <= limit:
        return
    yield Hit(
        workload.resource,
        f"{workload.label} needs {format_gib(needed)} of host memory by the Mochi-1 worker "
        f"model ({profile.name}: {pipelines} pipeline(s) [{why}] + object store "
        f"{format_gib(store[0])} + process overhead) but its limit is {format_gib(limit)}: "
        "the kernel OOM-kills it while loading",
        f"limits.memory: {_limit_literal(container)}; {store[1]}; Mochi worker: "
        f"{workload.mochi_worker_evidence}",
    )


def ray_minimum(workload: Workload, container: dict, limit: float):
    """Any other Ray pod: the object store must fit the limit, a head needs Ray's 2G."""
    role = workload.ray_role
    flag = object_store_flag(workload)
    if flag is not None and flag[1] is not None and flag[1] > limit:
        yield Hit(
            workload.resource,
            f"{workload.label}: --object-store-memory={flag[0]} ({format_gib(flag[1])}) is more "
            f"than its memory limit {_limit_literal(container)}: by Ray's own start-up check "
            f"for a {role}, `ray start` exits with '{RAY_STORE_OVER_MEMORY}'",
            f"limits.memory: {_limit_literal(container)}; --object-store-memory={flag[0]}",
            fix="Lower --object-store-memory below the memory limit, or raise the limit.",
        )
    if role == "head" and limit < RAY_HEAD_MINIMUM_GIB:
        yield Hit(
            workload.resource,
            f"{workload.label}: memory limit {_limit_literal(container)} is below Ray's "
            f"documented minimum for a head ({RAY_HEAD_MINIMUM}): the GCS, dashboard and "
            "autoscaler share it and risk being OOM-killed",
            f"limits.memory: {_limit_literal(container)}",
            fix=f"Give the Ray head at least {RAY_HEAD_MINIMUM} of memory (limit and request).",
            severity=Severity.WARNING,
        )


def _shm_volume(workload: Workload, container: dict) -> tuple[dict | None, dict | None]:
    for mount in container.get("volumeMounts") or []:
        if mount.get("mountPath", "").rstrip("/") == "/dev/shm":
            return mount, workload.volume(mount.get("name"))
    return None, None


@check(
    code="MEM002",
    severity=Severity.WARNING,
    category=Category.MEMORY,
    summary="The Ray object store does not fit a memory-backed /dev/shm",
    fix="Mount an emptyDir with medium: Memory at /dev/shm, sizeLimit at least "
    "--object-store-memory, and count it in the pod's memory limit.",
)
def object_store_shm(inventory: Inventory):
    for workload in inventory.workloads:
        container = workload.ray_container
        if container is None or workload.is_kuberay:
            continue  # KubeRay mounts a memory-backed /dev/shm itself
        mount, volume = _shm_volume(workload, container)
        store = object_store_flag(workload)
        store_flag, store_gib = store if store else (None, None)
        if mount is None or volume is None:
            yield Hit(
                workload.resource,
                f"{workload.label} has no memory-backed /dev/shm: the container runtime gives "
                "64 MiB, so Ray puts the object store on disk (/tmp) and warns it will be slow",
                f"no volumeMount at /dev/shm; --object-store-memory={store_flag or 'default'}",
            )
            continue
        empty_dir = volume.get("emptyDir")
        if empty_dir is None or empty_dir.get("medium") != "Memory":
            yield Hit(
                workload.resource,
                f"{workload.label} mounts /dev/shm from a volume that is not memory-backed",
                f"volume {volume.get('name')}: {volume}",
            )
            continue
        size = empty_dir.get("sizeLimit")
        size_gib = amount_or_none("memory", size) if size else None
        if size_gib is not None and store_gib is not None and store_gib > size_gib:
            yield Hit(
                workload.resource,
                f"{workload.label}: object store {format_gib(store_gib)} is "
                f"larger than /dev/shm ({size}); Ray fails to start or falls back to disk",
                f"--object-store-memory={store_flag}; emptyDir sizeLimit: {size}",
                severity=Severity.ERROR,
            )


@check(
    code="MEM003",
    severity=Severity.WARNING,
    category=Category.MEMORY,
    summary="A Ray pod's memory or GPU request differs from its limit",
    fix="Set requests equal to limits for memory and nvidia.com/gpu on Ray pods (Guaranteed QoS).",
)
def ray_requests_equal_limits(inventory: Inventory):
    for workload in inventory.workloads:
        container = workload.ray_container
        if container is None:
            continue
        resources = container.get("resources") or {}
        for resource in ("memory", GPU):
            request = (resources.get("requests") or {}).get(resource)
            limit = (resources.get("limits") or {}).get(resource)
            if request is None or limit is None:
                continue
            requested = container_value(container, "requests", resource)
            limited = container_value(container, "limits", resource)
            if requested is not None and limited is not None and requested < limited:
                yield Hit(
                    workload.resource,
                    f"{workload.label}: {resource} request {request} is below its limit {limit}; "
                    "the scheduler packs pods by the request, so under load the node runs out "
                    "and evicts or OOM-kills the Ray pod first",
                    f"requests.{resource}: {request}, limits.{resource}: {limit}",
                )


def gpu_memory_gib(inventory: Inventory, workload: Workload) -> tuple[float, str] | None:
    configured = _setting(workload, "MOCHI_WORKER_GPU_MEMORY_GIB")
    if _positive(configured):
        return float(configured), f"MOCHI_WORKER_GPU_MEMORY_GIB={configured}"
    labels = [
        (node.get("metadata") or {}).get("labels") or {}
        for node in inventory.of("Node")
        if "nvidia.com/gpu.memory" in ((node.get("metadata") or {}).get("labels") or {})
    ]
    if labels:
        smallest = min(labels, key=lambda lab: int(lab["nvidia.com/gpu.memory"]))
        mib = int(smallest["nvidia.com/gpu.memory"])
        return mib / 1024, f"node label nvidia.com/gpu.memory={mib}"
    return None


@check(
    code="MEM004",
    severity=Severity.ERROR,
    category=Category.MEMORY,
    summary="The largest job the service admits does not fit the Mochi workers' GPU memory",
    fix="Use GPUs with more memory, or lower the admitted frame count / resolution.",
)
def largest_job_gpu(inventory: Inventory):
    for workload in inventory.workloads:
        if workload.ray_role != "worker" or not workload.runs_mochi_worker:
            continue
        gpu = gpu_memory_gib(inventory, workload)
        if gpu is None:
            continue
        model = _setting(workload, "MOCHI_MODEL")
        profile = profile_for(model) if model else MOCHI_1
        job = LARGEST_JOB
        plan = plan_generation(
            profile, job.num_frames, job.height, job.width, job.guidance_scale, gpu[0],
            **parallelism(workload),
        )  # fmt: skip
        if plan.fits:
            continue
        yield Hit(
            workload.resource,
            f"{workload.label}: by the Mochi-1 worker model, a {job.num_frames}-frame "
            f"{job.height}x{job.width} {profile.name} job: {plan.describe()}",
            f"{gpu[1]}; Mochi worker: {workload.mochi_worker_evidence}",
        )


OOM_MESSAGES = ("Task was killed due to the node running low on memory", "OutOfMemoryError")


@check(
    code="MEM005",
    severity=Severity.ERROR,
    category=Category.MEMORY,
    summary="Containers were OOM-killed",
    fix="Raise the memory limit to the memory model's footprint (see MEM001) or lower the object "
    "store.",
)
def oom_killed(inventory: Inventory):
    for pod in inventory.of("Pod"):
        status = pod.get("status") or {}
        for container in status.get("containerStatuses") or []:
            for state_key in ("state", "lastState"):
                terminated = (container.get(state_key) or {}).get("terminated") or {}
                if terminated.get("reason") == "OOMKilled":
                    yield Hit(
                        f"Pod/{namespace_of(pod)}/{name_of(pod)}",
                        f"container {container.get('name')} was OOM-killed "
                        f"(restarts: {container.get('restartCount', 0)})",
                        f"{state_key}.terminated.reason: OOMKilled, exitCode "
                        f"{terminated.get('exitCode', 137)}, finishedAt "
                        f"{terminated.get('finishedAt', '?')}",
                    )
                    break
    for event in inventory.events:
        message = str(event.get("message") or "")
        if event.get("reason") == "OOMKilling" or any(m in message for m in OOM_MESSAGES):
            involved = event.get("involvedObject") or {}
            yield Hit(
                f"{involved.get('kind', 'Pod')}/{involved.get('namespace') or namespace_of(event)}"
                f"/{involved.get('name', '?')}",
                f"{event.get('reason', 'event')}: a process was killed for memory",
                message.strip().splitlines()[0][:300] if message.strip() else "OOMKilling",
            )
