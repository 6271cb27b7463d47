"""Figures of the doctor on a corpus of public manifests: sources, units, files, findings by
severity, and how many error findings the units' EXPECT.toml judge true or false.

    .venv/bin/python bench/corpus_figures.py [CORPUS_DIR ...]   (default: tests/doctor/corpus)

A corpus is laid out SOURCE/UNIT/files; a unit without EXPECT.toml counts its errors unjudged.
"""

from __future__ import annotations

import sys
import tomllib
from collections import Counter
from pathlib import Path

from doctor.diagnose import diagnose
from doctor.inventory import Inventory
from doctor.sources import InputError, load_manifests

ROOT = Path(__file__).resolve().parent.parent
SUFFIXES = (".yaml", ".yml", ".json")


def expectation(unit: Path) -> dict:
    path = unit / "EXPECT.toml"
    return tomllib.loads(path.read_text()) if path.exists() else {}


def unit_figures(unit: Path, figures: Counter) -> None:
    expected = expectation(unit)
    figures["units"] += 1
    figures["files"] += sum(1 for p in unit.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
    try:
        result = diagnose(load_manifests([str(unit)], Inventory(source="manifests")))
    except InputError:
        figures["units not read"] += 1
        return
    for finding in result.findings:
        figures[finding.severity] += 1
        if finding.severity != "error":
            continue
        if finding.code in expected.get("must", ()):
            figures["errors judged true"] += 1
        elif finding.code in {entry.split(":")[0] for entry in expected.get("must_not", ())}:
            figures["errors judged false"] += 1
            figures[f"false {finding.code}"] += 1
        else:
            figures["errors unjudged"] += 1


def corpus_figures(corpus: Path) -> Counter:
    figures = Counter()
    for source in sorted(p for p in corpus.iterdir() if p.is_dir()):
        figures["sources"] += 1
        for unit in sorted(p for p in source.iterdir() if p.is_dir()):
            unit_figures(unit, figures)
    return figures


def main(argv: list[str]) -> int:
    for corpus in [Path(p) for p in argv] or [ROOT / "tests" / "doctor" / "corpus"]:
        figures = corpus_figures(corpus)
        print(f"{corpus}:")
        for key in ("sources", "units", "files", "units not read", "error", "warning", "info"):
            print(f"  {key:<22}{figures[key]}")
        for key in ("errors judged true", "errors judged false", "errors unjudged"):
            print(f"  {key:<22}{figures[key]}")
        for key in sorted(k for k in figures if k.startswith("false ")):
            print(f"    {key:<20}{figures[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
