"""Container images and what they were built from: image references, the Dockerfiles and
requirements files beside the manifests, the Ray and Python versions an image carries."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

from doctor.inventory import BuildFile, Inventory

RAY_IMAGE_REPOS = ("rayproject/ray", "rayproject/ray-ml", "anyscale/ray")
MUTABLE_TAGS = {"latest", "main", "master", "dev", "develop", "stable", "nightly", "edge"}
_RAY_REQUIREMENT = re.compile(
    r"(?<![\w-])ray(?:\[(?P<extras>[\w,\s-]*)\])?\s*(?:(?P<op>==|~=|>=|<=|>|<)\s*(?P<version>[\w.]+))?",
)
_PY_TAG = re.compile(r"py(?P<major>3)(?P<minor>\d{1,2})\b")


@dataclass(frozen=True)
class ImageRef:
    repository: str
    tag: str | None
    digest: str | None

    @property
    def short_name(self) -> str:
        return self.repository.rsplit("/", 1)[-1]

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
    reference = reference.strip()
    digest = None
    if "@" in reference:
        reference, digest = reference.split("@", 1)
    repository, tag = reference, None
    last = reference.rsplit("/", 1)[-1]
    if ":" in last:
        repository, tag = reference.rsplit(":", 1)
    return ImageRef(repository, tag, digest)


@dataclass(frozen=True)
class RayRequirement:
    extras: frozenset[str]
    version: str | None
    literal: str
    path: str


@dataclass(frozen=True)
class Build:
    """What the input says an image was built from."""

    dockerfile: BuildFile | None
    requirements: list[BuildFile]

    @property
    def base_image(self) -> ImageRef | None:
        if self.dockerfile is None:
            return None
        bases = re.findall(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)", self.dockerfile.text, re.M | re.I)
        return parse_image(bases[-1]) if bases else None

    @property
    def user(self) -> str | None:
        """The last USER of the Dockerfile; None when it never sets one (root)."""
        if self.dockerfile is None:
            return None
        users = re.findall(r"^\s*USER\s+(\S+)", self.dockerfile.text, re.M | re.I)
        return users[-1] if users else None

    def ray_requirement(self) -> RayRequirement | None:
        sources = list(self.requirements)
        if self.dockerfile is not None:
            pip_lines = "\n".join(
                line for line in self.dockerfile.text.splitlines() if "pip" in line
            )
            sources.append(BuildFile(self.dockerfile.path, "dockerfile", pip_lines))
        for build_file in sources:
            for line in build_file.text.splitlines():
                code = line.split("#", 1)[0]
                for match in _RAY_REQUIREMENT.finditer(code):
                    bare = match.group("extras") is None and match.group("op") is None
                    if bare and not re.search(r"(^|\s)['\"]?ray['\"]?(\s|$)", code):
                        continue
                    extras = frozenset(
                        e.strip() for e in (match.group("extras") or "").split(",") if e.strip()
                    )
                    version = match.group("version") if match.group("op") == "==" else None
                    return RayRequirement(extras, version, match.group(0).strip(), build_file.path)
        return None


def build_for_image(inventory: Inventory, image: str) -> Build | None:
    """The Dockerfile (and requirements beside it) whose folder names the image.

    `backend/Dockerfile` builds `registry/mochi-backend:tag`: the folder name is one of the
    dash-separated words of the image's name, or the whole name.
    """
    ref = parse_image(image)
    words = set(re.split(r"[-_.]", ref.short_name)) | {ref.short_name}
    for build_file in inventory.files:
        if build_file.kind != "dockerfile":
            continue
        folder = PurePath(build_file.path).parent
        if folder.name in words or ref.repository in build_file.text:
            requirements = [
                f
                for f in inventory.files
                if f.kind == "requirements" and PurePath(f.path).parent == folder
            ]
            return Build(build_file, requirements)
    return None
