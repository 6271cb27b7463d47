"""The HTTP API: Deployment, PodDisruptionBudget and an optional Ingress (the Service is in
Addresses, where the settings derive from it)."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra import naming, podspec, sizing
from infra.components.args import ApiArgs


class Api(pulumi.ComponentResource):
    def __init__(self, name: str, args: ApiArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mochi:infra:Api", name, None, opts)
        config, namespace, service = args.config, args.namespace, args.service
        settings_name, output_claim = args.settings_name, args.output_claim
        child = pulumi.ResourceOptions(parent=self)
        container = {
            "name": naming.API,
            "image": config.api_image,
            "command": ["mochi", "api", "--host", "0.0.0.0", "--port", str(naming.API_PORT)],
            "envFrom": podspec.settings_env_from(settings_name),
            "env": [
                podspec.redis_password_env(),
                podspec.secret_env(
                    "MOCHI_BOOTSTRAP_API_KEYS", naming.API_KEYS_SECRET, naming.API_KEYS_KEY
                ),
            ],
            "ports": [{"name": "http", "containerPort": naming.API_PORT}],
            "resources": sizing.api(config).spec(),
            "securityContext": podspec.container_security(read_only_root=True),
            **podspec.http_probes("http", readiness_period=5),
            "volumeMounts": [podspec.output_mount(), {"name": "tmp", "mountPath": "/tmp"}],
        }
        volumes = [podspec.output_volume(output_claim), podspec.empty_dir("tmp", "256Mi")]
        k8s.apps.v1.Deployment(
            "api",
            metadata=naming.metadata(naming.API, namespace),
            spec={
                "replicas": config.api_replicas,
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
                },
                "selector": {"matchLabels": naming.selector(naming.API)},
                "template": podspec.template(naming.API, podspec.pod_spec([container], volumes)),
            },
            opts=child,
        )
        k8s.policy.v1.PodDisruptionBudget(
            "api",
            metadata=naming.metadata(naming.API, namespace),
            spec={"maxUnavailable": 1, "selector": {"matchLabels": naming.selector(naming.API)}},
            opts=child,
        )
        if config.ingress_enabled:
            backend = service.metadata.apply(
                lambda meta: {
                    "service": {"name": meta["name"], "port": {"name": "http"}},
                }
            )
            spec = {
                "rules": [
                    {
                        "host": config.ingress_host,
                        "http": {
                            "paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]
                        },
                    }
                ]
            }
            if config.ingress_class_name:
                spec["ingressClassName"] = config.ingress_class_name
            k8s.networking.v1.Ingress(
                "api",
                metadata=naming.metadata(naming.API, namespace),
                spec=spec,
                opts=child,
            )
        self.register_outputs({})
