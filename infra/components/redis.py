"""Redis: one StatefulSet replica, AOF persistence on a PVC, password required."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra import naming, podspec
from infra.components.args import RedisArgs
from infra.components.base import Component

# The password goes into a config file on a memory volume, never onto the command line.
# maxmemory sits below the container limit (sizing.REDIS_MAXMEMORY_SHARE says why); when it is
# reached, noeviction refuses writes rather than dropping jobs.
START = (
    'printf "requirepass %s\\n" "$REDISCLI_AUTH" > /run/redis/redis.conf && '
    "exec redis-server /run/redis/redis.conf --port {port} --dir /data "
    "--appendonly yes --appendfsync {appendfsync} "
    "--maxmemory {maxmemory_mib}mb --maxmemory-policy noeviction"
)
PING = ["sh", "-c", "redis-cli -p {port} ping | grep -q PONG"]


class Redis(Component):
    def __init__(self, name: str, args: RedisArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Redis", name, opts)
        namespace, service_name = args.namespace, args.service_name
        port = naming.REDIS_PORT
        ping = [part.format(port=port) for part in PING]
        container = {
            "name": "redis",
            "image": args.image,
            "command": [
                "sh",
                "-c",
                START.format(
                    port=port,
                    appendfsync=args.appendfsync,
                    maxmemory_mib=args.maxmemory_mib,
                ),
            ],
            # redis-cli reads REDISCLI_AUTH, so the probes authenticate without argv.
            "env": [podspec.redis_password_env("REDISCLI_AUTH")],
            "ports": [{"name": "redis", "containerPort": port}],
            "resources": dict(args.resources),
            "securityContext": podspec.container_security(read_only_root=True),
            "readinessProbe": {
                "exec": {"command": ping},
                "periodSeconds": 5,
                "timeoutSeconds": 3,
            },
            "livenessProbe": {
                "exec": {"command": ping},
                "initialDelaySeconds": 15,
                "periodSeconds": 10,
                "timeoutSeconds": 5,
                "failureThreshold": 6,
            },
            "volumeMounts": [
                {"name": naming.REDIS_DATA, "mountPath": "/data"},
                {"name": "run", "mountPath": "/run/redis"},
            ],
        }
        claim_spec = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": args.storage}},
        }
        if args.storage_class:
            claim_spec["storageClassName"] = args.storage_class
        pod = podspec.pod_spec(
            [container],
            [podspec.empty_dir("run", "1Mi", memory=True)],
            terminationGracePeriodSeconds=30,
        )
        k8s.apps.v1.StatefulSet(
            self.child_name(),
            metadata=naming.metadata(naming.REDIS, namespace),
            spec={
                "serviceName": service_name,
                "replicas": 1,
                "selector": {"matchLabels": naming.selector(naming.REDIS)},
                "template": podspec.template(naming.REDIS, pod),
                # The AOF claim outlives the StatefulSet (Kubernetes' default, stated): a replaced
                # StatefulSet adopts data-redis-0 again. Only deleting the Namespace removes it.
                "persistentVolumeClaimRetentionPolicy": {
                    "whenDeleted": "Retain",
                    "whenScaled": "Retain",
                },
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": naming.REDIS_DATA, "labels": naming.PART_OF},
                        "spec": claim_spec,
                    }
                ],
            },
            opts=self.child_opts(),
        )
        self.register_outputs({})
