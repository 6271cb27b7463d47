"""`doctor snapshot --out DIR`: what a live read saw, written so `doctor diagnose --snapshot DIR`
gives the same findings offline. Secrets and tokens are redacted before anything is written:
Secret values, passwords in URLs, values of secret-named keys, bearer tokens and API keys keep
only the two characters the report itself shows, so findings (and fingerprints) stay the same."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from doctor.inventory import Inventory
from doctor.redaction import (
    REDACTED,
    SECRET_ENV_NAME,
    KnownSecrets,
    mask,
    redact_argv,
    redact_text,
    shown,
)
from doctor.sources.files import InputError

OBJECTS_FILE = "objects.json"
# A key whose last word says its value is a secret (db.password, token), not one that names a
# secret or a key elsewhere (secretName, key, secretKeyRef).
SECRET_KEY = re.compile(
    r"(?:^|[_.-])(PASSWORD|PASSWD|PASS|SECRET|TOKEN|API_?KEY|SECRET_?KEY|PRIVATE_?KEY|"
    r"CREDENTIALS?|AUTH|REQUIREPASS|MASTERAUTH)$"
)


class Redactor:
    """Masks a live read's documents: by where a value sits (env names, secret-named keys,
    argv after a secret flag), by what it holds (URLs, `password=`, redis.conf directives) and
    by equality with a value of a Secret in the same read."""

    def __init__(self, known: KnownSecrets):
        self.known = known

    def redact(self, value, key: str = ""):
        """A deep copy of a JSON value with secrets masked."""
        if isinstance(value, dict):
            return self._mapping(value)
        if isinstance(value, list):
            if key in ("command", "args") and all(isinstance(v, str) for v in value):
                return [self._known(v) for v in redact_argv(value, shown)]
            return [self.redact(v, key) for v in value]
        if isinstance(value, str):
            if key and _secret_key(key) and not shown(value) and value != REDACTED:
                return mask(value)
            return self._known(redact_text(value, shown))
        return value

    def _mapping(self, value: dict) -> dict:
        if value.get("kind") == "Secret":
            value = _without_values(value)
        if value.get("kind") == "ConfigMap":
            value = {**value, "data": _env_values_masked(value.get("data") or {})}
        name = str(value.get("name", ""))
        if isinstance(value.get("value"), str) and SECRET_ENV_NAME.search(name):
            # a container env item: its name says the value is a secret (REDISCLI_AUTH)
            item = value["value"]
            return {**value, "value": item if shown(item) else mask(item)}
        return {k: self.redact(v, str(k)) for k, v in value.items()}

    def _known(self, text: str) -> str:
        return self.known.mask_in(text)


@lru_cache(maxsize=4096)  # a read repeats a few hundred keys thousands of times
def _secret_key(key: str) -> bool:
    return bool(SECRET_KEY.search(re.sub(r"[^A-Z0-9]", "_", key.upper())))


def _env_values_masked(data: dict) -> dict:
    """A ConfigMap's one-line values under env-like secret names (envFrom makes them env)."""
    return {
        key: mask(v)
        if isinstance(v, str)
        and "\n" not in v.strip()
        and SECRET_ENV_NAME.search(str(key))
        and not shown(v)
        and "://" not in v
        else v
        for key, v in data.items()
    }


def _without_values(secret: dict) -> dict:
    """A Secret as the live read keeps it: key names, no values."""
    kept = {k: v for k, v in secret.items() if k != "stringData"}
    kept["data"] = {key: REDACTED for key in secret.get("data") or {}}
    return kept


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
    recorded = inventory.live.to_json()
    documents |= {file: recorded[key] for file, key in STATE_FILES.items() if key in recorded}
    redactor = Redactor(inventory.known_secrets)
    for name, document in documents.items():
        path = folder / name
        try:
            path.write_text(json.dumps(redactor.redact(document), indent=1, sort_keys=True) + "\n")
        except OSError as error:
            raise InputError(f"{path}: cannot write: {error}") from None
        written.append(path)
    return written
