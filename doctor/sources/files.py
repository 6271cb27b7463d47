"""Reading YAML and JSON documents from files and folders, with errors a person can act on."""

from __future__ import annotations

import gc
import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from doctor.inventory import Inventory, Origin

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


class SkippedFile(InputError):
    """One input file the doctor cannot check: a note in the report, and the run goes on."""

    def __init__(self, path: str, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"{path} {reason}")

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


STDIN = "-"
STDIN_NAME = "<stdin>"
KUSTOMIZATIONS = {"kustomization.yaml", "kustomization.yml", "Kustomization"}
TEMPLATE_MARK = re.compile(r"\{\{.*?\}\}", re.S)


def walk(paths: list[str]) -> Iterator[Path]:
    """Every file under the given paths, in a stable order; `-` (standard input) as is."""
    for raw in paths:
        path = Path(raw)
        if raw == STDIN:
            yield path
        elif not path.exists():
            raise InputError(f"{raw}: no such file or directory")
        elif path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p, path))
        else:
            yield path


def _hidden(path: Path, root: Path) -> bool:
    """Under a dot-folder (.git, .github) or a dotfile: not something a user deploys."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def is_document(path: Path) -> bool:
    """A file the sources read objects from (a kustomization, to say it needs building)."""
    return (
        path.suffix in YAML_SUFFIXES | JSON_SUFFIXES
        or is_stdin(path)
        or path.name in KUSTOMIZATIONS
    )


def is_kubernetes_object(document: dict) -> bool:
    return isinstance(document.get("apiVersion"), str) and isinstance(document.get("kind"), str)


@dataclass(frozen=True)
class Document:
    """One mapping read from a file, with the 1-based line it starts on and, for a List, the
    line each item starts on (empty when the parser cannot tell)."""

    value: dict
    line: int = 1
    item_lines: tuple[int, ...] = ()


def read_files(
    paths: list[str],
    inventory: Inventory,
    read_other: Callable[[Path, Inventory], bool],
    machine_written: bool = False,
) -> None:
    """Every file under paths into the inventory: `read_other` takes the files that are not
    documents of objects (it says whether it took one), the documents are added. A file that
    cannot be checked is noted in inventory.skipped and the others are still read."""
    with bulk_load():
        for path in walk(paths):
            try:
                if not read_other(path, inventory) and is_document(path):
                    add_documents(inventory, path, load_documents(path, machine_written))
            except SkippedFile as skipped:
                inventory.skipped.append(skipped)


def add_documents(inventory: Inventory, path: Path, documents: list[Document]) -> None:
    """Add a file's Kubernetes objects to the inventory; a file with none is a note."""
    objects = [doc for doc in documents if is_kubernetes_object(doc.value)]
    if not objects:
        raise SkippedFile(display_name(path), "holds no Kubernetes object (apiVersion and kind)")
    for doc in objects:
        inventory.add(doc.value, Origin(display_name(path), doc.line), doc.item_lines)


def is_stdin(path: Path) -> bool:
    return str(path) == STDIN


def display_name(path: Path) -> str:
    return STDIN_NAME if is_stdin(path) else str(path)


def read_text(path: Path) -> str:
    try:
        return sys.stdin.read() if is_stdin(path) else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SkippedFile(display_name(path), f"is unreadable (cannot read: {error})") from None


def needs_rendering(path: Path) -> str | None:
    """Why a file must be rendered before the doctor can read it, or None."""
    pipe = "| doctor diagnose --manifests -"
    if path.name in KUSTOMIZATIONS:
        return f"is a kustomization: build it first (`kustomize build {path.parent} {pipe}`)"
    if path.name == "Chart.yaml":
        return f"is a Helm chart: render it first (`helm template {path.parent} {pipe}`)"
    return None


def load_documents(path: Path, machine_written: bool = False) -> list[Document]:
    """The mappings of a YAML (multi-document) or JSON file, or `-`; raises SkippedFile.

    Human-written manifests are read with PyYAML (YAML 1.1, as Kubernetes reads them). A dump
    that kubectl wrote (machine_written) quotes every ambiguous scalar, so the much faster
    YAML 1.2 parser yaml-rs reads it the same way when it is installed.
    """
    name = display_name(path)
    if reason := needs_rendering(path):
        raise SkippedFile(name, reason)
    text = read_text(path)
    as_json = path.suffix in JSON_SUFFIXES or (is_stdin(path) and text.lstrip()[:1] in "{[")
    try:
        if as_json:
            documents = [Document(json.loads(text), _first_line(text))] if text.strip() else []
        elif machine_written and yaml_rs is not None:
            documents = _fast_yaml_documents(text)
        else:
            documents = _yaml_documents(text)
    except (yaml.YAMLError, json.JSONDecodeError, *_FAST_ERRORS) as error:
        raise SkippedFile(name, _unparsed_reason(text, error, as_json)) from None
    return [doc for doc in documents if isinstance(doc.value, dict)]


def _first_line(text: str) -> int:
    return text[: len(text) - len(text.lstrip())].count("\n") + 1


def _yaml_documents(text: str) -> list[Document]:
    """PyYAML's load_all, keeping the line where each document and List item starts."""
    loader = _Loader(text)
    documents = []
    try:
        while loader.check_node():
            node = loader.get_node()
            value = loader.construct_document(node)
            documents.append(Document(value, node.start_mark.line + 1, _item_lines(node)))
    finally:
        loader.dispose()
    return documents


def _item_lines(node: yaml.Node) -> tuple[int, ...]:
    if not isinstance(node, yaml.MappingNode):
        return ()
    for key, value in node.value:
        if key.value == "items" and isinstance(value, yaml.SequenceNode):
            return tuple(item.start_mark.line + 1 for item in value.value)
    return ()


def _fast_yaml_documents(text: str) -> list[Document]:
    """yaml-rs gives no positions: the lines come from a scan of the document boundaries and
    the `items:` entries of kubectl's layout, used only where the counts agree."""
    loaded = yaml_rs.loads(text) if text.strip() else []
    values = loaded if isinstance(loaded, list) else [loaded]
    starts = _scanned_documents(text)
    if len(starts) != len(values):
        return [Document(value) for value in values]
    documents = []
    for value, (line, item_lines) in zip(values, starts, strict=True):
        items = value.get("items") if isinstance(value, dict) else None
        agree = isinstance(items, list) and len(items) == len(item_lines)
        documents.append(Document(value, line, tuple(item_lines) if agree else ()))
    return documents


def _scanned_documents(text: str) -> list[tuple[int, list[int]]]:
    """(first content line, item lines) of each document: the lines under a top-level
    `items:` key that start a sequence entry at the entries' indentation."""
    documents: list[tuple[int, list[int]]] = []
    in_items, indent = False, None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if line.startswith("---"):
            documents.append((0, []))
            in_items, indent = False, None
            continue
        if not stripped or stripped.startswith("#") or line.startswith("%"):
            continue
        if not documents or documents[-1][0] == 0:
            documents[-1:] = [(number, [])]
        if not line[0].isspace() and not line.startswith("-"):
            in_items, indent = line.startswith("items:"), None
            continue
        if in_items and stripped.startswith("-"):
            offset = len(line) - len(line.lstrip())
            indent = offset if indent is None else indent
            if offset == indent:
                documents[-1][1].append(number)
    return [document for document in documents if document[0]]


def _unparsed_reason(text: str, error: Exception, as_json: bool) -> str:
    # A rendered manifest may hold `{{ }}` in its strings (alert rules, Argo parameters) and
    # parses; a Helm or Go template's actions break the YAML, so only then is it one.
    if TEMPLATE_MARK.search(text):
        return "is a template: render it first (`helm template … | doctor diagnose --manifests -`)"
    detail = " ".join(str(error).split())
    return f"is not valid {'JSON' if as_json else 'YAML'}: {detail}"
