"""The Ray cluster as a KubeRay RayCluster (`mochi:rayMode: kuberay`), and the operator's chart
when `mochi:installKuberayOperator` asks for it."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra import naming, podspec
from infra.components import ray_pods
from infra.components.args import RayArgs
from infra.components.base import Component, shared_metadata


class KubeRayCluster(Component):
    def __init__(self, name: str, args: RayArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(ray_pods.RAY_COMPONENT, name, opts)
        depends = []
        if args.install_operator:
            depends.append(self._operator())
        k8s.apiextensions.CustomResource(
            self.child_name("cluster"),
            api_version="ray.io/v1",
            kind="RayCluster",
            metadata=shared_metadata(naming.RAY_CLUSTER, args.namespace),
            spec={
                "rayVersion": naming.RAY_VERSION,
                "enableInTreeAutoscaling": False,
                "headGroupSpec": {
                    "serviceType": "ClusterIP",
                    "rayStartParams": dict(args.head_start),
                    "template": podspec.template(naming.RAY_HEAD, ray_pods.head_pod(args)),
                },
                "workerGroupSpecs": [
                    {
                        "groupName": "gpu" if args.gpus_per_worker else "cpu",
                        "replicas": args.worker_replicas,
                        "minReplicas": args.worker_replicas,
                        "maxReplicas": args.worker_replicas,
                        "rayStartParams": dict(args.worker_start),
                        "template": podspec.template(naming.RAY_WORKER, ray_pods.worker_pod(args)),
                    }
                ],
            },
            opts=self.child_opts(depends_on=depends),
        )
        self.register_outputs({})

    def _operator(self) -> k8s.helm.v3.Release:
        return k8s.helm.v3.Release(
            self.child_name("kuberay-operator"),
            name="kuberay-operator",
            chart="kuberay-operator",
            version=naming.KUBERAY_CHART_VERSION,
            repository_opts={"repo": naming.KUBERAY_CHART_REPO},
            namespace=naming.KUBERAY_NAMESPACE,
            create_namespace=True,
            opts=self.child_opts("kuberay-operator"),
        )
