"""Static scheduling facts: a claim a pod template mounts that does not exist, a Service whose
selector matches no pod template, and a claim whose access modes cannot serve all its mounts."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from doctor.finding import Category, Severity
from doctor.inventory import Inventory, Workload
from doctor.objects import labels_match, name_of, namespace_of, resource_id
from doctor.registry import Hit, check

CLAIM_LIST_READ = "list_namespaced_persistent_volume_claim"
# Kinds of the Kubernetes API itself and of KubeRay: any other kind is a custom resource whose
# operator may create pods the input does not show.
KNOWN_GROUPS = ("", "apps", "batch", "policy", "autoscaling", "ray.io")
ANY = None  # a label the controller sets to a value the input cannot show


@dataclass(frozen=True)
class ClaimUse:
    """One pod template's volume that names a PersistentVolumeClaim."""

    workload: Workload
    index: int
    volume: dict

    @property
    def claim(self) -> str:
        return str((self.volume.get("persistentVolumeClaim") or {}).get("claimName") or "")

    @property
    def mounted_read_write(self) -> bool:
        if (self.volume.get("persistentVolumeClaim") or {}).get("readOnly"):
            return False
        return any(
            mount.get("name") == self.volume.get("name") and not mount.get("readOnly")
            for container in self.workload.all_containers
            for mount in container.get("volumeMounts") or []
        )

    @property
    def field(self) -> str:
        return f"volumes[{self.index}] {self.volume.get('name')}: claimName {self.claim}"


def claim_uses(inventory: Inventory) -> dict[tuple[str, str], list[ClaimUse]]:
    """Every claim a pod template names, by (namespace, claim name)."""
    uses: dict[tuple[str, str], list[ClaimUse]] = defaultdict(list)
    for workload in inventory.workloads:
        for index, volume in enumerate(workload.pod_spec.get("volumes") or []):
            if isinstance(volume, dict) and "persistentVolumeClaim" in volume:
                use = ClaimUse(workload, index, volume)
                if use.claim:
                    uses[(workload.namespace, use.claim)].append(use)
    return uses


def implicit_claims(inventory: Inventory, namespace: str) -> list[re.Pattern]:
    """Names of the claims controllers create: a StatefulSet's volumeClaimTemplates
    (<template>-<set>-<ordinal>) and ephemeral volumes (<pod>-<volume>)."""
    patterns = []
    for workload in inventory.workloads_in(namespace):
        name = re.escape(workload.name)
        if workload.kind == "StatefulSet":
            for template in (workload.obj.get("spec") or {}).get("volumeClaimTemplates") or []:
                patterns.append(re.compile(rf"{re.escape(name_of(template))}-{name}-\d+"))
        pod = name if workload.kind == "Pod" else rf"{name}-.+"
        for volume in workload.pod_spec.get("volumes") or []:
            if isinstance(volume, dict) and "ephemeral" in volume:
                patterns.append(re.compile(rf"{pod}-{re.escape(str(volume.get('name')))}"))
    return patterns


def claims_were_read(inventory: Inventory, namespace: str) -> bool:
    """Whether the input is a read of the cluster that lists the namespace's claims, so that a
    claim absent from it is absent from the cluster."""
    if inventory.source == "manifests":
        return False
    kube = inventory.live.kubernetes
    if kube is not None and kube.namespace == namespace:
        return CLAIM_LIST_READ not in kube.errors
    return bool(inventory.in_namespace("PersistentVolumeClaim", namespace))


def claim_elsewhere(inventory: Inventory, namespace: str, claim: str) -> str:
    others = sorted(
        namespace_of(c)
        for c in inventory.of("PersistentVolumeClaim")
        if name_of(c) == claim and namespace_of(c) != namespace
    )
    return f"; a claim {claim} is in namespace {', '.join(others)}" if others else ""


@check(
    code="AVAIL008",
    severity=Severity.ERROR,
    category=Category.AVAILABILITY,
    summary="A pod template mounts a PersistentVolumeClaim that does not exist in its namespace",
    fix="Create the claim in the workload's namespace (or fix claimName); a pod whose claim is "
    "missing is never scheduled.",
)
def missing_claim(inventory: Inventory):
    for (namespace, claim), uses in claim_uses(inventory).items():
        if inventory.get("PersistentVolumeClaim", namespace, claim) is not None:
            continue
        if any(p.fullmatch(claim) for p in implicit_claims(inventory, namespace)):
            continue
        read = claims_were_read(inventory, namespace)
        by_resource: dict[str, list[ClaimUse]] = defaultdict(list)
        for use in uses:
            by_resource[use.workload.resource].append(use)
        for resource, resource_uses in by_resource.items():
            labels = ", ".join(sorted({u.workload.label for u in resource_uses}))
            evidence = "; ".join(sorted({f"{u.workload.label}: {u.field}" for u in resource_uses}))
            evidence += claim_elsewhere(inventory, namespace, claim)
            if read:
                yield Hit(
                    resource,
                    f"{labels} mounts PersistentVolumeClaim {claim}, which does not exist in "
                    f"namespace {namespace}: its pods stay Pending",
                    evidence,
                )
            else:
                yield Hit(
                    resource,
                    f"{labels} mounts PersistentVolumeClaim {claim}, which is not in the input "
                    f"for namespace {namespace}: if no other chart or step creates it, its pods "
                    "stay Pending",
                    evidence,
                    severity=Severity.WARNING,
                )


def controller_labels(workload: Workload) -> dict[str, set[str] | None]:
    """Labels the controller puts on a pod over its template's (ANY: a value not in the
    input, such as a hash or a generated name)."""
    replicas = range(max(workload.replicas, 1))
    if workload.kind in ("Deployment", "ReplicaSet"):
        return {"pod-template-hash": ANY}
    if workload.kind == "StatefulSet":
        return {
            "statefulset.kubernetes.io/pod-name": {f"{workload.name}-{i}" for i in replicas},
            "apps.kubernetes.io/pod-index": {str(i) for i in replicas},
            "controller-revision-hash": ANY,
        }
    if workload.kind == "DaemonSet":
        return {"controller-revision-hash": ANY, "pod-template-generation": ANY}
    if workload.kind == "Job":
        return {
            "job-name": {workload.name},
            "batch.kubernetes.io/job-name": {workload.name},
            "controller-uid": ANY,
            "batch.kubernetes.io/controller-uid": ANY,
            "batch.kubernetes.io/job-completion-index": ANY,
        }
    if workload.is_kuberay and workload.cluster is not None and workload.cluster.name_is_generated:
        return {"ray.io/cluster": ANY, "ray.io/identifier": ANY}
    return {}


def may_carry(workload: Workload, key: str, value: str) -> bool:
    """Whether a pod of this template can carry label key=value."""
    controlled = controller_labels(workload)
    if key in controlled:
        values = controlled[key]
        return values is ANY or value in values
    if key in workload.pod_labels:
        return str(workload.pod_labels[key]) == value
    # KubeRay sets more ray.io/ labels at run time (ray.io/serve on RayService pods, the
    # originated-from labels of RayJob and RayService clusters).
    return workload.is_kuberay and key.startswith("ray.io/")


def other_templates(inventory: Inventory) -> dict[str, list[dict]]:
    """Labels of the pod templates inside objects that are not workloads (a CronJob, an Argo
    Rollout...), by namespace."""
    workloads = {w.resource for w in inventory.workloads}
    found: dict[str, list[dict]] = defaultdict(list)
    for objects in inventory.objects.values():
        for obj in objects:
            if resource_id(obj) not in workloads:
                found[namespace_of(obj)].extend(template_labels(obj))
    return found


def template_labels(value) -> list[dict]:
    if isinstance(value, list):
        return [labels for item in value for labels in template_labels(item)]
    if not isinstance(value, dict):
        return []
    template = value.get("template")
    if isinstance(template, dict) and "containers" in (template.get("spec") or {}):
        return [(template.get("metadata") or {}).get("labels") or {}]
    return [labels for item in value.values() for labels in template_labels(item)]


def is_custom_resource(obj: dict) -> bool:
    group = str(obj.get("apiVersion") or "").rpartition("/")[0]
    return group not in KNOWN_GROUPS and not group.endswith(".k8s.io")


def custom_resource_kinds(inventory: Inventory, namespace: str) -> list[str]:
    return sorted(
        kind
        for kind, objects in inventory.objects.items()
        if any(namespace_of(o) == namespace and is_custom_resource(o) for o in objects)
    )


def created_by_operator(service: dict) -> bool:
    metadata = service.get("metadata") or {}
    labels = metadata.get("labels") or {}
    markers = [labels.get(f"app.kubernetes.io/{key}") for key in ("created-by", "managed-by")]
    return bool(metadata.get("ownerReferences")) or any(
        str(m).endswith("operator") for m in markers if m
    )


def describe_templates(workloads: list[Workload], keys: set[str]) -> str:
    shown = []
    for workload in workloads[:3]:
        labels = {k: v for k, v in workload.pod_labels.items() if k in keys}
        shown.append(f"{workload.label} {labels or workload.pod_labels or '{}'}")
    more = f" and {len(workloads) - 3} more" if len(workloads) > 3 else ""
    return "; pod templates here: " + ", ".join(shown) + more if shown else ""


@check(
    code="NET007",
    severity=Severity.WARNING,
    category=Category.CONNECTIVITY,
    summary="A Service's selector matches no pod template in the input",
    fix="Make spec.selector equal to labels the pod template of the workload it fronts carries "
    "(spec.template.metadata.labels).",
)
def service_selects_nothing(inventory: Inventory):
    # A cluster read has Endpoints, which NET004 judges.
    if inventory.source != "manifests":
        return
    templates = other_templates(inventory)
    for service in inventory.of("Service"):
        spec = service.get("spec") or {}
        selector = spec.get("selector")
        if not isinstance(selector, dict) or not selector or spec.get("type") == "ExternalName":
            continue
        if created_by_operator(service):
            continue
        namespace, wanted = namespace_of(service), {str(k): str(v) for k, v in selector.items()}
        workloads = inventory.workloads_in(namespace)
        if any(all(may_carry(w, k, v) for k, v in wanted.items()) for w in workloads):
            continue
        if any(labels_match(wanted, labels) for labels in templates.get(namespace, [])):
            continue
        custom = custom_resource_kinds(inventory, namespace)
        note = f" (unless the operator of {', '.join(custom)} creates such pods)" if custom else ""
        yield Hit(
            resource_id(service),
            f"Service {name_of(service)} selects no pod template in the input: no workload in "
            f"namespace {namespace} carries {wanted}, so it has no endpoints{note}",
            f"spec.selector: {wanted}" + describe_templates(workloads, set(wanted)),
        )


def pod_count(uses: list[ClaimUse]) -> tuple[int, bool]:
    """(pods the input shows mounting the claim, whether a DaemonSet puts one on every node)."""
    workloads = {w.label: w for w in (u.workload for u in uses)}.values()
    every_node = any(w.kind == "DaemonSet" for w in workloads)
    return sum(1 if w.kind == "DaemonSet" else w.replicas for w in workloads), every_node


def describe_users(uses: list[ClaimUse]) -> str:
    parts = {}
    for use in uses:
        workload = use.workload
        pods = "a pod per node" if workload.kind == "DaemonSet" else f"{workload.replicas} pods"
        parts[workload.label] = f"{workload.label} ({pods})"
    return ", ".join(sorted(parts.values()))


@check(
    code="PERM006",
    severity=Severity.WARNING,
    category=Category.PERMISSIONS,
    summary="A claim's access modes cannot serve all the pods that mount it",
    fix="Use a ReadWriteMany claim (NFS, CephFS, EFS, Filestore, Azure Files) for volumes several "
    "pods share, or give each pod its own claim (a StatefulSet's volumeClaimTemplates).",
)
def access_mode_mismatch(inventory: Inventory):
    for (namespace, claim_name), uses in claim_uses(inventory).items():
        claim = inventory.get("PersistentVolumeClaim", namespace, claim_name)
        if claim is None:
            continue  # AVAIL008
        modes = [str(m) for m in (claim.get("spec") or {}).get("accessModes") or []]
        uses = [u for u in uses if u.workload.replicas > 0]
        if not modes or "ReadWriteMany" in modes or not uses:
            continue
        resource = f"PersistentVolumeClaim/{namespace}/{claim_name}"
        mounts = "; ".join(sorted({f"{u.workload.label}: {u.field}" for u in uses}))
        evidence = f"accessModes: {modes}; {mounts}"
        pods, every_node = pod_count(uses)
        writers = sorted({u.workload.label for u in uses if u.mounted_read_write})
        if modes == ["ReadWriteOncePod"] and pods > 1:
            yield Hit(
                resource,
                f"claim {claim_name} is ReadWriteOncePod but {pods} pods mount it "
                f"({describe_users(uses)}): only one pod can use it, the others stay Pending",
                evidence,
                severity=Severity.ERROR,
            )
        elif writers and not {"ReadWriteOnce", "ReadWriteOncePod"} & set(modes):
            yield Hit(
                resource,
                f"claim {claim_name} is ReadOnlyMany but {', '.join(writers)} mounts it "
                "read-write: where the storage enforces the mode, writes fail with Read-only "
                "file system; where it does not, the data is not read-only",
                evidence,
                fix="Set persistentVolumeClaim.readOnly: true on the volume (or readOnly: true "
                "on every mount), or ask for ReadWriteMany if the pods must write.",
            )
        elif (pods > 1 or every_node) and not ("ReadOnlyMany" in modes and not writers):
            yield Hit(
                resource,
                f"claim {claim_name} is {'/'.join(modes)} but {describe_users(uses)} mount it: "
                "unless all run on one node, pods on the other nodes stay in ContainerCreating "
                "(Multi-Attach error)",
                evidence,
            )
