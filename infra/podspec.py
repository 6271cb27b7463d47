"""Pieces every pod shares: the restricted security context, settings and secrets as env."""

from __future__ import annotations

from infra import naming


def container_security() -> dict:
    """Non-root, no privilege escalation, no capabilities, RuntimeDefault seccomp."""
    return {
        "runAsNonRoot": True,
        "runAsUser": naming.UID,
        "runAsGroup": naming.GID,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


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


def secret_env(name: str, secret: str, key: str) -> dict:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def redis_password_env() -> dict:
    return secret_env("MOCHI_REDIS_PASSWORD", naming.REDIS_SECRET, naming.REDIS_PASSWORD_KEY)


def ray_token_env() -> dict:
    """Ray (2.52+) token auth: RAY_AUTH_MODE=token comes from the settings ConfigMap."""
    return secret_env("RAY_AUTH_TOKEN", naming.RAY_AUTH_SECRET, naming.RAY_AUTH_TOKEN_KEY)


def settings_env_from(config_map_name) -> list:
    return [{"configMapRef": {"name": config_map_name}}]


def empty_dir(name: str, size: str | None = None, memory: bool = False) -> dict:
    source: dict = {}
    if memory:
        source["medium"] = "Memory"
    if size:
        source["sizeLimit"] = size
    return {"name": name, "emptyDir": source}


def pvc_volume(name: str, claim: str, read_only: bool = False) -> dict:
    source: dict = {"claimName": claim}
    if read_only:
        source["readOnly"] = True
    return {"name": name, "persistentVolumeClaim": source}
