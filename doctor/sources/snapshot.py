"""A cluster snapshot: `kubectl get ... -o yaml|json` output (Lists, including Events and
Endpoints), a folder of such files, or a `doctor snapshot` folder, whose `ray.json`,
`redis.json`, `jobs.json`, `service.json`, `probes.json` (connection attempts and write probes),
`logs.json` and `kubernetes-read.json` hold live state recorded beside the objects."""

from __future__ import annotations

import json
from pathlib import Path

from doctor.inventory import Inventory
from doctor.sources.files import SkippedFile, read_files, read_text
from doctor.state import StateShapeError

# File name -> the source whose state it records (doctor.state.LiveState).
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
    read_files([path], inventory, _read_state, machine_written=True)
    return inventory


def _read_state(file: Path, inventory: Inventory) -> bool:
    source = STATE_FILES.get(file.name)
    if source is None:
        return False
    try:
        inventory.live.read_json(source, json.loads(read_text(file)))
    except json.JSONDecodeError as error:
        raise SkippedFile(str(file), f"is not valid JSON: {error}") from None
    except StateShapeError as error:
        reason = f"is not the {source} state a snapshot records: {error}"
        raise SkippedFile(str(file), reason) from None
    return True
