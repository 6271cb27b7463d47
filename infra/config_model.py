"""The typed stack configuration: StackConfig, its problems, and the value rules it shares with
validation (DNS names, pinned images, placeholder hosts). Nothing here reads Pulumi or
validates: infra/config.py loads and validates, infra/validation.py holds the rules."""

from __future__ import annotations

import re
from dataclasses import dataclass

from service.image_refs import ImageRef

PROJECT = "mochi"
RAY_MODES = ("kuberay", "plain")
ACCESS_MODES = ("ReadWriteMany", "ReadWriteOnce")
# How the Namespace and the volumes that hold data survive `pulumi destroy` and replacements.
DATA_PROTECTION = ("protect", "retain", "none")
# Domains reserved for documentation (RFC 2606, RFC 6761): a value under one is a placeholder.
PLACEHOLDER_DOMAINS = ("example.com", "example.net", "example.org", "example", "invalid")


@dataclass(frozen=True)
class StackConfig:
    namespace: str
    api_image: str
    worker_image: str
    redis_image: str
    model: str
    bootstrap_account: str
    api_replicas: int
    api_cpu: str
    api_memory: str
    ingress_host: str
    ingress_class_name: str
    redis_cpu: str
    redis_memory: str
    redis_storage: str
    redis_appendfsync: str
    result_ttl_seconds: int
    orphan_grace_seconds: int
    job_timeout_seconds: int
    stall_timeout_seconds: int
    redis_high_water: float
    docs_enabled: bool
    storage_class: str
    shared_storage_class: str
    output_storage: str
    output_access_mode: str
    model_cache_storage: str
    prefill_model_cache: bool
    ray_mode: str
    install_kuberay_operator: bool
    ray_head_cpu: str
    ray_head_memory: str
    ray_head_object_store_memory: str
    ray_worker_replicas: int
    ray_worker_cpu: str
    ray_worker_memory: str
    ray_object_store_memory: str
    ray_shm_size: str
    gpus_per_worker: int
    gpus_per_pipeline: int
    gpus_per_job: int
    dit_precision: str
    gpu_memory_gib: int
    gpus_per_node: int
    gpu_node_selector: str
    quota_requests_cpu: str
    quota_requests_memory: str
    quota_limits_memory: str
    quota_gpus: int
    quota_pods: int
    quota_storage: str
    data_protection: str

    @property
    def model_cache_enabled(self) -> bool:
        return bool(self.model_cache_storage)

    @property
    def ingress_enabled(self) -> bool:
        return bool(self.ingress_host)

    @property
    def pipelines_per_worker(self) -> int:
        """Actors (one whole pipeline each) per Ray worker pod: gpusPerWorker / gpusPerPipeline;
        a CPU pod holds one job's ranks (gpusPerJob, 1 by default).

        Validation rejects a gpusPerWorker that gpusPerPipeline does not divide.
        """
        if self.gpus_per_worker <= 0 or self.gpus_per_pipeline <= 0:
            return max(1, self.gpus_per_job)
        return max(1, self.gpus_per_worker // self.gpus_per_pipeline)

    @property
    def groups_per_worker(self) -> int:
        """Jobs one worker pod runs at once: its actors in groups of gpusPerJob ranks, each group
        packed on the pod. Validation rejects a gpusPerJob that does not divide the actors."""
        return self.pipelines_per_worker // max(1, self.gpus_per_job)

    @property
    def pool_workers(self) -> int:
        """MOCHI_WORKERS: the pool's groups (its actors when gpusPerJob is 1) on every pod."""
        return self.ray_worker_replicas * self.groups_per_worker

    @property
    def gpu_node_labels(self) -> dict[str, str]:
        if not self.gpu_node_selector:
            return {}
        key, _, value = self.gpu_node_selector.partition("=")
        return {key: value}


def config_key(field_name: str) -> str:
    """`ray_worker_memory` -> `mochi:rayWorkerMemory`, the key users set with `pulumi config`."""
    head, *rest = field_name.split("_")
    return f"{PROJECT}:" + head + "".join(part.capitalize() for part in rest)


@dataclass(frozen=True)
class ConfigProblem:
    key: str
    value: object
    message: str

    def __str__(self) -> str:
        return f"{self.key} = {self.value!r}: {self.message}"


@dataclass(frozen=True)
class RequiredValue(ConfigProblem):
    """A value the stack must set itself: no default or placeholder can stand for it."""

    def __str__(self) -> str:
        return f"{self.key} is required: {self.message}"


@dataclass(frozen=True)
class UnknownKey(ConfigProblem):
    """A key of the project's namespace that no setting reads (a typo, or a removed key)."""

    def __str__(self) -> str:
        return f"{self.key} is not a config key of this project: {self.message}"


DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def is_dns_label(name: str) -> bool:
    return len(name) <= 63 and bool(DNS_LABEL.match(name))


def is_pinned_image(image: ImageRef) -> bool:
    """A sha256 digest, or an explicit tag other than `latest`."""
    if image.digest and image.digest.startswith("sha256:"):
        return True
    return bool(image.tag) and image.tag != "latest"


def is_placeholder_host(host: str) -> bool:
    name = host.split(":", 1)[0].lower().rstrip(".")
    return any(name == domain or name.endswith("." + domain) for domain in PLACEHOLDER_DOMAINS)
