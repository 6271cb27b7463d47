"""Container images and what they were built from: the Dockerfiles and requirements files
beside the manifests. References are parsed by service.image_refs (re-exported here for the
checks: ImageRef, parse_image)."""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import PurePath

import yaml

from doctor.inventory import BuildFile, Inventory
from service.image_refs import ImageRef, parse_image

MUTABLE_TAGS = {"latest", "main", "master", "dev", "develop", "stable", "nightly", "edge"}
_RAY_REQUIREMENT = re.compile(
    r"(?<![\w-])ray(?:\[(?P<extras>[\w,\s-]*)\])?\s*(?:(?P<op>==|~=|>=|<=|>|<)\s*(?P<version>[\w.]+))?",
)


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


def build_map_kind(name: str) -> str | None:
    """ "compose" or "skaffold" for the files that map images to Dockerfiles."""
    lowered = name.lower()
    if lowered in ("skaffold.yaml", "skaffold.yml"):
        return "skaffold"
    if lowered.endswith((".yaml", ".yml")) and lowered.startswith(("docker-compose", "compose.")):
        return "compose"
    return None


@dataclass(frozen=True)
class BuildMapping:
    """A build file's statement that IMAGE is built from DOCKERFILE in CONTEXT."""

    repository: str
    context: str
    dockerfile: str | None  # None: another builder (jib, ko, buildpacks...) makes the image


def _yaml_documents(text: str) -> list[dict]:
    try:
        return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    except yaml.YAMLError:
        return []


def _literal(value: object) -> bool:
    # An interpolated value (${TAG}, {{.IMAGE}}) names no image or path we can be sure of.
    return isinstance(value, str) and bool(value) and "$" not in value and "{{" not in value


def _mapping(
    base: str, image: object, context: object, dockerfile: object | None
) -> BuildMapping | None:
    """None when a value is not literal; dockerfile None: built without a Dockerfile."""
    if not all(_literal(v) for v in (image, context, dockerfile or "Dockerfile")):
        return None
    folder = os.path.normpath(os.path.join(base, context))
    path = os.path.normpath(os.path.join(folder, dockerfile)) if dockerfile else None
    return BuildMapping(parse_image(image).repository, folder, path)


def _compose_mappings(build_file: BuildFile) -> Iterator[BuildMapping]:
    """services.X.build (a context, or {context, dockerfile}) with services.X.image."""
    base = str(PurePath(build_file.path).parent)
    for document in _yaml_documents(build_file.text):
        services = document.get("services")
        for service in services.values() if isinstance(services, dict) else []:
            if not isinstance(service, dict):
                continue
            build = service.get("build")
            if isinstance(build, str):
                build = {"context": build}
            if not isinstance(build, dict):
                continue
            context = build.get("context", ".")
            if mapping := _mapping(
                base, service.get("image"), context, build.get("dockerfile", "Dockerfile")
            ):
                yield mapping


_NON_DOCKER_BUILDERS = ("jib", "bazel", "buildpacks", "ko", "custom")


def _skaffold_mappings(build_file: BuildFile) -> Iterator[BuildMapping]:
    """build.artifacts[] (also under profiles[]) built by the docker builder, the default."""
    base = str(PurePath(build_file.path).parent)
    for document in _yaml_documents(build_file.text):
        builds = [document.get("build")] + [
            p.get("build") for p in document.get("profiles") or [] if isinstance(p, dict)
        ]
        for build in (b for b in builds if isinstance(b, dict)):
            for artifact in build.get("artifacts") or []:
                if not isinstance(artifact, dict):
                    continue
                docker = artifact.get("docker") if isinstance(artifact.get("docker"), dict) else {}
                context = artifact.get("context", ".")
                dockerfile = docker.get("dockerfile", "Dockerfile")
                if any(builder in artifact for builder in _NON_DOCKER_BUILDERS):
                    dockerfile = None
                if mapping := _mapping(base, artifact.get("image"), context, dockerfile):
                    yield mapping


_MAPPING_READERS = {"compose": _compose_mappings, "skaffold": _skaffold_mappings}


@cache
def _mappings_in(build_file: BuildFile) -> tuple[BuildMapping, ...]:
    return tuple(_MAPPING_READERS[build_file.kind](build_file))


def _named_by(dockerfile: BuildFile) -> str:
    """What a Dockerfile's path names: its folder for `backend/Dockerfile`, else `api` for
    `api.Dockerfile` or `Dockerfile.api`."""
    path = PurePath(dockerfile.path)
    lowered = path.name.lower()
    if lowered == "dockerfile":
        return path.parent.name.lower()
    if lowered.startswith("dockerfile."):
        return lowered[len("dockerfile.") :]
    return lowered.removesuffix(".dockerfile")


def _name_rank(short_name: str, named: str) -> int:
    """2: the path names the image (`backend` builds `x/backend`); 1: the image is that name
    behind a project prefix (`backend` builds `x/mochi-backend`); 0: no evidence."""
    short_name = short_name.lower()
    if not named:
        return 0
    if named == short_name:
        return 2
    return 1 if short_name.endswith((f"-{named}", f"_{named}")) else 0


def _requirements_in(inventory: Inventory, folder: str) -> list[BuildFile]:
    return [
        f
        for f in inventory.files
        if f.kind == "requirements" and os.path.normpath(str(PurePath(f.path).parent)) == folder
    ]


def _mappings_of(inventory: Inventory, ref: ImageRef) -> list[BuildMapping]:
    return [
        mapping
        for build_file in inventory.files
        if build_file.kind in _MAPPING_READERS
        for mapping in _mappings_in(build_file)
        if mapping.repository == ref.repository
    ]


def _mapped_build(inventory: Inventory, mappings: list[BuildMapping]) -> Build | None:
    """The one Dockerfile of the input the mappings name; None when it is not in the input, the
    mappings disagree, or the image is built without a Dockerfile."""
    found = {
        (mapping.context, build_file)
        for mapping in mappings
        for build_file in inventory.files
        if build_file.kind == "dockerfile"
        and os.path.normpath(build_file.path) == mapping.dockerfile
    }
    if len(found) != 1:
        return None
    context, dockerfile = found.pop()
    return Build(dockerfile, _requirements_in(inventory, context))


def _named_build(inventory: Inventory, ref: ImageRef) -> Build | None:
    candidates: dict[int, list[BuildFile]] = defaultdict(list)
    for build_file in inventory.files:
        if build_file.kind != "dockerfile":
            continue
        rank = _name_rank(ref.short_name, _named_by(build_file))
        base = Build(build_file, []).base_image
        # A Dockerfile FROM the image itself extends it; it does not build it.
        if rank and not (base is not None and base.repository == ref.repository):
            candidates[rank].append(build_file)
    best = candidates[max(candidates)] if candidates else []
    if len(best) != 1:
        return None
    folder = os.path.normpath(str(PurePath(best[0].path).parent))
    return Build(best[0], _requirements_in(inventory, folder))


def build_for_image(inventory: Inventory, image: str) -> Build | None:
    """The Dockerfile (and the requirements of its build context) the input says built the image.

    Evidence, strongest first: a docker-compose or skaffold file mapping the image to a
    Dockerfile; a Dockerfile whose path names the image (`backend/Dockerfile` or
    `backend.Dockerfile` builds `registry/x/backend`, or `registry/x/mochi-backend`). Images
    the Ray project publishes are never ours by name. No evidence, or two equal candidates:
    None, and the checks say nothing about the build.
    """
    ref = parse_image(image)
    mappings = _mappings_of(inventory, ref)
    if mappings:
        return _mapped_build(inventory, mappings)
    if ref.is_ray:
        return None
    return _named_build(inventory, ref)
