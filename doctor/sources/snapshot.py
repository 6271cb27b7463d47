"""A cluster snapshot: `kubectl get ... -o yaml|json` output (Lists, including Events and
Endpoints), a folder of such files, or a `doctor snapshot` folder, whose `ray.json`,
`redis.json`, `jobs.json`, `service.json`, `probes.json` (connection attempts and write probes),
`logs.json` and `kubernetes-read.json` hold live state recorded beside the objects."""

from __future__ import annotations

import json
from pathlib import Path

from doctor.inventory import Inventory
from doctor.sources.files import (
    SkippedFile,
    add_documents,
    bulk_load,
    is_document,
    load_documents,
    read_text,
    walk,
)

STATE_FILES = {
    "ray.json": "ray",
    "redis.json": "redis",
    "jobs.json": "jobs",
    "service.json": "service",
    "probes.json": "probes",
    "logs.json": "logs",
    "kubernetes-read.json": "kubernetes",
}


def load_snapshot(path: str, inventory: Inventory | None = None) -> Inventory:
    """Read a snapshot file or folder (`-` is standard input); a file that cannot be checked
    is noted in inventory.skipped and the others are still read."""
    inventory = inventory or Inventory(source="snapshot")
    inventory.source = "snapshot"
    with bulk_load():
        _read(path, inventory)
    return inventory


def _read(path: str, inventory: Inventory) -> None:
    for file in walk([path]):
        try:
            if file.name in STATE_FILES:
                inventory.state[STATE_FILES[file.name]] = _state(file)
            elif is_document(file):
                add_documents(inventory, file, load_documents(file, machine_written=True))
        except SkippedFile as skipped:
            inventory.skipped.append(skipped)


def _state(file: Path):
    try:
        return json.loads(read_text(file))
    except json.JSONDecodeError as error:
        raise SkippedFile(str(file), f"is not valid JSON: {error}") from None
