"""Security: no NetworkPolicy around Ray and Redis, privileged or root containers, mutable tags
that a node caches, one workload running several image digests."""

from __future__ import annotations

import re
from collections import defaultdict

from doctor.finding import Category, Severity
from doctor.images import MUTABLE_TAGS, build_for_image, parse_image
from doctor.inventory import Inventory, Workload, labels_match, name_of, namespace_of
from doctor.redis_containers import is_redis_server
from doctor.registry import Hit, check

# Node agents by image: GPU/Neuron/TPU device plugins, drivers and exporters (NVIDIA DCGM),
# node exporters, CSI node drivers, CNI plugins.
NODE_AGENT_IMAGE = re.compile(
    r"device-plugin|gpu-feature-discovery|node-feature-discovery|node-exporter|neuron-monitor"
    r"|driver-installer|(^|[/_-])(dcgm|csi|cni)([/_-]|$)|calico/node|cilium|flannel|kube-proxy"
)
# A literal image reference; `$VLLM_IMAGE` or `{{ .Values.image }}` is still to be filled in.
IMAGE_REFERENCE = re.compile(r"[\w][\w./:@-]*")


def _admits_selectively(policy: dict, workload: Workload) -> bool:
    spec = policy.get("spec") or {}
    types = spec.get("policyTypes")
    return labels_match(spec.get("podSelector") or {}, workload.pod_labels) and (
        "Ingress" in (["Ingress"] if types is None else types)
    )


def _open_ray_and_redis(inventory: Inventory, namespace: str) -> dict[str, set[str]]:
    """Ray and Redis workloads of the namespace that no NetworkPolicy selects, by resource,
    with what runs there ("Ray head", "Ray worker", "Redis")."""
    policies = inventory.network_policies_in(namespace)
    open_workloads: dict[str, set[str]] = defaultdict(set)
    for workload in inventory.workloads_in(namespace):
        is_redis = any(is_redis_server(c) for c in workload.containers)
        if not (workload.ray_role or is_redis):
            continue
        if "SEC002" in inventory.ignored_codes(workload.resource):
            continue
        if not any(_admits_selectively(p, workload) for p in policies):
            open_workloads[workload.resource].add(
                "Redis" if is_redis else f"Ray {workload.ray_role}"
            )
    return open_workloads


@check(
    code="SEC002",
    severity=Severity.WARNING,
    category=Category.SECURITY,
    summary="No NetworkPolicy restricts who reaches Ray or Redis",
    fix="Add a NetworkPolicy that admits only the API and Ray pods to Redis and the Ray ports.",
)
def no_network_policy(inventory: Inventory):
    for namespace in sorted({w.namespace for w in inventory.workloads}):
        open_workloads = _open_ray_and_redis(inventory, namespace)
        if not open_workloads:
            continue
        listed = "; ".join(
            f"{resource} ({', '.join(sorted(roles))})"
            for resource, roles in sorted(open_workloads.items())
        )
        policies = sorted(name_of(p) for p in inventory.network_policies_in(namespace))
        yield Hit(
            f"Namespace/{namespace}/{namespace}",
            f"{len(open_workloads)} Ray or Redis workload(s) in namespace {namespace} accept "
            f"connections from every pod in the cluster: {listed}",
            f"NetworkPolicies in {namespace} selecting none of them: {', '.join(policies)}"
            if policies
            else f"no NetworkPolicy in namespace {namespace}",
        )


def _root_evidence(inventory: Inventory, workload: Workload, container: dict) -> str | None:
    context = workload.security_context(container)
    if context.get("privileged"):
        return "securityContext.privileged: true"
    if context.get("runAsUser") == 0:
        return "securityContext.runAsUser: 0"
    if context.get("runAsNonRoot") or "runAsUser" in context:
        return None
    build = build_for_image(inventory, container.get("image", ""))
    if build is not None and build.user in (None, "root", "0"):
        base = build.base_image
        if build.user is None and base is not None and base.is_ray:
            return None
        return f"{build.dockerfile.path}: no USER (runs as root); pod sets no runAsUser"
    return None


def node_agent(workload: Workload) -> str | None:
    """Why a DaemonSet is a node agent, privileged by design: a known agent's image (device
    plugin, GPU exporter, CSI node driver, CNI), or a pod that shares the node's process or
    network namespace to tune or mount on the node."""
    if workload.kind != "DaemonSet":
        return None
    for container in workload.all_containers:
        image = container.get("image", "")
        if NODE_AGENT_IMAGE.search(parse_image(image).repository.lower()):
            return image
    for host_namespace in ("hostPID", "hostNetwork"):
        if workload.pod_spec.get(host_namespace) is True:
            return f"{host_namespace}: true"
    return None


@check(
    code="SEC004",
    severity=Severity.WARNING,
    category=Category.SECURITY,
    summary="A container runs privileged or as root",
    fix="Run as a non-root user (USER in the Dockerfile, runAsNonRoot: true, runAsUser: 1000) and "
    "drop privileged.",
)
def root_or_privileged(inventory: Inventory):
    for workload in inventory.workloads:
        agent = node_agent(workload)
        for container in workload.all_containers:
            evidence = _root_evidence(inventory, workload, container)
            if not evidence:
                continue
            message = (
                f"container {container.get('name')} of {workload.label} runs as root or privileged"
            )
            if agent:
                yield Hit(
                    workload.resource,
                    f"{message}, as a node agent ({agent}) does by design: it reaches the "
                    "node's devices, files or network",
                    evidence,
                    fix="Nothing to change if this is the vendor's DaemonSet; keep it to the "
                    "nodes that need it (nodeSelector) and its image pinned.",
                    severity=Severity.INFO,
                )
            else:
                yield Hit(workload.resource, message, evidence)


@check(
    code="SEC006",
    severity=Severity.WARNING,
    category=Category.SECURITY,
    summary=(
        "A mutable image tag with imagePullPolicy IfNotPresent: nodes keep running an old image"
    ),
    fix="Deploy immutable tags (a version or the digest image@sha256:...) or set "
    "imagePullPolicy: Always.",
)
def mutable_tag_cached(inventory: Inventory):
    for workload in inventory.workloads:
        for container in workload.all_containers:
            image = container.get("image", "")
            ref = parse_image(image)
            policy = container.get("imagePullPolicy")
            # Never: the image was loaded onto the node by hand (kind load); nothing is pulled.
            if ref.digest or policy != "IfNotPresent" or not IMAGE_REFERENCE.fullmatch(image):
                continue
            if ref.tag is None or ref.tag in MUTABLE_TAGS:
                yield Hit(
                    workload.resource,
                    f"container {container.get('name')}: a node that pulled {image} once never "
                    "pulls it again, so a rebuilt image under the same tag is not deployed",
                    f"image: {image}, imagePullPolicy: {policy}",
                )


@check(
    code="SEC007",
    severity=Severity.WARNING,
    category=Category.SECURITY,
    summary="Pods of one workload run different image digests",
    fix="Deploy by digest or immutable tag and roll the workload so every pod runs one image.",
)
def mixed_digests(inventory: Inventory):
    groups: dict[tuple[str, str, str], dict[str, list[str]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for pod in inventory.of("Pod"):
        owners = (pod.get("metadata") or {}).get("ownerReferences") or []
        if not owners:
            continue
        owner = f"{owners[0].get('kind')}/{namespace_of(pod)}/{owners[0].get('name')}"
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            digest = status.get("imageID", "")
            if digest:
                groups[(owner, status.get("name", "?"), status.get("image", ""))][digest].append(
                    name_of(pod)
                )
    for (owner, container, image), digests in groups.items():
        if len(digests) > 1:
            yield Hit(
                owner,
                f"container {container} ({image}) runs {len(digests)} different images across "
                "the pods of one template: the tag was moved between pulls",
                "; ".join(
                    f"{d.rsplit('@', 1)[-1][:19]}: {', '.join(p[:3])}" for d, p in digests.items()
                ),
            )
