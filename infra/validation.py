"""The rules a stack configuration must pass before the program creates anything.

Each problem names the config key, its value and the limit it breaks; `validate` returns them
all so a user fixes everything in one round.
"""

from __future__ import annotations

from infra import sizing
from infra.config_model import (
    ACCESS_MODES,
    DATA_PROTECTION,
    DNS_SUBDOMAIN,
    RAY_MODES,
    ConfigProblem,
    RequiredValue,
    StackConfig,
    config_key,
    is_dns_label,
    is_pinned_image,
    is_placeholder_host,
)
from service.config import DIT_PRECISIONS, STALL_FLOOR_SECONDS
from service.image_refs import parse_image, reference_problem
from service.memory_model import (
    HOST_PROCESS_OVERHEAD_GIB,
    plan_generation,
    profile_for,
    worker_host_memory_gib,
)
from service.params import LARGEST_JOB
from service.quantities import cores, gib

# A result deleted sooner could be gone before its client fetches it; an orphan grace shorter
# than this could sweep a file a slow worker is still writing.
MIN_RESULT_TTL_SECONDS = 60
MIN_ORPHAN_GRACE_SECONDS = 60
# Watchdog settings and what their 0 means.
WATCHDOG_OFF = {
    "job_timeout_seconds": "no deadline",
    "stall_timeout_seconds": "derived from the memory model",
}

MEMORY_FIELDS = (
    "api_memory",
    "redis_memory",
    "redis_storage",
    "output_storage",
    "ray_head_memory",
    "ray_head_object_store_memory",
    "ray_worker_memory",
    "ray_object_store_memory",
    "ray_shm_size",
    "quota_requests_memory",
    "quota_limits_memory",
    "quota_storage",
)
CPU_FIELDS = ("api_cpu", "redis_cpu", "ray_head_cpu", "ray_worker_cpu", "quota_requests_cpu")
IMAGES = {
    "api_image": "the API image (images/api.Dockerfile)",
    "worker_image": "the worker image (images/worker.Dockerfile)",
    "redis_image": "the Redis image",
}


def validate(config: StackConfig) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []

    def problem(field_name: str, message: str) -> None:
        problems.append(ConfigProblem(config_key(field_name), getattr(config, field_name), message))

    def required(field_name: str, message: str) -> None:
        problems.append(RequiredValue(config_key(field_name), getattr(config, field_name), message))

    _check_images(config, problem, required)
    _check_storage_and_ingress(config, problem, required)
    _check_names(config, problem)
    parsed = _check_quantities(config, problem)
    _check_counts(config, problem)
    _check_gpus(config, problem)
    _check_job_ranks(config, problem)
    _check_dit_precision(config, problem)
    _check_lifetimes(config, problem)
    if parsed:
        _check_redis_memory(config, problem)
        _check_worker_cpu(config, problem)
        _check_worker_memory(config, problem)
        _check_quota(config, problem)
    return problems


def _check_images(config, problem, required) -> None:
    for field_name, what in IMAGES.items():
        image = getattr(config, field_name)
        ref = parse_image(image)
        registry = ref.registry
        if not image or is_placeholder_host(registry):
            placeholder = f" ({registry} is a placeholder)" if registry else ""
            required(
                field_name,
                f"{what} in the registry your cluster pulls from, pinned{placeholder}",
            )
        elif malformed := reference_problem(image):
            problem(
                field_name, f"is not an image reference a container runtime accepts: {malformed}"
            )
        elif not is_pinned_image(ref):
            problem(field_name, "must be pinned to a tag other than `latest` or to a digest")


def _check_storage_and_ingress(config, problem, required) -> None:
    if config.output_access_mode == "ReadWriteMany" and not config.shared_storage_class:
        required(
            "shared_storage_class",
            "the StorageClass that offers ReadWriteMany for the shared volumes (NFS, CephFS, "
            "EFS, Filestore, ...); the cluster default rarely does, and the claims would stay "
            "Pending",
        )
    for field_name in ("storage_class", "shared_storage_class"):
        name = getattr(config, field_name)
        if name and not (len(name) <= 253 and DNS_SUBDOMAIN.match(name)):
            problem(field_name, "must be a StorageClass name: lower-case a-z, 0-9, '-' and '.'")
    if config.data_protection not in DATA_PROTECTION:
        problem("data_protection", f"must be one of {', '.join(DATA_PROTECTION)}")
    if config.ingress_host and is_placeholder_host(config.ingress_host):
        required(
            "ingress_host",
            f"the host name your Ingress serves ({config.ingress_host} is a placeholder), "
            "or empty for no Ingress",
        )
    elif config.ingress_host and not DNS_SUBDOMAIN.match(config.ingress_host):
        problem("ingress_host", "must be a DNS name such as mochi.acme.dev, or empty")


def _check_names(config, problem) -> None:
    if not is_dns_label(config.namespace):
        problem("namespace", "must be a DNS label: lower-case a-z, 0-9 and '-', at most 63")
    if not is_dns_label(config.bootstrap_account):
        problem("bootstrap_account", "must be a DNS label (it becomes `account:key`)")
    if config.gpu_node_selector and "=" not in config.gpu_node_selector:
        problem("gpu_node_selector", "must be `label=value`, or empty")
    if config.ray_mode not in RAY_MODES:
        problem("ray_mode", f"must be one of {', '.join(RAY_MODES)}")
    if config.install_kuberay_operator and config.ray_mode != "kuberay":
        problem("install_kuberay_operator", "needs mochi:rayMode = kuberay")
    if config.output_access_mode not in ACCESS_MODES:
        problem("output_access_mode", f"must be one of {', '.join(ACCESS_MODES)}")
    if config.prefill_model_cache and (not config.model_cache_enabled or config.model == "tiny"):
        problem(
            "prefill_model_cache",
            "needs mochi:modelCacheStorage set and a model to download (not `tiny`)",
        )


def _check_quantities(config, problem) -> bool:
    parsed = True
    for field_name in MEMORY_FIELDS + (
        ("model_cache_storage",) if config.model_cache_storage else ()
    ):
        try:
            gib(getattr(config, field_name))
        except ValueError:
            problem(field_name, "is not a Kubernetes quantity such as 512Mi or 64Gi")
            parsed = False
    for field_name in CPU_FIELDS:
        try:
            cores(getattr(config, field_name))
        except ValueError:
            problem(field_name, "is not a CPU quantity such as 500m or 4")
            parsed = False
    return parsed


def _check_counts(config, problem) -> None:
    for field_name in ("api_replicas", "ray_worker_replicas", "quota_pods"):
        if getattr(config, field_name) < 1:
            problem(field_name, "must be at least 1")
    for field_name in ("gpus_per_worker", "gpu_memory_gib", "gpus_per_node", "quota_gpus"):
        if getattr(config, field_name) < 0:
            problem(field_name, "must not be negative")
    if config.gpus_per_pipeline < 1:
        problem("gpus_per_pipeline", "must be at least 1 (GPUs of one GenerationWorker actor)")


def _check_gpus(config, problem) -> None:
    if config.gpus_per_worker > config.gpus_per_node:
        problem(
            "gpus_per_worker",
            f"exceeds the GPUs of one node (mochi:gpusPerNode = {config.gpus_per_node}): "
            "the worker pod can never be scheduled",
        )
    if config.gpus_per_worker == 0:
        if config.model != "tiny":
            problem("gpus_per_worker", f"is 0, but model {config.model!r} needs a GPU")
        return
    if config.gpus_per_pipeline >= 1 and config.gpus_per_worker % config.gpus_per_pipeline:
        idle = config.gpus_per_worker % config.gpus_per_pipeline
        problem(
            "gpus_per_pipeline",
            f"does not divide mochi:gpusPerWorker = {config.gpus_per_worker}: each worker pod runs "
            f"gpusPerWorker / gpusPerPipeline pipelines, and {idle} GPU(s) per pod would sit idle",
        )
    if not config.gpu_node_selector:
        problem("gpu_node_selector", "must select the GPU nodes when workers request GPUs")
    _check_largest_job(config, problem)


def _check_largest_job(config, problem) -> None:
    """Every rank's GPU holds a whole pipeline and its share of the DiT; rank 0 also decodes."""
    if config.gpus_per_job < 1 or config.dit_precision not in DIT_PRECISIONS:
        return  # reported by their own rules; the plan needs valid values
    job = LARGEST_JOB
    plan = plan_generation(
        profile_for(config.model), job.num_frames, job.height, job.width, job.guidance_scale,
        config.gpu_memory_gib, config.gpus_per_job, config.dit_precision,
    )  # fmt: skip
    if not plan.fits:
        where = "one GPU"
        if config.gpus_per_job > 1:
            where = f"one GPU per rank (mochi:gpusPerJob = {config.gpus_per_job})"
        problem(
            "gpu_memory_gib",
            f"the largest job the API admits ({job.num_frames} frames at {job.height}x{job.width}) "
            f"does not fit {where}: {plan.describe()}",
        )


def _check_job_ranks(config, problem) -> None:
    """A job's gpusPerJob ranks: actors of one worker pod, each a whole pipeline, splitting the
    DiT's attention heads (Ulysses) between them."""
    ranks = config.gpus_per_job
    if ranks < 1:
        problem("gpus_per_job", "must be at least 1 (the GenerationWorker actors of one job)")
        return
    profile = profile_for(config.model)
    if profile.attention_heads % ranks:
        divisors = [
            n for n in range(1, profile.attention_heads + 1) if not profile.attention_heads % n
        ]
        problem(
            "gpus_per_job",
            f"does not divide the {profile.attention_heads} attention heads of {config.model}'s "
            f"transformer (each rank attends with heads / gpusPerJob of them); use one of "
            f"{', '.join(map(str, divisors))}",
        )
    if config.gpus_per_worker > 0:
        _check_gpu_ranks(config, problem)
    elif ranks > 1 and config.model != "tiny":
        problem(
            "gpus_per_job",
            f"is {ranks}, but a job across ranks needs GPU workers (mochi:gpusPerWorker = "
            f"{config.gpus_per_worker}) for model {config.model!r}; only `tiny` runs on CPU",
        )


def _check_gpu_ranks(config, problem) -> None:
    ranks = config.gpus_per_job
    placement = ranks * config.gpus_per_pipeline
    if config.gpus_per_pipeline >= 1 and placement > config.gpus_per_node:
        problem(
            "gpus_per_job",
            f"places {ranks} ranks x mochi:gpusPerPipeline = {config.gpus_per_pipeline} = "
            f"{placement} GPUs on one node, above mochi:gpusPerNode = {config.gpus_per_node}: "
            "a job's ranks are packed on one node (STRICT_PACK)",
        )
    if config.gpus_per_pipeline < 1 or config.gpus_per_worker % config.gpus_per_pipeline:
        return  # gpusPerPipeline's own rules report it
    actors = config.gpus_per_worker // config.gpus_per_pipeline
    if actors % ranks:
        problem(
            "gpus_per_job",
            f"does not divide the {actors} actors of a worker pod (mochi:gpusPerWorker = "
            f"{config.gpus_per_worker} / mochi:gpusPerPipeline = {config.gpus_per_pipeline}): a "
            f"job's ranks are packed on one pod, so {actors % ranks} actor(s) per pod would sit "
            "idle",
        )


def _check_dit_precision(config, problem) -> None:
    if config.dit_precision not in DIT_PRECISIONS:
        problem("dit_precision", f"must be one of {', '.join(DIT_PRECISIONS)}")
    elif config.dit_precision == "fp8" and config.gpus_per_worker == 0:
        problem(
            "dit_precision",
            "fp8 needs GPU workers (mochi:gpusPerWorker = 0): its matmuls run on GPUs of "
            "compute capability 8.9 or newer",
        )


def _check_lifetimes(config, problem) -> None:
    floor = int(STALL_FLOOR_SECONDS)
    if config.result_ttl_seconds < MIN_RESULT_TTL_SECONDS:
        problem(
            "result_ttl_seconds",
            f"must be at least {MIN_RESULT_TTL_SECONDS}: a client needs time to fetch its video",
        )
    if config.orphan_grace_seconds < MIN_ORPHAN_GRACE_SECONDS:
        problem(
            "orphan_grace_seconds",
            f"must be at least {MIN_ORPHAN_GRACE_SECONDS}: a file being written may look orphaned",
        )
    for field_name, off in WATCHDOG_OFF.items():
        value = getattr(config, field_name)
        if value != 0 and value < floor:
            problem(field_name, f"must be 0 ({off}) or at least {floor} seconds")
    if not 0 < config.redis_high_water <= 1:
        problem(
            "redis_high_water",
            "must be a share of maxmemory above 0 and at most 1 (0.9: refuse new submissions "
            "once Redis holds 90% of maxmemory)",
        )


def _check_redis_memory(config, problem) -> None:
    maxmemory = sizing.redis_maxmemory_mib(config)
    if maxmemory < sizing.REDIS_MIN_MAXMEMORY_MIB:
        problem(
            "redis_memory",
            f"leaves Redis a maxmemory of {maxmemory} MiB ({sizing.REDIS_MAXMEMORY_SHARE:.0%} of "
            f"the limit), below the {sizing.REDIS_MIN_MAXMEMORY_MIB} MiB the job store needs",
        )


def _check_worker_cpu(config, problem) -> None:
    actors = config.pipelines_per_worker
    cpus = sizing.ray_worker_cpus(config)
    if cpus < actors:
        problem(
            "ray_worker_cpu",
            f"gives Ray {cpus} CPU(s) (ray start --num-cpus), fewer than the pod's {actors} "
            f"actors (gpusPerWorker / gpusPerPipeline, or a CPU pod's gpusPerJob ranks) that "
            "ask for one each: the rest would never be scheduled",
        )


def _check_worker_memory(config, problem) -> None:
    limit = gib(config.ray_worker_memory)
    object_store = gib(config.ray_object_store_memory)
    shm = gib(config.ray_shm_size)
    # Host RAM of one worker pod: its pipelines + object store (/dev/shm) + process overhead.
    pipelines = config.pipelines_per_worker
    need = worker_host_memory_gib(pipelines, object_store, profile_for(config.model))
    if need > limit:
        problem(
            "ray_worker_memory",
            f"below the worker's host footprint {need:.1f} GiB (memory model: "
            f"{pipelines} pipeline(s) of {config.model} + object store "
            f"{object_store:.1f} GiB + overhead): the pod would be OOM-killed",
        )
    if object_store > shm:
        problem(
            "ray_object_store_memory",
            f"exceeds /dev/shm (mochi:rayShmSize = {config.ray_shm_size}, {shm:.1f} GiB)",
        )
    if shm > limit:
        problem(
            "ray_shm_size",
            f"exceeds the worker memory limit (mochi:rayWorkerMemory = {config.ray_worker_memory}, "
            f"{limit:.1f} GiB): a memory-backed /dev/shm counts against it",
        )
    head_need = gib(config.ray_head_object_store_memory) + HOST_PROCESS_OVERHEAD_GIB
    if head_need > gib(config.ray_head_memory):
        problem(
            "ray_head_memory",
            f"below the head's object store + overhead ({head_need:.1f} GiB)",
        )


def _check_quota(config, problem) -> None:
    budgets = sizing.pod_budgets(config)
    cpu = memory = 0.0
    gpus = pods = 0
    parts = []
    for budget in budgets:
        pod_cpu, pod_memory, pod_gpus = budget.effective()
        count = budget.count + budget.surge
        cpu += pod_cpu * count
        memory += pod_memory * count
        gpus += pod_gpus * count
        pods += count
        parts.append(f"{budget.name} {count}x{pod_memory:g}Gi")
    detail = f"({', '.join(parts)}, including a rolling update's surge)"
    if cpu > cores(config.quota_requests_cpu):
        problem("quota_requests_cpu", f"below the pods' CPU requests {cpu:g} {detail}")
    if memory > gib(config.quota_requests_memory):
        problem("quota_requests_memory", f"below the pods' memory requests {memory:g} GiB {detail}")
    if memory > gib(config.quota_limits_memory):
        problem("quota_limits_memory", f"below the pods' memory limits {memory:g} GiB {detail}")
    if gpus > config.quota_gpus:
        problem("quota_gpus", f"below the GPUs the workers request ({gpus})")
    if pods > config.quota_pods:
        problem("quota_pods", f"below the number of pods ({pods}) {detail}")
    storage = sum(gib(quantity) for _, quantity in sizing.storage_requests(config))
    if storage > gib(config.quota_storage):
        problem("quota_storage", f"below the volumes' requests {storage:g} GiB")
