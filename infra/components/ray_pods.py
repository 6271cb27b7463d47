"""The pods of the Ray cluster, shared by both `mochi:rayMode` components (kuberay.py,
ray_plain.py): containers, probes, volumes and scheduling of the head and the workers."""

from __future__ import annotations

from infra import naming, podspec, sizing
from infra.components.args import RayArgs

# Both modes keep the component type the single Ray component had, so an existing stack's URNs
# stay the same.
RAY_COMPONENT = "Ray"

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


def flags(params) -> list[str]:
    return [f"--{key}={value}" for key, value in params.items()]


def _volumes(args: RayArgs, shm_size: str) -> tuple[list, list]:
    volumes = [
        podspec.empty_dir("dshm", shm_size, memory=True),
        podspec.output_volume(args.output_claim),
    ]
    mounts = [{"name": "dshm", "mountPath": "/dev/shm"}, podspec.output_mount()]
    if args.model_cache_claim is not None:
        volumes.append(podspec.model_cache_volume(args.model_cache_claim))
        mounts.append(podspec.model_cache_mount())
    return volumes, mounts


def _pod_spec(args: RayArgs, containers, volumes, init=None, gpu=False) -> dict:
    spec = podspec.pod_spec(containers, volumes)
    if init:
        spec["initContainers"] = init
    if gpu and args.gpus_per_worker:
        spec["nodeSelector"] = dict(args.gpu_node_labels)
        spec["tolerations"] = [
            {"key": naming.GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
        ]
    return spec


def head_pod(args: RayArgs, command: list[str] | None = None) -> dict:
    """The head's pod spec; `command`: its `ray start` (KubeRay writes its own when None)."""
    volumes, mounts = _volumes(args, args.head_shm_size)
    container = {
        "name": naming.RAY_HEAD,
        "image": args.image,
        **_env(args.settings_name),
        "ports": [
            {"name": "gcs-server", "containerPort": naming.RAY_GCS_PORT},
            {"name": "client", "containerPort": naming.RAY_CLIENT_PORT},
            {"name": "dashboard", "containerPort": naming.RAY_DASHBOARD_PORT},
            {"name": "metrics", "containerPort": naming.RAY_METRICS_PORT},
        ],
        "resources": dict(args.head_resources),
        "securityContext": podspec.container_security(),
        "volumeMounts": mounts,
        **_probes(head=True),
    }
    if command:
        container["command"] = command
    return _pod_spec(args, [container], volumes)


def _wait_for_gcs(args: RayArgs) -> dict:
    return {
        "name": "wait-for-gcs",
        "image": args.image,
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
        **_env(args.settings_name),
        "resources": sizing.wait_for_gcs().spec(),
        "securityContext": podspec.container_security(),
    }


def worker_pod(args: RayArgs, command: list[str] | None = None) -> dict:
    volumes, mounts = _volumes(args, args.worker_shm_size)
    container = {
        "name": naming.RAY_WORKER,
        "image": args.image,
        **_env(args.settings_name),
        "ports": [{"name": "metrics", "containerPort": naming.RAY_METRICS_PORT}],
        "resources": dict(args.worker_resources),
        "securityContext": podspec.container_security(),
        "volumeMounts": mounts,
        **_probes(head=False),
    }
    if args.model_cache_claim is not None:
        container["env"] = container["env"] + [podspec.hf_home_env()]
    if command:
        container["command"] = command
    return _pod_spec(args, [container], volumes, init=[_wait_for_gcs(args)], gpu=True)
