"""Resources of every pod the stack runs: the same numbers feed the manifests and the checks."""

from __future__ import annotations

import math
from dataclasses import dataclass

from infra import naming
from infra.config_model import StackConfig
from service.quantities import cores, gib

# Small fixed-size containers (no config key: they do not scale with the workload).
SUPERVISOR_RESOURCES = ("250m", "512Mi")
WAIT_FOR_GCS_RESOURCES = ("100m", "256Mi")
PREFILL_RESOURCES = ("1", "4Gi")
# Redis's maxmemory as a share of its container limit. maxmemory bounds used_memory, but the
# container's memory is more than that: allocator fragmentation, client buffers and, during an
# AOF rewrite, the parent's rewrite buffer plus the forked child's copy-on-write pages. The fifth
# left over keeps those under the limit, so Redis refuses writes (noeviction) before the kernel
# OOM-kills it (and a Redis killed that way may not restart: loading the AOF needs the memory).
REDIS_MAXMEMORY_SHARE = 0.8
# Below this, maxmemory holds too few jobs for the service to be of use.
REDIS_MIN_MAXMEMORY_MIB = 64


@dataclass(frozen=True)
class Resources:
    cpu: str
    memory: str
    gpus: int = 0

    def spec(self) -> dict:
        """Requests equal limits: Guaranteed QoS, so the OOM killer never picks these first."""
        values = {"cpu": self.cpu, "memory": self.memory}
        if self.gpus:
            values[naming.GPU_RESOURCE] = str(self.gpus)
        return {"requests": dict(values), "limits": dict(values)}


@dataclass(frozen=True)
class PodBudget:
    """One workload's pods: `count` at steady state, `surge` more during a rolling update."""

    name: str
    resources: Resources
    count: int
    surge: int = 0
    init: Resources | None = None

    def effective(self) -> tuple[float, float, int]:
        """The pod's (cpu cores, memory GiB, gpus) as the scheduler and the quota count it."""
        cpu, memory = cores(self.resources.cpu), gib(self.resources.memory)
        if self.init:
            cpu = max(cpu, cores(self.init.cpu))
            memory = max(memory, gib(self.init.memory))
        return cpu, memory, self.resources.gpus


def api(config: StackConfig) -> Resources:
    return Resources(config.api_cpu, config.api_memory)


def redis(config: StackConfig) -> Resources:
    return Resources(config.redis_cpu, config.redis_memory)


def redis_maxmemory_mib(config: StackConfig) -> int:
    """Redis's `maxmemory`, in MiB (Redis's `mb` unit is 2**20 bytes)."""
    return int(gib(config.redis_memory) * 1024 * REDIS_MAXMEMORY_SHARE)


def ray_head(config: StackConfig) -> Resources:
    return Resources(config.ray_head_cpu, config.ray_head_memory)


def ray_worker_cpus(config: StackConfig) -> int:
    """What a worker pod's `ray start --num-cpus` offers its actors: whole cores, at least 1."""
    return max(1, math.floor(cores(config.ray_worker_cpu)))


def ray_worker(config: StackConfig) -> Resources:
    return Resources(config.ray_worker_cpu, config.ray_worker_memory, config.gpus_per_worker)


def supervisor() -> Resources:
    return Resources(*SUPERVISOR_RESOURCES)


def wait_for_gcs() -> Resources:
    return Resources(*WAIT_FOR_GCS_RESOURCES)


def prefill() -> Resources:
    return Resources(*PREFILL_RESOURCES)


def pod_budgets(config: StackConfig) -> list[PodBudget]:
    """Every pod the namespace holds at the worst moment of a rollout."""
    budgets = [
        # maxSurge 1: one extra API pod while a new version rolls out.
        PodBudget(naming.API, api(config), config.api_replicas, surge=1),
        PodBudget(naming.REDIS, redis(config), 1),
        # Recreate strategy / operator-managed: no surge for the supervisor and Ray pods.
        PodBudget(naming.SUPERVISOR, supervisor(), 1),
        PodBudget(naming.RAY_HEAD, ray_head(config), 1),
        PodBudget(
            naming.RAY_WORKER,
            ray_worker(config),
            config.ray_worker_replicas,
            init=wait_for_gcs(),
        ),
    ]
    if config.model_cache_enabled and config.prefill_model_cache:
        budgets.append(PodBudget(naming.MODEL_PREFILL, prefill(), 1))
    return budgets


def storage_requests(config: StackConfig) -> list[tuple[str, str]]:
    """(config key field, quantity) of every PersistentVolumeClaim the program creates."""
    claims = [("redis_storage", config.redis_storage), ("output_storage", config.output_storage)]
    if config.model_cache_enabled:
        claims.append(("model_cache_storage", config.model_cache_storage))
    return claims
