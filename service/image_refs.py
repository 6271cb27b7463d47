"""Container image references (`registry:5000/team/name:tag@sha256:...`), parsed one way for the
whole project: infra's pin and registry rules, the doctor's checks and the policy pack read them
here. Pure Python: infra imports it without the doctor, the doctor without infra."""

from __future__ import annotations

import re
from dataclasses import dataclass

RAY_IMAGE_REPOS = ("rayproject/ray", "rayproject/ray-ml", "anyscale/ray")
_PY_TAG = re.compile(r"py(?P<major>3)(?P<minor>\d{1,2})\b")


@dataclass(frozen=True)
class ImageRef:
    repository: str  # with its registry host, when the reference names one
    tag: str | None
    digest: str | None  # `sha256:...`

    @property
    def short_name(self) -> str:
        return self.repository.rsplit("/", 1)[-1]

    @property
    def registry(self) -> str:
        """The registry host; empty for Docker Hub or a node-local image. As Docker reads it,
        the first component is a host when it has a `.` or a port, or is `localhost`."""
        first, slash, _ = self.repository.partition("/")
        if slash and ("." in first or ":" in first or first == "localhost"):
            return first
        return ""

    @property
    def is_ray(self) -> bool:
        return any(self.repository.endswith(repo) for repo in RAY_IMAGE_REPOS)

    def ray_version(self) -> str | None:
        if self.is_ray and self.tag:
            match = re.match(r"(\d+\.\d+\.\d+)", self.tag)
            return match.group(1) if match else None
        return None

    def python_minor(self) -> str | None:
        if not self.tag:
            return None
        if self.repository.endswith("python"):
            match = re.match(r"(3\.\d+)", self.tag)
            return match.group(1) if match else None
        match = _PY_TAG.search(self.tag)
        return f"{match.group('major')}.{match.group('minor')}" if match else None


# Docker's reference grammar (distribution/reference): a registry host may hold capitals, the
# repository's path components may not; a tag is at most 128 word characters, dots and dashes.
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_REGISTRY_HOST = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]+)?")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}")


def reference_problem(reference: str) -> str | None:
    """Why a container runtime would refuse this reference ("invalid reference format"), or None."""
    ref = parse_image(reference)
    path = ref.repository.split("/")
    if ref.registry:
        if not _REGISTRY_HOST.fullmatch(path[0]):
            return f"registry host {path[0]!r} is not a host name with an optional port"
        path = path[1:]
    bad = [part for part in path if not _PATH_COMPONENT.fullmatch(part)]
    if bad:
        return f"repository path {'/'.join(path)!r} must be lower case a-z, 0-9 and . _ -"
    if ref.tag is not None and not _TAG.fullmatch(ref.tag):
        return f"tag {ref.tag!r} must be 1-128 letters, digits, '_', '.' or '-'"
    if ref.digest is not None and not _DIGEST.fullmatch(ref.digest):
        return f"digest {ref.digest!r} must be algorithm:hex, such as sha256:<64 hex digits>"
    return None


def parse_image(reference: str) -> ImageRef:
    """The parts of a reference; the tag is after the last `:` of the last path component, so a
    registry port (`registry:5000/name`) is never taken for one."""
    reference = reference.strip()
    digest = None
    if "@" in reference:
        reference, digest = reference.split("@", 1)
    repository, tag = reference, None
    last = reference.rsplit("/", 1)[-1]
    if ":" in last:
        repository, tag = reference.rsplit(":", 1)
    return ImageRef(repository, tag, digest)
