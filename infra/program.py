"""The whole stack: components wired together. `infra/__main__.py` and the render call this."""

from __future__ import annotations

import pulumi
from pulumi.runtime import config as pulumi_config

from infra import config as stack_config
from infra.components.addresses import Addresses
from infra.components.api import Api
from infra.components.args import ApiArgs, ModelCacheArgs, PodArgs, RedisArgs, StackArgs
from infra.components.foundation import Foundation
from infra.components.network_policies import NetworkPolicies
from infra.components.ray import ray_cluster
from infra.components.redis import Redis
from infra.components.secrets import Secrets
from infra.components.storage import ModelPrefill, Storage
from infra.components.supervisor import Supervisor


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
    foundation = Foundation("foundation", config)
    namespace = foundation.namespace
    stack = StackArgs(config, namespace)
    secrets = Secrets("secrets", stack)
    addresses = Addresses("addresses", stack)
    storage = Storage("storage", stack)
    pods = PodArgs(config, namespace, addresses.settings_name, storage.output_claim)
    after_secrets = pulumi.ResourceOptions(depends_on=[secrets])
    Redis("redis", RedisArgs(config, namespace, addresses.redis_service_name))
    cached = ModelCacheArgs(**vars(pods), model_cache_claim=storage.model_cache_claim)
    ray_cluster("ray", cached, opts=after_secrets)
    Supervisor("supervisor", pods)
    Api("api", ApiArgs(**vars(pods), service=addresses.api_service), opts=after_secrets)
    if config.prefill_model_cache and storage.model_cache_claim is not None:
        ModelPrefill("model-prefill", cached)
    NetworkPolicies("network-policies", namespace)
    return {
        "namespace": namespace,
        "api_url": addresses.api_url,
        "redis_url": addresses.redis_url,
        "ray_dashboard_url": addresses.ray_dashboard_url,
        "api_key": secrets.api_key,
    }


def main() -> None:
    try:
        config = load_config()
    except stack_config.InvalidConfig as error:
        # RunError: Pulumi prints the problems as one error, without a Python traceback.
        raise pulumi.RunError(str(error)) from None
    for name, value in build(config).items():
        pulumi.export(name, value)
