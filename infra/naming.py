"""Object names, labels and ports: defined once, used by every component and by the tests."""

from __future__ import annotations

from service import config as service_config

APP = "mochi"
PART_OF = {"app.kubernetes.io/part-of": APP}

API = "api"
REDIS = "redis"
RAY_HEAD = "ray-head"
RAY_WORKER = "ray-worker"
SUPERVISOR = "supervisor"
MODEL_PREFILL = "model-prefill"

RAY_CLUSTER = "mochi-ray"
SETTINGS_CONFIG_MAP = "mochi-settings"
REDIS_SECRET = "mochi-redis"
RAY_AUTH_SECRET = "mochi-ray-auth"
API_KEYS_SECRET = "mochi-api-keys"
OUTPUT_PVC = "mochi-videos"
MODEL_CACHE_PVC = "mochi-model-cache"
REDIS_DATA = "data"  # volumeClaimTemplate name; the PVC becomes data-redis-0

REDIS_PASSWORD_KEY = "password"
RAY_AUTH_TOKEN_KEY = "token"
API_KEYS_KEY = "bootstrap-api-keys"

API_PORT = service_config.API_PORT
REDIS_PORT = service_config.REDIS_PORT
RAY_GCS_PORT = service_config.RAY_GCS_PORT
RAY_CLIENT_PORT = service_config.RAY_CLIENT_PORT
RAY_DASHBOARD_PORT = service_config.RAY_DASHBOARD_PORT
RAY_METRICS_PORT = service_config.RAY_METRICS_PORT
# `mochi supervisor --health-port`: /healthz (loop ticking) and /readyz (Ray and Redis reached).
SUPERVISOR_HEALTH_PORT = service_config.SUPERVISOR_HEALTH_PORT
# Ray's dashboard agent serves the per-node health endpoint here (Ray's default).
RAY_AGENT_PORT = 52365
UID = service_config.CONTAINER_UID
GID = service_config.CONTAINER_GID

OUTPUT_DIR = "/data/videos"
MODEL_CACHE_DIR = "/models"
RAY_VERSION = "2.60.0"
KUBERAY_CHART_VERSION = "1.7.0"
KUBERAY_CHART_REPO = "https://ray-project.github.io/kuberay-helm/"
KUBERAY_NAMESPACE = "kuberay-system"
GPU_RESOURCE = "nvidia.com/gpu"


# Selectors use our own key: KubeRay overwrites app.kubernetes.io/name on the pods it creates.
COMPONENT_LABEL = "mochi.io/component"


def selector(component: str) -> dict[str, str]:
    return {COMPONENT_LABEL: component}


def labels(component: str) -> dict[str, str]:
    return {**selector(component), "app.kubernetes.io/name": component, **PART_OF}


def metadata(component: str, namespace) -> dict:
    """The metadata of a component's own object (its workload, Service, PDB, Ingress)."""
    return {"name": component, "namespace": namespace, "labels": labels(component)}
