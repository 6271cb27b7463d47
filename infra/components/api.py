"""The HTTP API: Deployment, PodDisruptionBudget and an optional Ingress (the Service is in
Addresses, where the settings derive from it)."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra import naming, podspec
from infra.components.args import ApiArgs, IngressArgs
from infra.components.base import Component


class Api(Component):
    def __init__(self, name: str, args: ApiArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Api", name, opts)
        container = podspec.service_container(
            naming.API,
            args,
            ["mochi", "api", "--host", "0.0.0.0", "--port", str(naming.API_PORT)],
            [
                podspec.redis_password_env(),
                podspec.secret_env(
                    "MOCHI_BOOTSTRAP_API_KEYS", naming.API_KEYS_SECRET, naming.API_KEYS_KEY
                ),
            ],
            ports=[{"name": "http", "containerPort": naming.API_PORT}],
            resources=dict(args.resources),
            securityContext=podspec.container_security(read_only_root=True),
            **podspec.http_probes("http", readiness_period=5),
            volumeMounts=[podspec.output_mount(), {"name": "tmp", "mountPath": "/tmp"}],
        )
        volumes = [podspec.output_volume(args.output_claim), podspec.empty_dir("tmp", "256Mi")]
        metadata = naming.metadata(naming.API, args.namespace)
        k8s.apps.v1.Deployment(
            self.child_name(),
            metadata=metadata,
            spec={
                "replicas": args.replicas,
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
                },
                "selector": {"matchLabels": naming.selector(naming.API)},
                "template": podspec.template(naming.API, podspec.pod_spec([container], volumes)),
            },
            opts=self.child_opts(),
        )
        k8s.policy.v1.PodDisruptionBudget(
            self.child_name(),
            metadata=metadata,
            spec={"maxUnavailable": 1, "selector": {"matchLabels": naming.selector(naming.API)}},
            opts=self.child_opts(),
        )
        if args.ingress is not None:
            self._ingress(args, args.ingress)
        self.register_outputs({})

    def _ingress(self, args: ApiArgs, ingress: IngressArgs) -> None:
        backend = args.service.metadata.apply(
            lambda meta: {"service": {"name": meta["name"], "port": {"name": "http"}}}
        )
        path = {"path": "/", "pathType": "Prefix", "backend": backend}
        spec = {"rules": [{"host": ingress.host, "http": {"paths": [path]}}]}
        if ingress.class_name:
            spec["ingressClassName"] = ingress.class_name
        k8s.networking.v1.Ingress(
            self.child_name(),
            metadata=naming.metadata(naming.API, args.namespace),
            spec=spec,
            opts=self.child_opts(),
        )
