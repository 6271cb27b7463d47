"""Services, and the settings ConfigMap whose addresses are derived from them (no IP literals)."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra import naming
from infra.components.args import StackArgs
from infra.config_model import StackConfig
from service.quantities import gib


def _service(resource_name, component, namespace, ports, parent) -> k8s.core.v1.Service:
    return k8s.core.v1.Service(
        resource_name,
        metadata=naming.metadata(component, namespace),
        spec={
            "type": "ClusterIP",
            "selector": naming.selector(component),
            "ports": [
                {"name": port_name, "port": port, "targetPort": port, "protocol": "TCP"}
                for port_name, port in ports
            ],
        },
        opts=pulumi.ResourceOptions(parent=parent),
    )


def _url(service: k8s.core.v1.Service, port_name: str, template: str) -> pulumi.Output[str]:
    """`template` filled with the Service's cluster DNS name and the port called `port_name`."""

    def fill(args) -> str:
        metadata, spec = args
        port = next(p["port"] for p in spec["ports"] if p["name"] == port_name)
        host = f"{metadata['name']}.{metadata['namespace']}.svc.cluster.local"
        return template.format(host=host, port=int(port))

    return pulumi.Output.all(service.metadata, service.spec).apply(fill)


# Settings of service.config.Settings the ConfigMap leaves out, and why: a test keeps every
# other setting rendered, so that a new setting cannot be forgotten here.
NOT_IN_CONFIG_MAP = {
    "redis_password": "from the Secret mochi-redis (podspec.redis_password_env)",
    "bootstrap_api_keys": "from the Secret of the API keys, on the API pod only",
    "redis_appendfsync": "a Redis server flag (mochi:redisAppendfsync in the Redis component)",
    "lease_seconds": "the service default; tuned per deployment through the env if ever",
    "max_attempts": "the service default",
    "reaper_interval_seconds": "the service default",
    "reaper_enabled": "the service default (on)",
    "worker_ttl_seconds": "the service default",
    "max_queued_per_account": "the service default",
    "rate_limit_per_minute": "the service default",
    "auth_failures_per_minute": "the service default",
    "torch_compile": "the service default",
    "torch_threads": "the service default",
    "test_hang_prompt": "tests only",
    "test_hang_seconds": "tests only",
}


def operator_settings(config: StackConfig) -> dict[str, str]:
    """Retention, watchdogs, the submission high-water mark and /docs, as the service reads
    them (service.config.Settings)."""
    return {
        "MOCHI_RESULT_TTL_SECONDS": str(config.result_ttl_seconds),
        "MOCHI_ORPHAN_GRACE_SECONDS": str(config.orphan_grace_seconds),
        "MOCHI_JOB_TIMEOUT_SECONDS": str(config.job_timeout_seconds),
        "MOCHI_STALL_TIMEOUT_SECONDS": str(config.stall_timeout_seconds),
        "MOCHI_REDIS_HIGH_WATER": f"{config.redis_high_water:g}",
        "MOCHI_DOCS_ENABLED": "true" if config.docs_enabled else "false",
    }


class Addresses(pulumi.ComponentResource):
    def __init__(self, name: str, args: StackArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mochi:infra:Addresses", name, None, opts)
        config, namespace = args.config, args.namespace
        redis = _service("redis", naming.REDIS, namespace, [("redis", naming.REDIS_PORT)], self)
        # Only ClusterIP: the dashboard (and Jobs API) is reachable inside the cluster alone.
        ray_head = _service(
            "ray-head",
            naming.RAY_HEAD,
            namespace,
            [
                ("gcs", naming.RAY_GCS_PORT),
                ("client", naming.RAY_CLIENT_PORT),
                ("dashboard", naming.RAY_DASHBOARD_PORT),
                ("metrics", naming.RAY_METRICS_PORT),
            ],
            self,
        )
        api = _service("api", naming.API, namespace, [("http", naming.API_PORT)], self)
        self.api_service = api
        self.redis_service_name = redis.metadata.apply(lambda meta: meta["name"])
        self.redis_url = _url(redis, "redis", "redis://{host}:{port}/0")
        self.ray_dashboard_url = _url(ray_head, "dashboard", "http://{host}:{port}")
        self.ray_gcs_address = _url(ray_head, "gcs", "{host}:{port}")
        self.api_url = _url(api, "http", "http://{host}:{port}")
        gpu_memory = config.gpu_memory_gib if config.gpus_per_worker else 0
        gpus_per_actor = config.gpus_per_pipeline if config.gpus_per_worker else 0
        settings = k8s.core.v1.ConfigMap(
            "settings",
            metadata={
                "name": naming.SETTINGS_CONFIG_MAP,
                "namespace": namespace,
                "labels": naming.PART_OF,
            },
            data={
                "MOCHI_REDIS_URL": self.redis_url,
                "MOCHI_RAY_DASHBOARD_URL": self.ray_dashboard_url,
                # Not a service setting: the `ray start --address` of worker pods.
                "MOCHI_RAY_GCS_ADDRESS": self.ray_gcs_address,
                "MOCHI_OUTPUT_DIR": naming.OUTPUT_DIR,
                "MOCHI_MODEL": config.model,
                "MOCHI_MODEL_CACHE_DIR": (
                    naming.MODEL_CACHE_DIR if config.model_cache_enabled else ""
                ),
                # An actor holds one pipeline on MOCHI_GPUS_PER_WORKER GPUs: every worker pod
                # runs gpusPerWorker / gpusPerPipeline of them, so no GPU Ray hands out sits
                # idle. A job runs on MOCHI_GPUS_PER_JOB actors of one pod, and a service
                # "worker" (MOCHI_WORKERS) is such a group.
                "MOCHI_WORKERS": str(config.pool_workers),
                "MOCHI_GPUS_PER_WORKER": str(gpus_per_actor),
                "MOCHI_GPUS_PER_JOB": str(config.gpus_per_job),
                "MOCHI_DIT_PRECISION": config.dit_precision,
                "MOCHI_WORKER_GPU_MEMORY_GIB": str(gpu_memory),
                # One actor's share of its pod's memory (what CPU workers admit jobs against).
                "MOCHI_WORKER_HOST_MEMORY_GIB": (
                    f"{gib(config.ray_worker_memory) / config.pipelines_per_worker:g}"
                ),
                **operator_settings(config),
                # Ray 2.52+ token authentication, on every Ray node and Jobs API client.
                "RAY_AUTH_MODE": "token",
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[redis, ray_head, api]),
        )
        self.settings_name = settings.metadata.apply(lambda meta: meta["name"])
        self.register_outputs(
            {
                "redis_url": self.redis_url,
                "ray_dashboard_url": self.ray_dashboard_url,
                "api_url": self.api_url,
            }
        )
