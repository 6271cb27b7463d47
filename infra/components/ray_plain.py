"""The Ray cluster as two Deployments running `ray start` (`mochi:rayMode: plain`): no
operator."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra import naming, podspec
from infra.components import ray_pods
from infra.components.args import RayArgs
from infra.components.base import Component


class PlainRayCluster(Component):
    def __init__(self, name: str, args: RayArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(ray_pods.RAY_COMPONENT, name, opts)
        self._namespace = args.namespace
        head_command = (
            ["ray", "start", "--head", f"--port={naming.RAY_GCS_PORT}"]
            + ray_pods.flags(args.head_start)
            + ["--block"]
        )
        worker_command = (
            ["ray", "start", "--address=$(MOCHI_RAY_GCS_ADDRESS)"]
            + ray_pods.flags(args.worker_start)
            + ["--block"]
        )
        self._deployment("head", naming.RAY_HEAD, 1, ray_pods.head_pod(args, head_command))
        self._deployment(
            "worker",
            naming.RAY_WORKER,
            args.worker_replicas,
            ray_pods.worker_pod(args, worker_command),
        )
        self.register_outputs({})

    def _deployment(self, part: str, component: str, replicas: int, pod: dict) -> None:
        k8s.apps.v1.Deployment(
            self.child_name(part),
            metadata=naming.metadata(component, self._namespace),
            spec={
                "replicas": replicas,
                # No surge: a second head splits the cluster; extra workers need extra GPUs.
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": naming.selector(component)},
                "template": podspec.template(component, pod),
            },
            opts=self.child_opts(),
        )
