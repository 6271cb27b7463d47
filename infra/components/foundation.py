"""Namespace (Pod Security `restricted`), ResourceQuota and LimitRange."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra import naming, sizing
from infra.components.args import FoundationArgs
from infra.components.base import Component, name_of, shared_metadata
from infra.protection import data_options


class Foundation(Component):
    def __init__(self, name: str, args: FoundationArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Foundation", name, opts)
        namespace = k8s.core.v1.Namespace(
            self.child_name("namespace"),
            metadata={
                "name": args.namespace,
                "labels": {
                    **naming.PART_OF,
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            },
            opts=data_options(args.data_protection, self, "namespace"),
        )
        self.namespace = name_of(namespace)
        k8s.core.v1.ResourceQuota(
            self.child_name("quota"),
            metadata=shared_metadata("mochi-quota", self.namespace),
            spec={"hard": dict(args.quota)},
            opts=self.child_opts("quota"),
        )
        # Defaults for any container a user adds by hand; ours all set their own resources.
        default = {"cpu": sizing.supervisor().cpu, "memory": sizing.supervisor().memory}
        k8s.core.v1.LimitRange(
            self.child_name("limits"),
            metadata=shared_metadata("mochi-limits", self.namespace),
            spec={"limits": [{"type": "Container", "default": default, "defaultRequest": default}]},
            opts=self.child_opts("limits"),
        )
        self.register_outputs({"namespace": self.namespace})
