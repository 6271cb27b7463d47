"""`doctor snapshot --out DIR`: what a live read saw, written so `doctor diagnose --snapshot DIR`
gives the same findings offline. Secrets and tokens are redacted before anything is written:
Secret values, passwords in URLs, values of secret-named keys, bearer tokens and API keys keep
only the two characters the report itself shows, so findings (and fingerprints) stay the same."""

from __future__ import annotations

import json
import re
from pathlib import Path

from doctor.inventory import Inventory
from doctor.redaction import mask, redact_text
from doctor.sources.files import InputError

OBJECTS_FILE = "objects.json"
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|CREDENTIAL|PRIVATE_?KEY", re.I)


def redact(value, key: str = ""):
    """A deep copy of a JSON value with secrets masked."""
    if isinstance(value, dict):
        # a container env item: its name says whether the value is a secret
        if isinstance(value.get("value"), str) and SECRET_NAME.search(str(value.get("name", ""))):
            return {**value, "value": mask(value["value"])}
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, str):
        if key and SECRET_NAME.search(key) and value not in ("", "<redacted>", "<set>"):
            return mask(value)
        return redact_text(value)
    return value


def write_snapshot(inventory: Inventory, out: str) -> list[Path]:
    from doctor.sources.snapshot import STATE_FILES

    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"{out}: cannot create: {error}") from None
    written = []
    items = [
        {**obj, "kind": kind}
        for kind, objects in sorted(inventory.objects.items())
        for obj in objects
    ]
    documents = {OBJECTS_FILE: {"apiVersion": "v1", "kind": "List", "items": items}}
    for file, key in STATE_FILES.items():
        if key in inventory.state:
            documents[file] = inventory.state[key]
    for name, document in documents.items():
        path = folder / name
        try:
            path.write_text(json.dumps(redact(document), indent=1, sort_keys=True) + "\n")
        except OSError as error:
            raise InputError(f"{path}: cannot write: {error}") from None
        written.append(path)
    return written
