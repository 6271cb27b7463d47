"""The settings ConfigMap: every setting of the service (service.config.Settings) as the env
its processes read (MOCHI_<NAME>), built by iterating the Settings fields. A setting is either
given a value by `settings_values` or named, with its reason, in NOT_IN_CONFIG_MAP; a new
setting in neither stops the program, so none can be forgotten."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields

import pulumi
import pulumi_kubernetes as k8s

from infra import naming
from infra.components.args import SettingsArgs
from infra.components.base import Component, name_of, shared_metadata
from infra.config_model import StackConfig
from service.config import Settings
from service.quantities import gib

# Settings the pods read from a Secret instead (podspec.secret_env).
FROM_SECRETS = {
    "redis_password": "from the Secret mochi-redis (podspec.redis_password_env)",
    "bootstrap_api_keys": "from the Secret of the API keys, on the API pod only",
}
# Settings the ConfigMap leaves to the service's default or to another component.
LEFT_OUT = {
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
NOT_IN_CONFIG_MAP = {**FROM_SECRETS, **LEFT_OUT}


def env_name(setting: str) -> str:
    return "MOCHI_" + setting.upper()


def operator_settings(config: StackConfig) -> dict[str, str]:
    """Retention, watchdogs, the submission high-water mark and /docs, from the stack config."""
    return {
        "result_ttl_seconds": str(config.result_ttl_seconds),
        "orphan_grace_seconds": str(config.orphan_grace_seconds),
        "job_timeout_seconds": str(config.job_timeout_seconds),
        "stall_timeout_seconds": str(config.stall_timeout_seconds),
        "redis_high_water": f"{config.redis_high_water:g}",
        "docs_enabled": "true" if config.docs_enabled else "false",
    }


def settings_values(
    config: StackConfig, redis_url: pulumi.Input[str], ray_dashboard_url: pulumi.Input[str]
) -> dict[str, pulumi.Input[str]]:
    """Setting name -> value: what infra computes for the service's pods."""
    gpu_memory = config.gpu_memory_gib if config.gpus_per_worker else 0
    gpus_per_actor = config.gpus_per_pipeline if config.gpus_per_worker else 0
    return {
        "redis_url": redis_url,
        "ray_dashboard_url": ray_dashboard_url,
        "output_dir": naming.OUTPUT_DIR,
        "model": config.model,
        "model_cache_dir": naming.MODEL_CACHE_DIR if config.model_cache_enabled else "",
        # An actor holds one pipeline on MOCHI_GPUS_PER_WORKER GPUs: every worker pod runs
        # gpusPerWorker / gpusPerPipeline of them, so no GPU Ray hands out sits idle. A job runs
        # on MOCHI_GPUS_PER_JOB actors of one pod, and a service "worker" (MOCHI_WORKERS) is
        # such a group.
        "workers": str(config.pool_workers),
        "gpus_per_worker": str(gpus_per_actor),
        "gpus_per_job": str(config.gpus_per_job),
        "dit_precision": config.dit_precision,
        "worker_gpu_memory_gib": str(gpu_memory),
        # One actor's share of its pod's memory (what CPU workers admit jobs against).
        "worker_host_memory_gib": (
            f"{gib(config.ray_worker_memory) / config.pipelines_per_worker:g}"
        ),
        **operator_settings(config),
    }


def extra_env(ray_gcs_address: pulumi.Input[str]) -> dict[str, pulumi.Input[str]]:
    """Env in the ConfigMap that is no service setting."""
    return {
        # The `ray start --address` of worker pods.
        "MOCHI_RAY_GCS_ADDRESS": ray_gcs_address,
        # Ray 2.52+ token authentication, on every Ray node and Jobs API client.
        "RAY_AUTH_MODE": "token",
    }


def config_map_data(values: Mapping[str, pulumi.Input[str]]) -> dict[str, pulumi.Input[str]]:
    """The MOCHI_* entries of every Settings field, in the order Settings declares them."""
    names = [setting.name for setting in fields(Settings)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"settings_values sets {unknown}: not fields of service.config.Settings")
    data = {}
    for name in names:
        if name in values:
            data[env_name(name)] = values[name]
        elif name not in NOT_IN_CONFIG_MAP:
            raise ValueError(
                f"service setting {name!r} is neither given a value in "
                "infra/components/settings.py settings_values nor named in NOT_IN_CONFIG_MAP"
            )
    return data


class SettingsConfigMap(Component):
    def __init__(
        self,
        name: str,
        args: SettingsArgs,
        opts: pulumi.ResourceOptions | None = None,
        old_parent: pulumi.Resource | None = None,
    ):
        super().__init__("Settings", name, opts)
        settings = k8s.core.v1.ConfigMap(
            self.child_name(),
            metadata=shared_metadata(naming.SETTINGS_CONFIG_MAP, args.namespace),
            data={**config_map_data(args.values), **args.extra},
            opts=self.child_opts(old_parent=old_parent, depends_on=list(args.depends_on) or None),
        )
        self.settings_name = name_of(settings)
        self.register_outputs({"settings_name": self.settings_name})
