"""Security: Ray ports reachable from outside, no NetworkPolicy around Ray and Redis, Redis
without a password, privileged or root containers, secrets in plain env, mutable tags that a
node caches, one workload running several image digests."""

from __future__ import annotations

import re
from collections import defaultdict

from doctor.images import MUTABLE_TAGS, build_for_image, parse_image
from doctor.inventory import Inventory, Workload, command_text, labels_match, name_of, namespace_of
from doctor.raystart import listening_ports
from doctor.registry import Hit, check

EXPOSED_TYPES = ("LoadBalancer", "NodePort")
SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL)"
)
URL_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]*://[^:/@\s]*:(?P<password>[^@/\s]+)@")


def _ray_ports_of(service: dict, inventory: Inventory) -> list[str]:
    exposed = []
    ray_pods = [w for w in inventory.selected_workloads(service) if w.ray_role == "head"]
    if not ray_pods:
        return []
    ports = {p: what for w in ray_pods for what, p in listening_ports(w).items()}
    for port in (service.get("spec") or {}).get("ports") or []:
        target = port.get("targetPort", port.get("port"))
        number = int(target) if str(target).isdigit() else port.get("port")
        if number in ports and ports[number] != "metrics":
            exposed.append(f"{ports[number]} port {port.get('port')}")
    return exposed


@check(
    "SEC001",
    "error",
    "security",
    "The Ray dashboard, client or GCS port is reachable from outside the cluster",
    "Make the Service ClusterIP (serviceType: ClusterIP for KubeRay) and reach the dashboard "
    "with kubectl port-forward; Ray has no authentication on these ports.",
)
def ray_exposed(inventory: Inventory):
    for service in inventory.of("Service"):
        kind = (service.get("spec") or {}).get("type", "ClusterIP")
        if kind not in EXPOSED_TYPES:
            continue
        exposed = _ray_ports_of(service, inventory)
        if exposed:
            yield Hit(
                f"Service/{namespace_of(service)}/{name_of(service)}",
                f"Service type {kind} publishes the Ray head's {', '.join(exposed)}: anyone who "
                "reaches a node or the load balancer can run code on the cluster",
                f"type: {kind}",
            )
    for cluster in inventory.of("RayCluster"):
        head = (cluster.get("spec") or {}).get("headGroupSpec") or {}
        kind = head.get("serviceType", "ClusterIP")
        if kind in EXPOSED_TYPES:
            yield Hit(
                f"RayCluster/{namespace_of(cluster)}/{name_of(cluster)}",
                f"headGroupSpec.serviceType {kind} publishes the GCS, client and dashboard ports",
                f"serviceType: {kind}",
            )
    for ingress in inventory.of("Ingress"):
        namespace = namespace_of(ingress)
        for rule in (ingress.get("spec") or {}).get("rules") or []:
            for path in (rule.get("http") or {}).get("paths") or []:
                backend = (path.get("backend") or {}).get("service") or {}
                service = inventory.services.get((namespace, backend.get("name")))
                if service and _ray_ports_of(service, inventory):
                    yield Hit(
                        f"Ingress/{namespace}/{name_of(ingress)}",
                        f"Ingress routes {rule.get('host', '*')}{path.get('path', '/')} to the Ray "
                        f"head Service {backend.get('name')}",
                        f"backend.service: {backend.get('name')}:{backend.get('port')}",
                    )


def is_redis_server(container: dict) -> bool:
    image = parse_image(container.get("image", ""))
    return image.short_name.startswith("redis") and "exporter" not in image.short_name


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


def _redis_password_set(
    inventory: Inventory, workload: Workload, container: dict, command: str
) -> bool:
    """requirepass on the command line, in the image's env convention, or in a mounted config."""
    env = workload.env(container)
    if "requirepass" in command or "REDIS_PASSWORD" in env:
        return True
    redis_args = env.get("REDIS_ARGS")
    if redis_args is not None and "requirepass" in (redis_args.value or ""):
        return True
    for mount in container.get("volumeMounts") or []:
        config_map = (workload.volume(mount.get("name")) or {}).get("configMap")
        if not config_map:
            continue
        data = (inventory.get("ConfigMap", workload.namespace, config_map.get("name")) or {}).get(
            "data"
        ) or {}
        if any("requirepass" in str(value) for value in data.values()):
            return True
    return False


@check(
    "SEC003",
    "error",
    "security",
    "Redis runs without a password",
    "Start Redis with --requirepass from a Secret (env REDIS_PASSWORD) and give clients the "
    "password from the same Secret.",
)
def redis_without_password(inventory: Inventory):
    for workload in inventory.workloads:
        for container in workload.containers:
            if not is_redis_server(container):
                continue
            command = command_text(container)
            if not _redis_password_set(inventory, workload, container, command):
                yield Hit(
                    workload.resource,
                    f"container {container.get('name')} ({container.get('image')}) accepts "
                    "every client without a password",
                    f"command: {command or '(image default)'}; no requirepass, no REDIS_PASSWORD",
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


def _mask(value: str) -> str:
    return f"{value[:2]}*** ({len(value)} chars)" if len(value) > 4 else "***"


@check(
    "SEC005",
    "error",
    "security",
    "A secret is written as a plain value in a pod spec or ConfigMap",
    "Move it to a Secret and reference it with valueFrom.secretKeyRef (or envFrom.secretRef).",
)
def plain_secrets(inventory: Inventory):
    for workload in inventory.workloads:
        for container in workload.all_containers:
            for item in container.get("env") or []:
                name, value = item.get("name", ""), item.get("value")
                if not value:
                    continue
                match = URL_PASSWORD.search(str(value))
                if SECRET_NAME.search(name.upper()) or match:
                    shown = _mask(match.group("password") if match else str(value))
                    yield Hit(
                        workload.resource,
                        f"env {name} of container {container.get('name')} holds a secret in the "
                        "pod spec, readable by anyone who can read the workload",
                        f"{name}={shown}",
                    )
    for cm in inventory.of("ConfigMap"):
        for key, value in (cm.get("data") or {}).items():
            match = URL_PASSWORD.search(str(value))
            if (SECRET_NAME.search(key.upper()) and str(value)) or match:
                yield Hit(
                    f"ConfigMap/{namespace_of(cm)}/{name_of(cm)}",
                    f"ConfigMap key {key} holds a secret; ConfigMaps are not access-controlled "
                    "like Secrets",
                    f"{key}: {_mask(match.group('password') if match else str(value))}",
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
