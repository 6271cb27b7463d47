"""Security: no NetworkPolicy around Ray and Redis, privileged or root containers, mutable tags
that a node caches, one workload running several image digests."""

from __future__ import annotations

from collections import defaultdict

from doctor.checks.redis_server import is_redis_server
from doctor.images import MUTABLE_TAGS, build_for_image, parse_image
from doctor.inventory import Inventory, Workload, labels_match, name_of, namespace_of
from doctor.registry import Hit, check


@check(
    "SEC002",
    "warning",
    "security",
    "No NetworkPolicy restricts who reaches Ray or Redis",
    "Add a NetworkPolicy that admits only the API and Ray pods to Redis and the Ray ports.",
)
def no_network_policy(inventory: Inventory):
    for workload in inventory.workloads:
        is_redis = any(is_redis_server(c) for c in workload.containers)
        if not (workload.ray_role or is_redis):
            continue
        covered = any(
            labels_match((p.get("spec") or {}).get("podSelector") or {}, workload.pod_labels)
            and ("Ingress" in ((p.get("spec") or {}).get("policyTypes") or ["Ingress"]))
            for p in inventory.in_namespace("NetworkPolicy", workload.namespace)
        )
        if not covered:
            what = "Redis" if is_redis else f"Ray {workload.ray_role}"
            yield Hit(
                workload.resource,
                f"{workload.label} ({what}) accepts connections from every pod in the cluster",
                f"no NetworkPolicy in {workload.namespace} selects labels {workload.pod_labels}",
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


@check(
    "SEC004",
    "warning",
    "security",
    "A container runs privileged or as root",
    "Run as a non-root user (USER in the Dockerfile, runAsNonRoot: true, runAsUser: 1000) and "
    "drop privileged.",
)
def root_or_privileged(inventory: Inventory):
    for workload in inventory.workloads:
        for container in workload.all_containers:
            evidence = _root_evidence(inventory, workload, container)
            if evidence:
                yield Hit(
                    workload.resource,
                    f"container {container.get('name')} of {workload.label} runs as root or "
                    "privileged",
                    evidence,
                )


@check(
    "SEC006",
    "warning",
    "security",
    "A mutable image tag with imagePullPolicy IfNotPresent: nodes keep running an old image",
    "Deploy immutable tags (a version or the digest image@sha256:...) or set "
    "imagePullPolicy: Always.",
)
def mutable_tag_cached(inventory: Inventory):
    for workload in inventory.workloads:
        for container in workload.all_containers:
            image = container.get("image", "")
            ref = parse_image(image)
            policy = container.get("imagePullPolicy")
            if ref.digest or policy not in ("IfNotPresent", "Never"):
                continue
            if ref.tag is None or ref.tag in MUTABLE_TAGS:
                yield Hit(
                    workload.resource,
                    f"container {container.get('name')}: a node that pulled {image} once never "
                    "pulls it again, so a rebuilt image under the same tag is not deployed",
                    f"image: {image}, imagePullPolicy: {policy}",
                )


@check(
    "SEC007",
    "warning",
    "security",
    "Pods of one workload run different image digests",
    "Deploy by digest or immutable tag and roll the workload so every pod runs one image.",
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
