"""Manifests on disk: YAML/JSON objects (multi-document, `kind: List`), plus the Dockerfiles,
requirements files and the compose/skaffold files that say which Dockerfile builds an image."""

from __future__ import annotations

from pathlib import Path

from doctor.images import build_map_kind
from doctor.inventory import BuildFile, Inventory
from doctor.locations import build_file_name
from doctor.sources.files import read_files, read_text


def build_file_kind(name: str) -> str | None:
    lowered = name.lower()
    if (
        lowered == "dockerfile"
        or lowered.startswith("dockerfile.")
        or lowered.endswith(".dockerfile")
    ):
        return "dockerfile"
    if lowered.startswith("requirements") and lowered.endswith((".txt", ".in")):
        return "requirements"
    return build_map_kind(name)


def load_manifests(paths: list[str], inventory: Inventory | None = None) -> Inventory:
    """Read every manifest under paths (`-` is standard input); a file that cannot be checked
    is noted in inventory.skipped and the others are still read."""
    inventory = inventory or Inventory(source="manifests")
    read_files(paths, inventory, _read_build_file)
    return inventory


def _read_build_file(path: Path, inventory: Inventory) -> bool:
    kind = build_file_kind(path.name)
    if kind:
        inventory.files.append(BuildFile(build_file_name(str(path)), kind, read_text(path)))
    return bool(kind)
