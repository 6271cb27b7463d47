"""Namespace (Pod Security `restricted`), ResourceQuota and LimitRange."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra import naming, sizing
from infra.config_model import StackConfig
from infra.protection import data_options


class Foundation(pulumi.ComponentResource):
    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mochi:infra:Foundation", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namespace = k8s.core.v1.Namespace(
            "namespace",
            metadata={
                "name": config.namespace,
                "labels": {
                    **naming.PART_OF,
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            },
            opts=data_options(config, self),
        )
        self.namespace = namespace.metadata.apply(lambda meta: meta["name"])
        hard = {
            "requests.cpu": config.quota_requests_cpu,
            "requests.memory": config.quota_requests_memory,
            "limits.memory": config.quota_limits_memory,
            f"requests.{naming.GPU_RESOURCE}": str(config.quota_gpus),
            "pods": str(config.quota_pods),
            "requests.storage": config.quota_storage,
        }
        k8s.core.v1.ResourceQuota(
            "quota",
            metadata={"name": "mochi-quota", "namespace": self.namespace, "labels": naming.PART_OF},
            spec={"hard": hard},
            opts=child,
        )
        # Defaults for any container a user adds by hand; ours all set their own resources.
        default = sizing.supervisor()
        k8s.core.v1.LimitRange(
            "limits",
            metadata={
                "name": "mochi-limits",
                "namespace": self.namespace,
                "labels": naming.PART_OF,
            },
            spec={
                "limits": [
                    {
                        "type": "Container",
                        "default": {"cpu": default.cpu, "memory": default.memory},
                        "defaultRequest": {"cpu": default.cpu, "memory": default.memory},
                    }
                ]
            },
            opts=child,
        )
        self.register_outputs({"namespace": self.namespace})
