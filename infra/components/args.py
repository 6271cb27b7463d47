"""What each component is given, typed (as Pulumi's component examples take an Args object):
the stack's config and namespace, and for the components that run the service's pods the
settings ConfigMap and the output volume's claim."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.config_model import StackConfig


@dataclass(frozen=True)
class StackArgs:
    config: StackConfig
    namespace: pulumi.Input[str]


@dataclass(frozen=True)
class PodArgs(StackArgs):
    settings_name: pulumi.Input[str]
    output_claim: pulumi.Input[str]


@dataclass(frozen=True)
class ApiArgs(PodArgs):
    service: k8s.core.v1.Service


@dataclass(frozen=True)
class ModelCacheArgs(PodArgs):
    """Pods that mount the model cache (None: the stack keeps no cache volume)."""

    model_cache_claim: pulumi.Input[str] | None


@dataclass(frozen=True)
class RedisArgs(StackArgs):
    service_name: pulumi.Input[str]
