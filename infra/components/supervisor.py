"""The supervisor: keeps the pool driver (`mochi pool`) submitted to Ray, reaps expired leases."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra import naming, podspec, sizing
from infra.components.args import PodArgs
from infra.components.base import Component


class Supervisor(Component):
    def __init__(self, name: str, args: PodArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Supervisor", name, opts)
        # The worker image: the supervisor ships with the same service code as the pool it
        # submits (it needs no Ray itself: it speaks the Jobs REST API over HTTP).
        container = podspec.service_container(
            naming.SUPERVISOR,
            args,
            ["mochi", "supervisor", f"--health-port={naming.SUPERVISOR_HEALTH_PORT}"],
            [podspec.redis_password_env(), podspec.ray_token_env()],
            resources=sizing.supervisor().spec(),
            securityContext=podspec.container_security(read_only_root=True),
            # Its sweeper removes files no job owns (stale .partial files, lost attempts' files,
            # expired jobs' videos), so it mounts the shared volume read-write.
            volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}, podspec.output_mount()],
            # The supervisor serves its own health: /healthz while its loop ticks, /readyz while
            # its ticks reach Ray and Redis. Only the kubelet calls these; no Service fronts them.
            ports=[{"name": "health", "containerPort": naming.SUPERVISOR_HEALTH_PORT}],
            # A tick may wait on the Jobs API (10 s timeouts) and /healthz turns false only after
            # 30 s without one: liveness restarts after three more failed probes, not on one slow
            # tick.
            **podspec.http_probes("health", readiness_period=10),
        )
        volumes = [podspec.empty_dir("tmp", "256Mi"), podspec.output_volume(args.output_claim)]
        k8s.apps.v1.Deployment(
            self.child_name(),
            metadata=naming.metadata(naming.SUPERVISOR, args.namespace),
            spec={
                "replicas": 1,
                # Never two supervisors at once: each would submit its own pool driver.
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": naming.selector(naming.SUPERVISOR)},
                "template": podspec.template(
                    naming.SUPERVISOR, podspec.pod_spec([container], volumes)
                ),
            },
            opts=self.child_opts(),
        )
        self.register_outputs({})
