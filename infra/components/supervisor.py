"""The supervisor: keeps the pool driver (`mochi pool`) submitted to Ray, reaps expired leases."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra import naming, podspec, sizing
from infra.config import StackConfig


class Supervisor(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        namespace: pulumi.Input[str],
        settings_name: pulumi.Input[str],
        output_claim: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("mochi:infra:Supervisor", name, None, opts)
        # The worker image: the Jobs API client is part of Ray, which the API image leaves out.
        container = {
            "name": naming.SUPERVISOR,
            "image": config.worker_image,
            "command": ["mochi", "supervisor"],
            "envFrom": podspec.settings_env_from(settings_name),
            "env": [podspec.redis_password_env(), podspec.ray_token_env()],
            "resources": sizing.supervisor().spec(),
            "securityContext": {**podspec.container_security(), "readOnlyRootFilesystem": True},
            # The reaper removes a failed job's partial output, so it sees the shared volume.
            "volumeMounts": [
                {"name": "tmp", "mountPath": "/tmp"},
                {"name": "videos", "mountPath": naming.OUTPUT_DIR},
            ],
            # No HTTP endpoint: the process answering signals is what can be checked from outside.
            "livenessProbe": {
                "exec": {"command": ["sh", "-c", "kill -0 1"]},
                "periodSeconds": 30,
            },
            "readinessProbe": {
                "exec": {"command": ["sh", "-c", "kill -0 1"]},
                "periodSeconds": 30,
            },
        }
        k8s.apps.v1.Deployment(
            "supervisor",
            metadata={
                "name": naming.SUPERVISOR,
                "namespace": namespace,
                "labels": naming.labels(naming.SUPERVISOR),
            },
            spec={
                "replicas": 1,
                # Never two supervisors at once: each would submit its own pool driver.
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": naming.selector(naming.SUPERVISOR)},
                "template": {
                    "metadata": {"labels": naming.labels(naming.SUPERVISOR)},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "securityContext": podspec.pod_security(),
                        "containers": [container],
                        "volumes": [
                            podspec.empty_dir("tmp", "256Mi"),
                            podspec.pvc_volume("videos", output_claim),
                        ],
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})
