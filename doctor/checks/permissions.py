"""Permissions: output volumes a non-root process cannot write, output paths the writer and the
reader do not share, read-only output mounts, and `Permission denied` at run time."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from doctor.finding import Category, Severity
from doctor.images import build_for_image, parse_image
from doctor.inventory import Inventory, Workload, command_text, name_of, namespace_of
from doctor.registry import Hit, check

OUTPUT_ENV = re.compile(
    r"(^|_)(OUTPUT|OUTPUTS|VIDEO|VIDEOS|RESULT|RESULTS|ARTIFACT|ARTIFACTS|MEDIA|UPLOAD|UPLOADS)"
    r"_(DIR|PATH|ROOT|FOLDER)$"
)
RAY_IMAGE_UID = 1000  # rayproject/ray images run as user `ray`
SHARED_SOURCES = ("persistentVolumeClaim", "nfs", "cephfs", "glusterfs", "azureFile", "csi")
WRITABLE_BY_ANYONE = ("/tmp", "/var/tmp", "/dev/shm")


@dataclass(frozen=True)
class OutputUse:
    workload: Workload
    container: dict
    env_name: str
    path: str
    mount: dict | None
    volume: dict | None

    @property
    def storage(self) -> str:
        """Where the files land: a claim, a network share, or this pod only."""
        if self.volume is None:
            return "container filesystem"
        for source in SHARED_SOURCES:
            if source in self.volume:
                spec = self.volume[source] or {}
                if source == "persistentVolumeClaim":
                    return f"PersistentVolumeClaim {spec.get('claimName')}"
                if source == "nfs":
                    return f"nfs {spec.get('server')}:{spec.get('path')}"
                return f"{source} {sorted(spec.items())}"
        kind = next((k for k in self.volume if k != "name"), "?")
        return f"{kind} volume {self.volume.get('name')}"

    @property
    def shared(self) -> bool:
        return self.volume is not None and any(s in self.volume for s in SHARED_SOURCES)

    def describe_mount(self) -> str:
        if self.mount is None:
            return f"{self.env_name}={self.path} with no volume mounted there"
        ro = ", readOnly" if self.mount.get("readOnly") else ""
        return (
            f"{self.env_name}={self.path} on mount {self.mount.get('mountPath')}{ro} "
            f"({self.storage})"
        )


def output_uses(inventory: Inventory) -> list[OutputUse]:
    uses = []
    for workload in inventory.workloads:
        for container in workload.containers:
            for env_name, value in workload.env(container).items():
                if not OUTPUT_ENV.search(env_name) or not (value.value or "").startswith("/"):
                    continue
                path = value.value.rstrip("/") or "/"
                mounts = [
                    m
                    for m in container.get("volumeMounts") or []
                    if path == m.get("mountPath", "").rstrip("/")
                    or path.startswith(m.get("mountPath", "").rstrip("/") + "/")
                ]
                mount = max(mounts, key=lambda m: len(m.get("mountPath", "")), default=None)
                volume = workload.volume(mount.get("name")) if mount else None
                uses.append(OutputUse(workload, container, env_name, path, mount, volume))
    return uses


def writers(uses: list[OutputUse]) -> list[OutputUse]:
    """Ray pods write the videos; when no Ray pod names an output path, every user may write."""
    ray_uses = [u for u in uses if u.workload.ray_role]
    return ray_uses or uses


def effective_user(
    inventory: Inventory, workload: Workload, container: dict
) -> tuple[int, str] | None:
    """(uid, how we know) when the input shows the user; None when it does not."""
    context = workload.security_context(container)
    if "runAsUser" in context:
        return int(context["runAsUser"]), f"runAsUser: {context['runAsUser']}"
    image = container.get("image", "")
    build = build_for_image(inventory, image)
    if build is not None:
        user = build.user
        if user is None or user in ("root", "0"):
            base = build.base_image
            if user is None and base is not None and base.is_ray:
                return RAY_IMAGE_UID, f"{base.repository} base image runs as user ray"
            return 0, f"{build.dockerfile.path} sets no non-root USER"
        return (int(user) if user.isdigit() else 1000), f"USER {user} in {build.dockerfile.path}"
    if parse_image(image).is_ray:
        return RAY_IMAGE_UID, f"image {image} runs as user ray (uid {RAY_IMAGE_UID})"
    return None


def ownership_guaranteed(workload: Workload, mount_path: str) -> bool:
    context = workload.pod_spec.get("securityContext") or {}
    if "fsGroup" in context:
        return True
    return any(
        ("chown" in command_text(c) or "chmod" in command_text(c)) and mount_path in command_text(c)
        for c in workload.init_containers
    )


@check(
    code="PERM001",
    severity=Severity.ERROR,
    category=Category.PERMISSIONS,
    summary="A non-root process writes to a volume nobody made writable for it",
    fix=(
        "Set the pod's securityContext.fsGroup to the container's group (e.g. 1000) so the "
        "volume is group-writable, or mount a volume at the output path."
    ),
)
def unwritable_output_volume(inventory: Inventory):
    for use in writers(output_uses(inventory)):
        if use.mount is not None and use.mount.get("readOnly"):
            continue  # PERM003
        user = effective_user(inventory, use.workload, use.container)
        if user is None or user[0] == 0:
            continue
        if use.path.startswith(WRITABLE_BY_ANYONE):
            continue
        if use.mount is None:
            yield Hit(
                use.workload.resource,
                f"{use.workload.label} writes {use.path} as uid {user[0]} into the image's "
                "filesystem, where that directory is owned by root: Permission denied",
                f"{use.describe_mount()}; {user[1]}",
            )
            continue
        if use.volume is None or "emptyDir" in use.volume:
            continue
        if ownership_guaranteed(use.workload, use.mount.get("mountPath", "")):
            continue
        yield Hit(
            use.workload.resource,
            f"{use.workload.label} writes {use.path} as uid {user[0]}, but the volume is "
            "root-owned and the pod sets no fsGroup: Permission denied",
            f"{use.describe_mount()}; {user[1]}; no securityContext.fsGroup",
        )


@check(
    code="PERM002",
    severity=Severity.ERROR,
    category=Category.PERMISSIONS,
    summary="The output path is not one shared volume for every writer and reader",
    fix="Mount one ReadWriteMany volume (a PVC on NFS, CephFS, EFS, Filestore...) at the same path "
    "in the Ray workers and the API.",
)
def output_not_shared(inventory: Inventory):
    by_namespace: dict[str, list[OutputUse]] = defaultdict(list)
    for use in output_uses(inventory):
        by_namespace[use.workload.namespace].append(use)
    for namespace, uses in by_namespace.items():
        pods = sum(max(u.workload.replicas, 1) for u in {id(u.workload): u for u in uses}.values())
        workloads = {u.workload.label for u in uses}
        if len(workloads) < 2 and pods < 2:
            continue
        for use in uses:
            if not use.shared:
                yield Hit(
                    use.workload.resource,
                    f"{use.workload.label} keeps {use.path} on its {use.storage}: files one pod "
                    f"writes are invisible to the others ({', '.join(sorted(workloads))})",
                    use.describe_mount(),
                )
        storages = {u.storage for u in uses if u.shared}
        if len(storages) > 1:
            yield Hit(
                f"Namespace/{namespace}/{namespace}",
                "the output path lives on different volumes in different workloads: "
                + "; ".join(sorted(f"{u.workload.label}: {u.storage}" for u in uses if u.shared)),
                "; ".join(sorted({u.describe_mount() for u in uses if u.shared})),
            )


@check(
    code="PERM003",
    severity=Severity.ERROR,
    category=Category.PERMISSIONS,
    summary="The output path is on a read-only mount in a writer",
    fix="Remove readOnly: true from the mount the writer uses for its output path.",
)
def read_only_output(inventory: Inventory):
    for use in writers(output_uses(inventory)):
        if use.mount is not None and use.mount.get("readOnly"):
            yield Hit(
                use.workload.resource,
                f"{use.workload.label} writes {use.path}, but its mount is readOnly: "
                "Read-only file system",
                use.describe_mount(),
            )


def container_messages(pod: dict):
    status = pod.get("status") or {}
    for container in (status.get("initContainerStatuses") or []) + (
        status.get("containerStatuses") or []
    ):
        for state_key in ("state", "lastState"):
            state = container.get(state_key) or {}
            for detail in state.values():
                if isinstance(detail, dict) and detail.get("message"):
                    yield container.get("name", "?"), detail
    return


@check(
    code="PERM004",
    severity=Severity.ERROR,
    category=Category.PERMISSIONS,
    summary="A container failed with Permission denied",
    fix="Give the container's user write access to the path (fsGroup, volume ownership) or write "
    "somewhere it owns.",
)
def permission_denied(inventory: Inventory):
    for pod in inventory.of("Pod"):
        for container_name, detail in container_messages(pod):
            message = str(detail["message"])
            if "Permission denied" in message or "permission denied" in message:
                line = next(x for x in message.splitlines() if "ermission denied" in x)
                yield Hit(
                    f"Pod/{namespace_of(pod)}/{name_of(pod)}",
                    f"container {container_name} ended with Permission denied",
                    line.strip()[:300],
                )
    for event in inventory.events:
        message = str(event.get("message") or event.get("note") or "")
        if "ermission denied" in message:
            involved = event.get("involvedObject") or event.get("regarding") or {}
            yield Hit(
                f"{involved.get('kind', 'Pod')}/{involved.get('namespace') or namespace_of(event)}"
                f"/{involved.get('name', '?')}",
                f"event {event.get('reason', '')}: Permission denied",
                message.strip()[:300],
            )
