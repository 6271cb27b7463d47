"""The normalized input every check reads: Kubernetes objects by kind, events, endpoints,
build files (Dockerfiles, requirements), and live state (Ray, Redis, jobs) when a source has it.

Sources (doctor.sources) fill an Inventory; checks only read it. Workloads are derived views
over the objects: a Deployment, StatefulSet, DaemonSet, Job, bare Pod, or one group of a Ray
cluster that a KubeRay object describes (RayCluster, RayJob, RayService, RayCronJob), each with
its pod spec, replica count and Ray role. The Services, Ingresses and NetworkPolicies the KubeRay
operator would create are derived too (doctor.kuberay).
"""

from __future__ import annotations

import shlex
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from doctor.kuberay import (
    KUBERAY_KINDS,
    EmbeddedCluster,
    created_ingresses,
    created_network_policies,
    created_services,
    embedded_clusters,
    kuberay_pod_labels,
)
from doctor.objects import labels_match, name_of, namespace_of, resource_id
from doctor.redaction import KnownSecrets, secret_values
from doctor.state import LiveState

IGNORE_ANNOTATION = "doctor.mochi.dev/ignore"
WORKLOAD_KINDS = (
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "ReplicationController",
    "Job",
    "CronJob",
)
# Kinds a controller creates from another object: with an owner they are that owner's pods.
OWNED_KINDS = ("ReplicaSet", "Job")


@dataclass(frozen=True)
class BuildFile:
    """A Dockerfile, a requirements file or an image build map found beside the manifests."""

    path: str
    kind: str  # "dockerfile" | "requirements" | "compose" | "skaffold"
    text: str


@dataclass(frozen=True)
class EnvValue:
    value: str | None  # None when it comes from a Secret or the downward API
    origin: str  # "env", "ConfigMap/ns/name", "Secret/ns/name", "fieldRef"
    literal: bool  # written in the pod spec itself


@dataclass
class Workload:
    kind: str
    namespace: str
    name: str
    replicas: int
    pod_spec: dict
    pod_labels: dict
    obj: dict
    group: str = ""  # the RayCluster group ("head" or a worker group name)
    ray_role: str | None = None  # "head" | "worker" | None
    ray_start_params: dict = field(default_factory=dict)  # KubeRay rayStartParams
    cluster: EmbeddedCluster | None = None  # the KubeRay cluster this group belongs to
    inventory: Inventory | None = field(default=None, repr=False)

    @property
    def resource(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"

    @property
    def label(self) -> str:
        """How a message names it: with the RayCluster group when there is one."""
        return f"{self.resource} ({self.group} group)" if self.group else self.resource

    @property
    def is_kuberay(self) -> bool:
        """One group of a cluster the KubeRay operator runs (RayCluster, RayJob, ...)."""
        return self.kind in KUBERAY_KINDS

    @cached_property
    def mochi_worker_evidence(self) -> str | None:
        """Why this pod runs this project's Mochi worker pool, or None when nothing shows it:
        a MOCHI_* setting in its environment, an image named for Mochi, or the pool's entrypoint
        on its command line."""
        for container in self.containers:
            image = str(container.get("image", ""))
            if "mochi" in image.rsplit("/", 1)[-1].lower():
                return f"image {image}"
            command = command_text(container)
            if "service.pool" in command or "service.supervisor" in command:
                return f"command of container {container.get('name', '?')}"
            names = sorted(n for n in self.env(container) if n.startswith("MOCHI_"))
            if names:
                return f"env {names[0]} of container {container.get('name', '?')}"
        return None

    @property
    def runs_mochi_worker(self) -> bool:
        return self.ray_role is not None and self.mochi_worker_evidence is not None

    @property
    def containers(self) -> list[dict]:
        return list(self.pod_spec.get("containers") or [])

    @property
    def init_containers(self) -> list[dict]:
        return list(self.pod_spec.get("initContainers") or [])

    @property
    def all_containers(self) -> list[dict]:
        return self.init_containers + self.containers

    @property
    def ray_container(self) -> dict | None:
        if self.ray_role is None:
            return None
        for container in self.containers:
            if self.ray_start_params or "ray start" in command_text(container):
                return container
        return self.containers[0] if self.containers else None

    def volume(self, name: str) -> dict | None:
        for volume in self.pod_spec.get("volumes") or []:
            if volume.get("name") == name:
                return volume
        return None

    def env(self, container: dict) -> dict[str, EnvValue]:
        """A container's environment with ConfigMap references resolved."""
        assert self.inventory is not None
        result: dict[str, EnvValue] = {}
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix") or ""
            if "configMapRef" in source:
                cm = self.inventory.get("ConfigMap", self.namespace, source["configMapRef"]["name"])
                for key, value in ((cm or {}).get("data") or {}).items():
                    origin = f"ConfigMap/{self.namespace}/{source['configMapRef']['name']}"
                    result[prefix + key] = EnvValue(str(value), origin, False)
            if "secretRef" in source:
                secret = self.inventory.get("Secret", self.namespace, source["secretRef"]["name"])
                for key in ((secret or {}).get("data") or {}) | (
                    (secret or {}).get("stringData") or {}
                ):
                    origin = f"Secret/{self.namespace}/{source['secretRef']['name']}"
                    result[prefix + key] = EnvValue(None, origin, False)
        for item in container.get("env") or []:
            name = item.get("name")
            if not name:
                continue
            if "value" in item:
                result[name] = EnvValue(str(item["value"]), "env", True)
                continue
            ref = item.get("valueFrom") or {}
            if "configMapKeyRef" in ref:
                cm_name = ref["configMapKeyRef"].get("name")
                cm = self.inventory.get("ConfigMap", self.namespace, cm_name)
                value = ((cm or {}).get("data") or {}).get(ref["configMapKeyRef"].get("key"))
                origin = f"ConfigMap/{self.namespace}/{cm_name}"
                result[name] = EnvValue(None if value is None else str(value), origin, False)
            elif "secretKeyRef" in ref:
                origin = f"Secret/{self.namespace}/{ref['secretKeyRef'].get('name')}"
                result[name] = EnvValue(None, origin, False)
            else:
                result[name] = EnvValue(None, "fieldRef", False)
        return result

    def security_context(self, container: dict) -> dict:
        """Container securityContext over the pod's (the container's fields win)."""
        pod = self.pod_spec.get("securityContext") or {}
        return {**pod, **(container.get("securityContext") or {})}


def command_text(container: dict) -> str:
    parts = [str(p) for p in (container.get("command") or []) + (container.get("args") or [])]
    return " ".join(parts)


def count(value, default: int = 1) -> int:
    """A replica count; a value that is not a whole number (a template left in, say) counts as
    the default here and is reported by CONF001."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return max(value, 0)
    text = str(value).strip()
    return int(text) if text.isdigit() else default


def shell_words(text: str) -> list[str]:
    try:
        return shlex.split(text, comments=False)
    except ValueError:
        return text.split()


@dataclass(frozen=True)
class Origin:
    """Where an object was read: a file as given (or `live:SERVER`) and the 1-based line its
    document or List item starts on (0: unknown). Printed, it is the path."""

    path: str
    line: int = 0

    def __str__(self) -> str:
        return self.path


class Inventory:
    """Objects by kind, plus build files and live state. Indexes are built once, on demand."""

    def __init__(self, source: str = "manifests"):
        self.source = source  # "manifests" | "snapshot" | "live"
        self.objects: dict[str, list[dict]] = defaultdict(list)
        self.files: list[BuildFile] = []
        self.origin: dict[str, Origin] = {}  # resource id -> where it was read
        # Live or recorded state beyond the Kubernetes objects: Ray, Redis, jobs, probes...
        self.live = LiveState()
        # Input files the sources could not check (doctor.sources.files.SkippedFile): the
        # report lists them, so nothing is dropped without a word.
        self.skipped: list = []

    # -- filling -----------------------------------------------------------------------------
    def add(self, obj: dict, origin: Origin | str = "", item_lines: Sequence[int] = ()) -> None:
        """Add an object (a List: each item, at its line in item_lines when known)."""
        kind = obj.get("kind")
        if not isinstance(kind, str):
            return
        where = Origin(origin) if isinstance(origin, str) else origin
        if kind.endswith("List") and isinstance(obj.get("items"), list):
            for index, item in enumerate(obj["items"]):
                if isinstance(item, dict):
                    if "kind" not in item and kind != "List":
                        item = {**item, "kind": kind[: -len("List")]}
                    line = item_lines[index] if index < len(item_lines) else where.line
                    self.add(item, Origin(where.path, line))
            return
        self.objects[kind].append(obj)
        if where.path:
            self.origin.setdefault(resource_id(obj), where)

    # -- reading -----------------------------------------------------------------------------
    def of(self, kind: str) -> list[dict]:
        return self.objects.get(kind, [])

    @cached_property
    def known_secrets(self) -> KnownSecrets:
        """The values of the input's Secrets (manifests hold them; a live read keeps none), to
        mask wherever a finding or a snapshot would print them."""
        return KnownSecrets(secret_values(self.of("Secret")))

    @cached_property
    def _by_key(self) -> dict[tuple[str, str, str], dict]:
        return {
            (kind, namespace_of(obj), name_of(obj)): obj
            for kind, objs in self.objects.items()
            for obj in objs
        }

    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        return self._by_key.get((kind, namespace, name))

    def by_resource(self, resource: str) -> dict | None:
        kind, _, rest = resource.partition("/")
        namespace, _, name = rest.partition("/")
        return self.get(kind, namespace, name)

    @cached_property
    def namespaces(self) -> set[str]:
        return {namespace_of(obj) for objs in self.objects.values() for obj in objs} | {
            name_of(obj) for obj in self.of("Namespace")
        }

    def in_namespace(self, kind: str, namespace: str) -> list[dict]:
        return self._by_namespace.get((kind, namespace), [])

    @cached_property
    def _by_namespace(self) -> dict[tuple[str, str], list[dict]]:
        index: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for kind, objs in self.objects.items():
            for obj in objs:
                index[(kind, namespace_of(obj))].append(obj)
        return index

    @property
    def events(self) -> list[dict]:
        return self.of("Event")

    @property
    def has_runtime_state(self) -> bool:
        """A snapshot or live read: pods with status, events."""
        return bool(self.of("Event")) or any(p.get("status") for p in self.of("Pod"))

    @cached_property
    def events_by_object(self) -> dict[tuple[str, str, str], list[dict]]:
        index: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
        for event in self.events:
            involved = event.get("involvedObject") or event.get("regarding") or {}
            key = (
                involved.get("kind", ""),
                involved.get("namespace") or namespace_of(event),
                involved.get("name", ""),
            )
            index[key].append(event)
        return index

    @cached_property
    def workloads(self) -> list[Workload]:
        result: list[Workload] = []
        for kind in WORKLOAD_KINDS:
            for obj in self.of(kind):
                if kind in OWNED_KINDS and (obj.get("metadata") or {}).get("ownerReferences"):
                    continue
                spec = obj.get("spec") or {}
                if kind == "CronJob":  # each run is a Job made from spec.jobTemplate
                    spec = (spec.get("jobTemplate") or {}).get("spec") or {}
                template = spec.get("template") or {}
                if kind in ("Job", "CronJob"):
                    replicas = spec.get("parallelism", 1)
                else:
                    replicas = spec.get("replicas", 1)
                result.append(self._workload(kind, obj, template, replicas))
        for obj in self.of("Pod"):
            if not (obj.get("metadata") or {}).get("ownerReferences"):
                result.append(self._workload("Pod", obj, obj, 1))
        for cluster in self.kuberay_clusters:
            result.extend(self._ray_cluster_workloads(cluster))
        return result

    @cached_property
    def kuberay_clusters(self) -> list[EmbeddedCluster]:
        return embedded_clusters(self.objects)

    def _workload(self, kind: str, obj: dict, template: dict, replicas: int) -> Workload:
        spec = template.get("spec") or {}
        workload = Workload(
            kind=kind,
            namespace=namespace_of(obj),
            name=name_of(obj),
            replicas=count(replicas),
            pod_spec=spec,
            pod_labels=(template.get("metadata") or {}).get("labels") or {},
            obj=obj,
            inventory=self,
        )
        for container in spec.get("containers") or []:
            words = shell_words(command_text(container))
            for i in range(len(words) - 1):
                if words[i].endswith("ray") and words[i + 1] == "start":
                    workload.ray_role = "head" if "--head" in words[i:] else "worker"
                    break
            if workload.ray_role:
                break
        return workload

    def _ray_cluster_workloads(self, cluster: EmbeddedCluster) -> list[Workload]:
        groups = [("head", cluster.head_group, 1, "head")]
        for group in cluster.worker_groups:
            replicas = group.get("replicas", group.get("minReplicas", 1))
            groups.append((group.get("groupName", "workers"), group, replicas, "worker"))
        result = []
        for group_name, group, replicas, role in groups:
            template = group.get("template") or {}
            labels = (template.get("metadata") or {}).get("labels")
            result.append(
                Workload(
                    kind=cluster.kind,
                    namespace=cluster.namespace,
                    name=cluster.owner_name,
                    replicas=count(replicas),
                    pod_spec=template.get("spec") or {},
                    pod_labels=kuberay_pod_labels(cluster, role, str(group_name), labels),
                    obj=cluster.owner,
                    group=group_name,
                    ray_role=role,
                    ray_start_params={
                        str(k): str(v) for k, v in (group.get("rayStartParams") or {}).items()
                    },
                    cluster=cluster,
                    inventory=self,
                )
            )
        return result

    def workloads_in(self, namespace: str) -> list[Workload]:
        return self._workloads_by_ns.get(namespace, [])

    @cached_property
    def _workloads_by_ns(self) -> dict[str, list[Workload]]:
        index: dict[str, list[Workload]] = defaultdict(list)
        for workload in self.workloads:
            index[workload.namespace].append(workload)
        return index

    @cached_property
    def services(self) -> dict[tuple[str, str], dict]:
        """Services by (namespace, name), including those the KubeRay operator creates."""
        result = {(namespace_of(s), name_of(s)): s for s in self.of("Service")}
        for cluster in self.kuberay_clusters:
            for service in created_services(cluster):
                result.setdefault((namespace_of(service), name_of(service)), service)
        return result

    @cached_property
    def ingresses(self) -> list[dict]:
        """Ingresses, including the one KubeRay creates for `enableIngress`."""
        created = [i for c in self.kuberay_clusters for i in created_ingresses(c)]
        return self.of("Ingress") + created

    def network_policies_in(self, namespace: str) -> list[dict]:
        """A namespace's NetworkPolicies, including those KubeRay creates for networkPolicy."""
        return self.in_namespace("NetworkPolicy", namespace) + self._created_policies.get(
            namespace, []
        )

    @cached_property
    def _created_policies(self) -> dict[str, list[dict]]:
        index: dict[str, list[dict]] = defaultdict(list)
        for cluster in self.kuberay_clusters:
            index[cluster.namespace].extend(created_network_policies(cluster))
        return index

    def selected_workloads(self, service: dict) -> list[Workload]:
        selector = (service.get("spec") or {}).get("selector") or {}
        if not selector:
            return []
        return [
            w
            for w in self.workloads_in(namespace_of(service))
            if labels_match(selector, w.pod_labels)
        ]

    @cached_property
    def pods_by_namespace(self) -> dict[str, list[dict]]:
        index: dict[str, list[dict]] = defaultdict(list)
        for pod in self.of("Pod"):
            index[namespace_of(pod)].append(pod)
        return index

    def ignored_codes(self, resource: str) -> dict[str, str]:
        """Codes an object's `doctor.mochi.dev/ignore` annotation suppresses, with the reason."""
        obj = self.by_resource(resource)
        if obj is None:
            return {}
        text = ((obj.get("metadata") or {}).get("annotations") or {}).get(IGNORE_ANNOTATION)
        if not text:
            return {}
        codes, _, reason = str(text).partition(":")
        return {
            code.strip().upper(): reason.strip() or "annotated"
            for code in codes.split(",")
            if code.strip()
        }
