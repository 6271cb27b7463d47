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
