"""The whole stack: components wired together. `infra/__main__.py` and the render call this."""

from __future__ import annotations

import pulumi
from pulumi.runtime import config as pulumi_config

from infra import config as stack_config
from infra.components import args as component_args
from infra.components.addresses import Addresses
from infra.components.api import Api
from infra.components.args import ModelCacheArgs, NamespacedArgs, PodArgs, SecretsArgs, SettingsArgs
from infra.components.foundation import Foundation
from infra.components.kuberay import KubeRayCluster
from infra.components.network_policies import NetworkPolicies
from infra.components.ray_plain import PlainRayCluster
from infra.components.redis import Redis
from infra.components.secrets import Secrets
from infra.components.settings import SettingsConfigMap, extra_env, settings_values
from infra.components.storage import ModelPrefill, Storage
from infra.components.supervisor import Supervisor

# `mochi:rayMode` -> the component that runs the Ray cluster.
RAY_MODES = {"kuberay": KubeRayCluster, "plain": PlainRayCluster}


def load_config() -> stack_config.StackConfig:
    """The stack's config as Pulumi hands it over, validated (raises InvalidConfig)."""
    return stack_config.load(_get, _stack_keys())


def _get(key: str) -> str | None:
    namespace, _, name = key.partition(":")
    return pulumi.Config(namespace).get(name)


def _stack_keys() -> set[str]:
    """Every key the stack sets. `pulumi up` passes them as JSON in PULUMI_CONFIG (the language
    host does); the mocks of the render and the tests set them in the SDK's config map."""
    return set(pulumi_config.CONFIG.get()) | set(pulumi_config.get_config_env())


def build(config: stack_config.StackConfig) -> dict[str, pulumi.Output]:
    foundation = Foundation("foundation", component_args.foundation_args(config))
    namespace = foundation.namespace
    secrets = Secrets("secrets", SecretsArgs(namespace, config.bootstrap_account))
    addresses = Addresses("addresses", NamespacedArgs(namespace))
    settings = _settings(config, namespace, addresses)
    storage = Storage("storage", component_args.storage_args(config, namespace))
    after_secrets = pulumi.ResourceOptions(depends_on=[secrets])
    Redis("redis", component_args.redis_args(config, namespace, addresses.redis_service_name))
    pods = PodArgs(namespace, config.worker_image, settings.settings_name, storage.output_claim)
    cached = ModelCacheArgs(**vars(pods), model_cache_claim=storage.model_cache_claim)
    ray = RAY_MODES[config.ray_mode]
    ray("ray", component_args.ray_args(config, cached), opts=after_secrets)
    Supervisor("supervisor", pods)
    Api("api", component_args.api_args(config, pods, addresses.api_service), opts=after_secrets)
    if config.prefill_model_cache and storage.model_cache_claim is not None:
        ModelPrefill("model-prefill", cached)
    NetworkPolicies("network-policies", NamespacedArgs(namespace))
    return {
        "namespace": namespace,
        "api_url": addresses.api_url,
        "redis_url": addresses.redis_url,
        "ray_dashboard_url": addresses.ray_dashboard_url,
        "api_key": secrets.api_key,
    }


def _settings(config, namespace, addresses: Addresses) -> SettingsConfigMap:
    values = settings_values(config, addresses.redis_url, addresses.ray_dashboard_url)
    args = SettingsArgs(
        namespace, values, extra_env(addresses.ray_gcs_address), depends_on=addresses.services
    )
    # The ConfigMap was a child of Addresses before it became its own component.
    return SettingsConfigMap("settings", args, old_parent=addresses)


def main() -> None:
    try:
        config = load_config()
    except stack_config.InvalidConfig as error:
        # RunError: Pulumi prints the problems as one error, without a Python traceback.
        raise pulumi.RunError(str(error)) from None
    for name, value in build(config).items():
        pulumi.export(name, value)
