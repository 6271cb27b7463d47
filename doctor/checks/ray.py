"""Ray: `ray start` flags Ray does not accept, Ray Client without `ray[client]`, version skew
between a Ray Client user and the cluster, a wildcard node IP."""

from __future__ import annotations

from doctor.addresses import addresses_in, service_reference
from doctor.finding import Category, Severity
from doctor.images import build_for_image, parse_image
from doctor.inventory import Inventory, Workload, command_text
from doctor.raystart import ray_start_flags, required_ray_start_options, uses_ray_start_params
from doctor.registry import Hit, check

CLIENT_EXTRAS = {"client", "all"}


@check(
    code="RAY001",
    severity=Severity.ERROR,
    category=Category.CONNECTIVITY,
    summary="`ray start` is given a flag the installed Ray does not accept",
    fix=(
        "Remove the flag or use its supported spelling (ray start --help); the process exits at "
        "once."
    ),
)
def invalid_ray_start_flag(inventory: Inventory):
    for workload in inventory.workloads:
        if workload.ray_role is None:
            continue
        options = required_ray_start_options()  # imports Ray: only once a Ray pod is in the input
        source = "rayStartParams" if uses_ray_start_params(workload) else "ray start"
        for flag, value in ray_start_flags(workload).items():
            if flag in options.flags:
                continue
            literal = flag if value is None else f"{flag}={value}"
            yield Hit(
                workload.resource,
                f"{workload.label}: {source} flag {flag} is not an option of `ray start` in "
                f"Ray {options.version}; ray exits with 'No such option'",
                literal,
            )


def ray_client_addresses(workload: Workload) -> list[tuple[str, str]]:
    """(container name, literal) of every ray:// address a workload uses."""
    found = []
    for container in workload.containers:
        texts = [command_text(container)]
        texts += [v.value for v in workload.env(container).values() if v.value]
        for text in texts:
            if "ray://" in text:
                found.extend(
                    (container.get("name", "?"), literal)
                    for _, _, literal in addresses_in(text)
                    if literal.startswith("ray://")
                )
    return found


def _ray_client_users(inventory: Inventory):
    """(workload, container name, ray:// literal, image) of the first Ray Client address of
    every workload that is not itself a Ray node."""
    for workload in inventory.workloads:
        if workload.ray_role is not None:
            continue
        for container_name, literal in ray_client_addresses(workload)[:1]:
            container = next(c for c in workload.containers if c.get("name", "?") == container_name)
            yield workload, container_name, literal, container.get("image", "")


@check(
    code="RAY002",
    severity=Severity.ERROR,
    category=Category.CONNECTIVITY,
    summary="A Ray Client (ray://) user's image lacks `ray[client]`",
    fix="Install ray[client]==<cluster Ray version> in that image (or submit work with the Ray "
    "Jobs API instead of Ray Client).",
)
def ray_client_without_extra(inventory: Inventory):
    for workload, container_name, literal, image in _ray_client_users(inventory):
        if parse_image(image).is_ray:
            continue
        build = build_for_image(inventory, image)
        if build is None:
            continue
        requirement = build.ray_requirement()
        base = build.base_image
        if base is not None and base.is_ray:
            continue
        if requirement is not None and requirement.extras & CLIENT_EXTRAS:
            continue
        installed = (
            f"{requirement.literal} in {requirement.path}"
            if requirement
            else f"no ray in {build.dockerfile.path}"
        )
        yield Hit(
            workload.resource,
            f"container {container_name} connects with Ray Client ({literal}) but image "
            f"{image} installs {installed}; it fails with "
            "'Ray Client requires pip package `ray[client]`'",
            installed,
        )


def _cluster_images(inventory: Inventory, workload: Workload, host: str) -> list[Workload]:
    ref = service_reference(host, workload.namespace, inventory.namespaces)
    service = inventory.services.get(ref) if ref else None
    heads = [w for w in inventory.selected_workloads(service) if w.ray_role] if service else []
    if heads:
        return heads
    # An address no Service explains (an IP): only the namespace's one head can be its cluster.
    namespace_heads = [
        w for w in inventory.workloads_in(workload.namespace) if w.ray_role == "head"
    ]
    return namespace_heads if len(namespace_heads) == 1 else []


def _cluster_versions(head: Workload) -> tuple[str | None, str | None, str]:
    """The image says what runs; KubeRay's rayVersion only when the image tag does not."""
    container = head.ray_container or {}
    image = parse_image(container.get("image", ""))
    ray_version = head.cluster.spec.get("rayVersion") if head.cluster is not None else None
    return image.ray_version() or ray_version, image.python_minor(), container.get("image", "")


def _ignores_version_mismatch(workload: Workload, container_name: str) -> bool:
    """RAY_IGNORE_VERSION_MISMATCH in the client's environment turns Ray Client's check off."""
    container = next(c for c in workload.containers if c.get("name", "?") == container_name)
    return "RAY_IGNORE_VERSION_MISMATCH" in workload.env(container)


@check(
    code="RAY003",
    severity=Severity.ERROR,
    category=Category.CONNECTIVITY,
    summary="Ray or Python version differs between a Ray Client user and the cluster",
    fix="Pin the client image to the cluster's exact Ray version and Python minor version.",
)
def ray_version_skew(inventory: Inventory):
    for workload, container_name, literal, image in _ray_client_users(inventory):
        if _ignores_version_mismatch(workload, container_name):
            continue
        build = build_for_image(inventory, image)
        own = parse_image(image)
        client_ray = own.ray_version()
        client_python = own.python_minor()
        if build is not None:
            requirement = build.ray_requirement()
            base = build.base_image
            client_ray = (requirement.version if requirement else None) or (
                base.ray_version() if base else None
            )
            client_python = base.python_minor() if base else None
        host = literal.split("://", 1)[1].split(":", 1)[0]
        for head in _cluster_images(inventory, workload, host)[:1]:
            cluster_ray, cluster_python, cluster_image = _cluster_versions(head)
            problems = []
            if client_ray and cluster_ray and client_ray != cluster_ray:
                problems.append(f"Ray {client_ray} vs cluster Ray {cluster_ray}")
            if client_python and cluster_python and client_python != cluster_python:
                problems.append(f"Python {client_python} vs cluster Python {cluster_python}")
            if problems:
                yield Hit(
                    workload.resource,
                    f"Ray Client in container {container_name} ({literal}) runs "
                    f"{'; '.join(problems)} ({head.label}); Ray Client refuses to connect "
                    "across versions",
                    f"client {image} vs cluster {cluster_image}",
                )


@check(
    code="RAY004",
    severity=Severity.WARNING,
    category=Category.CONNECTIVITY,
    summary="A Ray node advertises a wildcard or loopback node IP",
    fix="Drop --node-ip-address, or set it to the pod IP (env from fieldRef status.podIP).",
)
def wildcard_node_ip(inventory: Inventory):
    for workload in inventory.workloads:
        if workload.ray_role is None:
            continue
        value = ray_start_flags(workload).get("--node-ip-address")
        if value in ("0.0.0.0", "127.0.0.1", "localhost", "::"):
            yield Hit(
                workload.resource,
                f"{workload.label} registers with the GCS as {value}: other nodes cannot reach "
                "its object manager or raylet at that address",
                f"--node-ip-address={value}",
            )
