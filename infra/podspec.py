"""Pieces every pod shares: the restricted security context, settings and secrets as env."""

from __future__ import annotations

from infra import naming


def container_security(read_only_root: bool = False) -> dict:
    """Non-root, no privilege escalation, no capabilities, RuntimeDefault seccomp."""
    context = {
        "runAsNonRoot": True,
        "runAsUser": naming.UID,
        "runAsGroup": naming.GID,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if read_only_root:
        context["readOnlyRootFilesystem"] = True
    return context


def pod_security() -> dict:
    """fsGroup makes mounted volumes writable by uid 1000 (the report's `Permission denied`)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": naming.UID,
        "runAsGroup": naming.GID,
        "fsGroup": naming.GID,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_spec(containers: list, volumes: list, **extra) -> dict:
    """A pod spec with the restricted pod security context and no service account token."""
    return {
        "automountServiceAccountToken": False,
        "securityContext": pod_security(),
        "containers": containers,
        "volumes": volumes,
        **extra,
    }


def template(component: str, spec: dict) -> dict:
    """A pod template: `spec` under the component's labels."""
    return {"metadata": {"labels": naming.labels(component)}, "spec": spec}


def http_probes(port: str, readiness_period: int) -> dict:
    """Readiness on /readyz and liveness on /healthz, as the `mochi` servers serve them."""
    return {
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": port},
            "periodSeconds": readiness_period,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": port},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
    }


def secret_env(name: str, secret: str, key: str) -> dict:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def redis_password_env(name: str = "MOCHI_REDIS_PASSWORD") -> dict:
    return secret_env(name, naming.REDIS_SECRET, naming.REDIS_PASSWORD_KEY)


def ray_token_env() -> dict:
    """Ray (2.52+) token auth: RAY_AUTH_MODE=token comes from the settings ConfigMap."""
    return secret_env("RAY_AUTH_TOKEN", naming.RAY_AUTH_SECRET, naming.RAY_AUTH_TOKEN_KEY)


def hf_home_env() -> dict:
    """Hugging Face downloads go to the model-cache volume."""
    return {"name": "HF_HOME", "value": f"{naming.MODEL_CACHE_DIR}/huggingface"}


def settings_env_from(config_map_name) -> list:
    return [{"configMapRef": {"name": config_map_name}}]


def empty_dir(name: str, size: str | None = None, memory: bool = False) -> dict:
    source: dict = {}
    if memory:
        source["medium"] = "Memory"
    if size:
        source["sizeLimit"] = size
    return {"name": name, "emptyDir": source}


def pvc_volume(name: str, claim) -> dict:
    return {"name": name, "persistentVolumeClaim": {"claimName": claim}}


# The shared volumes, mounted where the settings (MOCHI_OUTPUT_DIR, MOCHI_MODEL_CACHE_DIR) say.
def output_volume(claim) -> dict:
    return pvc_volume("videos", claim)


def output_mount() -> dict:
    return {"name": "videos", "mountPath": naming.OUTPUT_DIR}


def model_cache_volume(claim) -> dict:
    return pvc_volume("model-cache", claim)


def model_cache_mount() -> dict:
    return {"name": "model-cache", "mountPath": naming.MODEL_CACHE_DIR}


def service_container(name: str, args, command: list[str], env: list, **fields) -> dict:
    """A container of the service's image (args: a PodArgs) reading the settings ConfigMap."""
    return {
        "name": name,
        "image": args.image,
        "command": command,
        "envFrom": settings_env_from(args.settings_name),
        "env": env,
        **fields,
    }
