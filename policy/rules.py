"""Checks on one Kubernetes object (its Pulumi inputs, i.e. the manifest), as plain functions.

Each returns the list of violation messages; the policy pack wraps them, the tests call them.
"""

from __future__ import annotations

import ipaddress
import re
import shlex

from infra.manifests import containers, pod_specs
from service.memory_model import parse_quantity_gib, worker_host_memory_gib

GPU = "nvidia.com/gpu"
IP_LITERAL = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d.])")
# The field report's `ray start --ray-client-server-host`: not a ray start flag.
INVALID_RAY_FLAGS = ("--ray-client-server-host",)
RAY_PORTS_INTERNAL_ONLY = (6379, 8265, 10001)


def image_pinned(obj: dict) -> list[str]:
    problems = []
    for where, pod in pod_specs(obj):
        for container in containers(pod):
            image = container.get("image", "")
            last = image.rsplit("/", 1)[-1]
            if "@sha256:" in image:
                continue
            if ":" not in last or last.endswith(":latest"):
                problems.append(
                    f"{where} container {container['name']}: image {image!r} not pinned"
                )
    return problems


def security_context(obj: dict) -> list[str]:
    problems = []
    for where, pod in pod_specs(obj):
        pod_context = pod.get("securityContext") or {}
        for container in containers(pod):
            context = {**pod_context, **(container.get("securityContext") or {})}
            name = f"{where} container {container['name']}"
            if context.get("runAsNonRoot") is not True or context.get("runAsUser") == 0:
                problems.append(f"{name}: must run as non-root (runAsNonRoot: true)")
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{name}: allowPrivilegeEscalation must be false")
            if context.get("privileged"):
                problems.append(f"{name}: must not be privileged")
            if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
                problems.append(f"{name}: capabilities must drop ALL")
            if (context.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
                problems.append(f"{name}: seccompProfile must be RuntimeDefault")
    return problems


def resources_set(obj: dict) -> list[str]:
    problems = []
    for where, pod in pod_specs(obj):
        for container in containers(pod):
            resources = container.get("resources") or {}
            for section in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in (resources.get(section) or {}):
                        problems.append(
                            f"{where} container {container['name']}: {section}.{resource} not set"
                        )
            requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
            if GPU in limits and str(limits[GPU]) != str(requests.get(GPU, limits[GPU])):
                problems.append(f"{where} container {container['name']}: GPU request != limit")
    return problems


def _ip_literals(text: str) -> list[str]:
    found = []
    for candidate in IP_LITERAL.findall(text):
        try:
            address = ipaddress.ip_address(candidate)
        except ValueError:
            continue
        if not (address.is_unspecified or address.is_loopback):
            found.append(candidate)
    return found


def no_ip_literals(obj: dict) -> list[str]:
    """Addresses must be DNS names of Services (the report's 192.168.0.35:6380)."""
    texts: list[tuple[str, str]] = []
    if obj.get("kind") == "ConfigMap":
        texts += [(f"data.{key}", str(value)) for key, value in (obj.get("data") or {}).items()]
    for where, pod in pod_specs(obj):
        for container in containers(pod):
            name = f"{where} container {container['name']}"
            for env in container.get("env") or []:
                if "value" in env:
                    texts.append((f"{name} env {env['name']}", str(env["value"])))
            for arg in (container.get("command") or []) + (container.get("args") or []):
                texts.append((f"{name} command", str(arg)))
        texts += [(f"{where} hostAliases", str(alias)) for alias in pod.get("hostAliases") or []]
    return [
        f"{where}: IP literal {ip} (use the Service's DNS name)"
        for where, text in texts
        for ip in _ip_literals(text)
    ]


def _ray_start_args(obj: dict) -> list[tuple[str, dict, dict[str, str]]]:
    """(where, container, ray start flags) for every container that starts Ray."""
    found = []
    if obj.get("kind") == "RayCluster":
        spec = obj["spec"]
        groups = [("headGroupSpec", spec["headGroupSpec"])] + [
            (f"workerGroup {g.get('groupName')}", g) for g in spec.get("workerGroupSpecs") or []
        ]
        for where, group in groups:
            container = group["template"]["spec"]["containers"][0]
            params = {k: str(v) for k, v in (group.get("rayStartParams") or {}).items()}
            found.append((where, container, params))
        return found
    for where, pod in pod_specs(obj):
        for container in pod.get("containers") or []:
            words = shlex.split(" ".join(container.get("command") or []))
            words += shlex.split(" ".join(container.get("args") or []))
            if "ray" in words and "start" in words:
                params = {}
                for word in words:
                    if word.startswith("--"):
                        key, _, value = word[2:].partition("=")
                        params[key] = value
                found.append((where, container, params))
    return found


def ray_start_flags(obj: dict) -> list[str]:
    return [
        f"{where}: `ray start --{flag}` is not a ray start option"
        for where, _, params in _ray_start_args(obj)
        for flag in params
        if f"--{flag}" in INVALID_RAY_FLAGS
    ]


def _setting(container: dict, name: str, config_maps: dict[str, dict]) -> str | None:
    """A container's env value: an explicit `env` entry, else from an `envFrom` ConfigMap."""
    for env in container.get("env") or []:
        if env.get("name") == name and "value" in env:
            return str(env["value"])
    for source in container.get("envFrom") or []:
        ref = source.get("configMapRef") or {}
        data = config_maps.get(ref.get("name", "")) or {}
        if name in data:
            return str(data[name])
    return None


def pipelines_per_pod(container: dict, config_maps: dict[str, dict] | None = None) -> int:
    """Mochi pipelines a Ray pod holds, as the doctor counts them: GPUs / MOCHI_GPUS_PER_WORKER.

    Without the setting in sight (a lone object), a GPU pod counts as one pipeline.
    """
    gpus = ((container.get("resources") or {}).get("limits") or {}).get(GPU)
    if not gpus or float(gpus) <= 0:
        return 0
    per_worker = _setting(container, "MOCHI_GPUS_PER_WORKER", config_maps or {})
    try:
        per = float(per_worker) if per_worker is not None else 0.0
    except ValueError:
        per = 0.0
    return max(1, int(float(gpus) // per)) if per > 0 else 1


def config_map_data(objects: list[dict]) -> dict[str, dict]:
    """name -> data of every ConfigMap among `objects` (the stack, for the stack policy)."""
    return {
        (obj.get("metadata") or {}).get("name", ""): obj.get("data") or {}
        for obj in objects
        if obj.get("kind") == "ConfigMap"
    }


def ray_worker_memory(obj: dict, config_maps: dict[str, dict] | None = None) -> list[str]:
    """Object store set explicitly, ≤ /dev/shm ≤ memory limit; GPU pods hold their pipelines.

    `config_maps` (name -> data) resolves MOCHI_GPUS_PER_WORKER from the pod's envFrom.
    """
    problems = []
    pods = dict(pod_specs(obj))
    for where, container, params in _ray_start_args(obj):
        limit_text = ((container.get("resources") or {}).get("limits") or {}).get("memory")
        if "object-store-memory" not in params:
            problems.append(f"{where}: --object-store-memory not set (Ray takes 30% of host RAM)")
            continue
        object_store = int(params["object-store-memory"]) / 2**30
        shm = None
        pod = pods.get(where) or pods.get("spec.template") or {}
        mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts") or []}
        for volume in pod.get("volumes") or []:
            empty = volume.get("emptyDir")
            if empty is not None and mounts.get(volume["name"]) == "/dev/shm":
                shm = parse_quantity_gib(empty["sizeLimit"]) if "sizeLimit" in empty else None
        if shm is not None and object_store > shm:
            problems.append(
                f"{where}: object store {object_store:.1f} GiB > /dev/shm {shm:.1f} GiB"
            )
        if limit_text is None:
            continue
        limit = parse_quantity_gib(limit_text)
        pipelines = pipelines_per_pod(container, config_maps)
        need = worker_host_memory_gib(pipelines, object_store)
        if need > limit:
            problems.append(
                f"{where}: memory limit {limit_text} < host footprint {need:.1f} GiB "
                f"({pipelines} pipeline(s) + object store {object_store:.1f} GiB + overhead)"
            )
        if shm is not None and shm > limit:
            problems.append(f"{where}: /dev/shm {shm:.1f} GiB > memory limit {limit_text}")
    return problems


def ray_ports_internal(obj: dict) -> list[str]:
    """The GCS, client and dashboard ports (Jobs API = remote code execution) stay in-cluster."""
    if obj.get("kind") != "Service":
        return []
    spec = obj.get("spec") or {}
    if spec.get("type", "ClusterIP") == "ClusterIP":
        return []
    exposed = [p for p in spec.get("ports") or [] if p.get("port") in RAY_PORTS_INTERNAL_ONLY]
    return [
        f"Service type {spec['type']} exposes Ray port {port['port']} outside the cluster"
        for port in exposed
    ]


RULES = {
    "image-pinned": ("Images are pinned to a tag other than latest, or a digest.", image_pinned),
    "security-context": (
        "Containers run non-root, without privilege escalation or capabilities, seccomp on.",
        security_context,
    ),
    "resources-set": ("Containers set CPU and memory requests and limits.", resources_set),
    "no-ip-literals": ("Addresses are Service DNS names, never IP literals.", no_ip_literals),
    "ray-start-flags": ("ray start gets only valid options.", ray_start_flags),
    "ray-worker-memory": (
        "Ray pods hold the memory model's footprint; object store <= /dev/shm <= limit.",
        ray_worker_memory,
    ),
    "ray-ports-internal": (
        "Ray's GCS, client and dashboard ports stay in-cluster.",
        ray_ports_internal,
    ),
}
