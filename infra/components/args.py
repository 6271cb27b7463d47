"""What each component is given, typed and frozen (as Pulumi's component examples take an Args
object): only the values it uses, computed here from the stack's config, so a component never
reads the whole config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra import naming, sizing
from infra.config_model import StackConfig
from service.quantities import byte_count


@dataclass(frozen=True)
class FoundationArgs:
    namespace: str
    quota: Mapping[str, str]
    data_protection: str


@dataclass(frozen=True)
class NamespacedArgs:
    namespace: pulumi.Input[str]


@dataclass(frozen=True)
class SecretsArgs(NamespacedArgs):
    bootstrap_account: str


@dataclass(frozen=True)
class ClaimArgs:
    name: str
    size: str
    access_mode: str
    storage_class: str


@dataclass(frozen=True)
class StorageArgs(NamespacedArgs):
    output: ClaimArgs
    model_cache: ClaimArgs | None
    data_protection: str


@dataclass(frozen=True)
class SettingsArgs(NamespacedArgs):
    """`values`: service setting name -> value; `extra`: env that is no service setting."""

    values: Mapping[str, pulumi.Input[str]]
    extra: Mapping[str, pulumi.Input[str]]
    depends_on: tuple[pulumi.Resource, ...] = ()


@dataclass(frozen=True)
class RedisArgs(NamespacedArgs):
    service_name: pulumi.Input[str]
    image: str
    appendfsync: str
    maxmemory_mib: int
    resources: Mapping
    storage: str
    storage_class: str


@dataclass(frozen=True)
class PodArgs(NamespacedArgs):
    """Pods of the service: its image, the settings ConfigMap and the output volume's claim."""

    image: str
    settings_name: pulumi.Input[str]
    output_claim: pulumi.Input[str]


@dataclass(frozen=True)
class IngressArgs:
    host: str
    class_name: str


@dataclass(frozen=True)
class ApiArgs(PodArgs):
    replicas: int
    resources: Mapping
    service: k8s.core.v1.Service
    ingress: IngressArgs | None


@dataclass(frozen=True)
class ModelCacheArgs(PodArgs):
    """Pods that mount the model cache (None: the stack keeps no cache volume)."""

    model_cache_claim: pulumi.Input[str] | None


@dataclass(frozen=True)
class RayArgs(ModelCacheArgs):
    head_resources: Mapping
    worker_resources: Mapping
    head_start: Mapping[str, str]
    worker_start: Mapping[str, str]
    head_shm_size: str
    worker_shm_size: str
    worker_replicas: int
    gpus_per_worker: int
    gpu_node_labels: Mapping[str, str]
    install_operator: bool


def foundation_args(config: StackConfig) -> FoundationArgs:
    quota = {
        "requests.cpu": config.quota_requests_cpu,
        "requests.memory": config.quota_requests_memory,
        "limits.memory": config.quota_limits_memory,
        f"requests.{naming.GPU_RESOURCE}": str(config.quota_gpus),
        "pods": str(config.quota_pods),
        "requests.storage": config.quota_storage,
    }
    return FoundationArgs(config.namespace, quota, config.data_protection)


def storage_args(config: StackConfig, namespace) -> StorageArgs:
    def claim(name: str, size: str) -> ClaimArgs:
        return ClaimArgs(name, size, config.output_access_mode, config.shared_storage_class)

    cache = claim(naming.MODEL_CACHE_PVC, config.model_cache_storage)
    return StorageArgs(
        namespace,
        output=claim(naming.OUTPUT_PVC, config.output_storage),
        model_cache=cache if config.model_cache_enabled else None,
        data_protection=config.data_protection,
    )


def redis_args(config: StackConfig, namespace, service_name) -> RedisArgs:
    return RedisArgs(
        namespace,
        service_name=service_name,
        image=config.redis_image,
        appendfsync=config.redis_appendfsync,
        maxmemory_mib=sizing.redis_maxmemory_mib(config),
        resources=sizing.redis(config).spec(),
        storage=config.redis_storage,
        storage_class=config.storage_class,
    )


def api_args(config: StackConfig, pods: PodArgs, service) -> ApiArgs:
    ingress = IngressArgs(config.ingress_host, config.ingress_class_name)
    # The API runs its own image; the other pods of the service run the worker image.
    return ApiArgs(
        **{**vars(pods), "image": config.api_image},
        replicas=config.api_replicas,
        resources=sizing.api(config).spec(),
        service=service,
        ingress=ingress if config.ingress_enabled else None,
    )


def head_start_params(config: StackConfig) -> dict[str, str]:
    """`ray start` flags of the head. It runs no actors: the pool driver only schedules them."""
    return {
        "dashboard-host": "0.0.0.0",
        "dashboard-port": str(naming.RAY_DASHBOARD_PORT),
        "ray-client-server-port": str(naming.RAY_CLIENT_PORT),
        "metrics-export-port": str(naming.RAY_METRICS_PORT),
        "num-cpus": "0",
        "num-gpus": "0",
        "object-store-memory": str(byte_count(config.ray_head_object_store_memory)),
    }


def worker_start_params(config: StackConfig) -> dict[str, str]:
    return {
        "metrics-export-port": str(naming.RAY_METRICS_PORT),
        "num-cpus": str(sizing.ray_worker_cpus(config)),
        "num-gpus": str(config.gpus_per_worker),
        # Explicit, and no larger than the /dev/shm volume of the worker pods.
        "object-store-memory": str(byte_count(config.ray_object_store_memory)),
    }


def ray_args(config: StackConfig, cached: ModelCacheArgs) -> RayArgs:
    return RayArgs(
        **vars(cached),
        head_resources=sizing.ray_head(config).spec(),
        worker_resources=sizing.ray_worker(config).spec(),
        head_start=head_start_params(config),
        worker_start=worker_start_params(config),
        head_shm_size=config.ray_head_object_store_memory,
        worker_shm_size=config.ray_shm_size,
        worker_replicas=config.ray_worker_replicas,
        gpus_per_worker=config.gpus_per_worker,
        gpu_node_labels=config.gpu_node_labels,
        install_operator=config.install_kuberay_operator,
    )
