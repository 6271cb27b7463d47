"""The Ray cluster: a KubeRay RayCluster (default) or plain Deployments (`rayMode: plain`)."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra import naming, podspec, sizing
from infra.components.args import ModelCacheArgs
from infra.config_model import StackConfig
from service.quantities import byte_count

WAIT_ATTEMPTS = 60
WAIT_SECONDS = 5
# Gives up after WAIT_ATTEMPTS x WAIT_SECONDS with a message that says what to look at.
WAIT_FOR_GCS = (
    "for attempt in $(seq {attempts}); do "
    'ray health-check --address "$MOCHI_RAY_GCS_ADDRESS" >/dev/null 2>&1 && exit 0; '
    "sleep {seconds}; done; "
    'echo "Ray GCS at $MOCHI_RAY_GCS_ADDRESS did not answer within {total} s: check the head pod '
    "(kubectl -n $POD_NAMESPACE get pods -l {label}={head}) and that the auth token Secret "
    '{secret} exists" >&2; exit 1'
)
RAYLET_HEALTH = (
    "wget -T 2 -q -O- http://localhost:{port}/api/local_raylet_healthz | grep -q success"
)
GCS_HEALTH = "wget -T 2 -q -O- http://localhost:{port}/api/gcs_healthz | grep -q success"


def _probes(head: bool) -> dict:
    check = RAYLET_HEALTH.format(port=naming.RAY_AGENT_PORT)
    if head:
        check += " && " + GCS_HEALTH.format(port=naming.RAY_DASHBOARD_PORT)
    command = ["bash", "-c", check]
    return {
        "readinessProbe": {
            "exec": {"command": command},
            "initialDelaySeconds": 10,
            "periodSeconds": 5,
            "timeoutSeconds": 3,
            "failureThreshold": 10,
        },
        "livenessProbe": {
            "exec": {"command": command},
            "initialDelaySeconds": 30,
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 12,
        },
    }


def _env(settings_name) -> dict:
    return {
        "envFrom": podspec.settings_env_from(settings_name),
        "env": [
            podspec.redis_password_env(),
            podspec.ray_token_env(),
            {
                "name": "POD_NAMESPACE",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            },
        ],
    }


def head_start_params(config: StackConfig) -> dict[str, str]:
    """`ray start` flags of the head. It runs no actors: the pool driver only schedules them."""
    return {
        "dashboard-host": "0.0.0.0",
        "dashboard-port": str(naming.RAY_DASHBOARD_PORT),
        "ray-client-server-port": str(naming.RAY_CLIENT_PORT),
        "metrics-export-port": str(naming.RAY_METRICS_PORT),
        "num-cpus": "0",
        "num-gpus": "0",
        "object-store-memory": str(byte_count(config.ray_head_object_store_memory)),
    }


def worker_start_params(config: StackConfig) -> dict[str, str]:
    return {
        "metrics-export-port": str(naming.RAY_METRICS_PORT),
        "num-cpus": str(sizing.ray_worker_cpus(config)),
        "num-gpus": str(config.gpus_per_worker),
        # Explicit, and no larger than the /dev/shm volume below.
        "object-store-memory": str(byte_count(config.ray_object_store_memory)),
    }


def _flags(params: dict[str, str]) -> list[str]:
    return [f"--{key}={value}" for key, value in params.items()]


def ray_cluster(name: str, args: ModelCacheArgs, opts: pulumi.ResourceOptions | None = None):
    """The Ray cluster of `mochi:rayMode`: KubeRay's RayCluster, or plain Deployments."""
    kind = KubeRayCluster if args.config.ray_mode == "kuberay" else PlainRayCluster
    return kind(name, args, opts)


class _RayCluster(pulumi.ComponentResource):
    """What both modes share: the pods' containers, volumes and scheduling. Both keep the
    component type they had as one component, so an existing stack's URNs stay."""

    def __init__(self, name: str, args: ModelCacheArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mochi:infra:Ray", name, None, opts)
        self.config = args.config
        self.namespace = args.namespace
        self.settings_name = args.settings_name
        self.output_claim = args.output_claim
        self.model_cache_claim = args.model_cache_claim
        self._build()
        self.register_outputs({})

    def _build(self) -> None:
        raise NotImplementedError

    # Pod parts shared by both modes.

    def _volumes(self, shm_size: str) -> tuple[list, list]:
        volumes = [
            podspec.empty_dir("dshm", shm_size, memory=True),
            podspec.output_volume(self.output_claim),
        ]
        mounts = [{"name": "dshm", "mountPath": "/dev/shm"}, podspec.output_mount()]
        if self.model_cache_claim is not None:
            volumes.append(podspec.model_cache_volume(self.model_cache_claim))
            mounts.append(podspec.model_cache_mount())
        return volumes, mounts

    def _head_container(self, command: list[str] | None) -> dict:
        volumes, mounts = self._volumes(self.config.ray_head_object_store_memory)
        self._head_volumes = volumes
        container = {
            "name": naming.RAY_HEAD,
            "image": self.config.worker_image,
            **_env(self.settings_name),
            "ports": [
                {"name": "gcs-server", "containerPort": naming.RAY_GCS_PORT},
                {"name": "client", "containerPort": naming.RAY_CLIENT_PORT},
                {"name": "dashboard", "containerPort": naming.RAY_DASHBOARD_PORT},
                {"name": "metrics", "containerPort": naming.RAY_METRICS_PORT},
            ],
            "resources": sizing.ray_head(self.config).spec(),
            "securityContext": podspec.container_security(),
            "volumeMounts": mounts,
            **_probes(head=True),
        }
        if command:
            container["command"] = command
        return container

    def _worker_containers(self, command: list[str] | None) -> tuple[dict, dict]:
        volumes, mounts = self._volumes(self.config.ray_shm_size)
        self._worker_volumes = volumes
        container = {
            "name": naming.RAY_WORKER,
            "image": self.config.worker_image,
            **_env(self.settings_name),
            "ports": [{"name": "metrics", "containerPort": naming.RAY_METRICS_PORT}],
            "resources": sizing.ray_worker(self.config).spec(),
            "securityContext": podspec.container_security(),
            "volumeMounts": mounts,
            **_probes(head=False),
        }
        if self.model_cache_claim is not None:
            container["env"] = container["env"] + [podspec.hf_home_env()]
        if command:
            container["command"] = command
        wait = {
            "name": "wait-for-gcs",
            "image": self.config.worker_image,
            "command": [
                "bash",
                "-c",
                WAIT_FOR_GCS.format(
                    attempts=WAIT_ATTEMPTS,
                    seconds=WAIT_SECONDS,
                    total=WAIT_ATTEMPTS * WAIT_SECONDS,
                    label=naming.COMPONENT_LABEL,
                    head=naming.RAY_HEAD,
                    secret=naming.RAY_AUTH_SECRET,
                ),
            ],
            **_env(self.settings_name),
            "resources": sizing.wait_for_gcs().spec(),
            "securityContext": podspec.container_security(),
        }
        return container, wait

    def _pod_spec(self, containers, volumes, init=None, gpu=False) -> dict:
        spec = podspec.pod_spec(containers, volumes)
        if init:
            spec["initContainers"] = init
        if gpu and self.config.gpus_per_worker:
            spec["nodeSelector"] = self.config.gpu_node_labels
            spec["tolerations"] = [
                {"key": naming.GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
            ]
        return spec


class KubeRayCluster(_RayCluster):
    """A KubeRay RayCluster (and the operator's chart when asked)."""

    def _build(self) -> None:
        config = self.config
        depends = []
        if config.install_kuberay_operator:
            depends.append(
                k8s.helm.v3.Release(
                    "kuberay-operator",
                    name="kuberay-operator",
                    chart="kuberay-operator",
                    version=naming.KUBERAY_CHART_VERSION,
                    repository_opts={"repo": naming.KUBERAY_CHART_REPO},
                    namespace=naming.KUBERAY_NAMESPACE,
                    create_namespace=True,
                    opts=pulumi.ResourceOptions(parent=self),
                )
            )
        head = self._head_container(None)
        worker, wait = self._worker_containers(None)
        k8s.apiextensions.CustomResource(
            "ray-cluster",
            api_version="ray.io/v1",
            kind="RayCluster",
            metadata={
                "name": naming.RAY_CLUSTER,
                "namespace": self.namespace,
                "labels": naming.PART_OF,
            },
            spec={
                "rayVersion": naming.RAY_VERSION,
                "enableInTreeAutoscaling": False,
                "headGroupSpec": {
                    "serviceType": "ClusterIP",
                    "rayStartParams": head_start_params(config),
                    "template": podspec.template(
                        naming.RAY_HEAD, self._pod_spec([head], self._head_volumes)
                    ),
                },
                "workerGroupSpecs": [
                    {
                        "groupName": "gpu" if config.gpus_per_worker else "cpu",
                        "replicas": config.ray_worker_replicas,
                        "minReplicas": config.ray_worker_replicas,
                        "maxReplicas": config.ray_worker_replicas,
                        "rayStartParams": worker_start_params(config),
                        "template": podspec.template(
                            naming.RAY_WORKER,
                            self._pod_spec([worker], self._worker_volumes, init=[wait], gpu=True),
                        ),
                    }
                ],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
        )


class PlainRayCluster(_RayCluster):
    """Ray as two Deployments running `ray start`: no operator."""

    def _build(self) -> None:
        config = self.config
        head_command = (
            ["ray", "start", "--head", f"--port={naming.RAY_GCS_PORT}"]
            + _flags(head_start_params(config))
            + ["--block"]
        )
        worker_command = (
            ["ray", "start", "--address=$(MOCHI_RAY_GCS_ADDRESS)"]
            + _flags(worker_start_params(config))
            + ["--block"]
        )
        head = self._head_container(head_command)
        worker, wait = self._worker_containers(worker_command)
        for resource_name, component, replicas, pod in (
            (
                "ray-head",
                naming.RAY_HEAD,
                1,
                self._pod_spec([head], self._head_volumes),
            ),
            (
                "ray-worker",
                naming.RAY_WORKER,
                config.ray_worker_replicas,
                self._pod_spec([worker], self._worker_volumes, init=[wait], gpu=True),
            ),
        ):
            k8s.apps.v1.Deployment(
                resource_name,
                metadata=naming.metadata(component, self.namespace),
                spec={
                    "replicas": replicas,
                    # No surge: a second head splits the cluster; extra workers need extra GPUs.
                    "strategy": {"type": "Recreate"},
                    "selector": {"matchLabels": naming.selector(component)},
                    "template": podspec.template(component, pod),
                },
                opts=pulumi.ResourceOptions(parent=self),
            )
