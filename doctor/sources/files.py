"""Reading YAML and JSON documents from files and folders, with errors a person can act on."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

try:
    import yaml_rs
except ImportError:  # optional: only speeds up reading large kubectl YAML dumps
    yaml_rs = None
_FAST_ERRORS = (yaml_rs.YAMLDecodeError,) if yaml_rs is not None else ()

YAML_SUFFIXES = {".yaml", ".yml"}
JSON_SUFFIXES = {".json"}

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@contextmanager
def bulk_load():
    """Loading builds only new, acyclic containers: cyclic GC passes over the growing heap
    would make reading a large dump superlinear, so they wait until it is read."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class InputError(Exception):
    """The input cannot be read: the doctor exits 2 with this message."""


def walk(paths: list[str]) -> Iterator[Path]:
    """Every file under the given paths, in a stable order."""
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InputError(f"{raw}: no such file or directory")
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
            )
        else:
            yield path


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read: {error}") from None


def load_documents(path: Path, machine_written: bool = False) -> list[dict]:
    """The objects of a YAML (multi-document) or JSON file; non-mappings are skipped.

    Human-written manifests are read with PyYAML (YAML 1.1, as Kubernetes reads them). A dump
    that kubectl wrote (machine_written) quotes every ambiguous scalar, so the much faster
    YAML 1.2 parser yaml-rs reads it the same way when it is installed.
    """
    text = read_text(path)
    try:
        if path.suffix in JSON_SUFFIXES:
            documents = [json.loads(text)] if text.strip() else []
        elif machine_written and yaml_rs is not None:
            loaded = yaml_rs.loads(text) if text.strip() else []
            documents = loaded if isinstance(loaded, list) else [loaded]
        else:
            documents = list(yaml.load_all(text, Loader=_Loader))
    except (yaml.YAMLError, json.JSONDecodeError, *_FAST_ERRORS) as error:
        detail = " ".join(str(error).split())
        raise InputError(f"{path}: not valid {path.suffix.lstrip('.').upper()}: {detail}") from None
    return [doc for doc in documents if isinstance(doc, dict)]
