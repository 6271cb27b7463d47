"""Manifests on disk: YAML/JSON objects (multi-document, `kind: List`), plus the Dockerfiles
and requirements files found among them."""

from __future__ import annotations

from doctor.inventory import BuildFile, Inventory
from doctor.sources.files import (
    JSON_SUFFIXES,
    YAML_SUFFIXES,
    bulk_load,
    load_documents,
    read_text,
    walk,
)


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
    return None


def load_manifests(paths: list[str], inventory: Inventory | None = None) -> Inventory:
    inventory = inventory or Inventory(source="manifests")
    with bulk_load():
        _read(paths, inventory)
    return inventory


def _read(paths: list[str], inventory: Inventory) -> None:
    for path in walk(paths):
        if path.suffix in YAML_SUFFIXES | JSON_SUFFIXES:
            for document in load_documents(path):
                inventory.add(document, origin=str(path))
        elif kind := build_file_kind(path.name):
            inventory.files.append(BuildFile(str(path), kind, read_text(path)))
