"""A cluster snapshot: `kubectl get ... -o yaml|json` output (Lists, including Events and
Endpoints), a folder of such files, or a `doctor snapshot` folder, whose `ray.json`,
`redis.json`, `jobs.json`, `service.json`, `probes.json` (connection attempts and write probes),
`logs.json` and `kubernetes-read.json` hold live state recorded beside the objects."""

from __future__ import annotations

import json
from pathlib import Path

from doctor.inventory import Inventory
from doctor.sources.files import (
    JSON_SUFFIXES,
    YAML_SUFFIXES,
    InputError,
    bulk_load,
    load_documents,
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
    inventory = inventory or Inventory(source="snapshot")
    inventory.source = "snapshot"
    read_any = False
    with bulk_load():
        read_any = _read(path, inventory)
    if not read_any:
        raise InputError(f"{Path(path)}: no YAML or JSON files in the snapshot")
    return inventory


def _read(path: str, inventory: Inventory) -> bool:
    read_any = False
    for file in walk([path]):
        if file.name in STATE_FILES:
            try:
                inventory.state[STATE_FILES[file.name]] = json.loads(file.read_text())
            except (OSError, json.JSONDecodeError) as error:
                raise InputError(f"{file}: not valid JSON: {error}") from None
            read_any = True
        elif file.suffix in YAML_SUFFIXES | JSON_SUFFIXES:
            for document in load_documents(file, machine_written=True):
                inventory.add(document, origin=str(file))
            read_any = True
    return read_any
