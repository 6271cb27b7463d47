"""The doctor on real public third-party manifests (tests/doctor/corpus).

Each unit folder holds the original files byte-for-byte and an EXPECT.toml judged by reading them:
`must` are real faults the doctor has to report, `must_not` codes that would be false on that
input (at error or warning severity: a class the issue demotes to info may still show as info;
`CODE:error` when only the error would be false, e.g. a host from another chart is rightly a
warning "not in the input" and wrongly an error). Every error the doctor reports has to be
judged, i.e. listed in `must`.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from doctor import cli
from doctor.diagnose import diagnose
from doctor.inventory import Inventory
from doctor.sources import load_manifests

CORPUS = Path(__file__).parent / "corpus"
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
CODE = re.compile(r"^[A-Z]+\d{3}(:error)?$")
CHECK_FAILED = "CONF002"
LOUD = ("error", "warning")


def units() -> list[Path]:
    return sorted(expect.parent for expect in CORPUS.glob("*/*/EXPECT.toml"))


def expectation(unit: Path) -> dict:
    return tomllib.loads((unit / "EXPECT.toml").read_text())


def manifest_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and p.suffix in MANIFEST_SUFFIXES]


def unit_id(unit: Path) -> str:
    return f"{unit.parent.name}/{unit.name}"


MANIFEST_UNITS = [u for u in units() if expectation(u).get("input", "manifests") == "manifests"]
CLI_UNITS = [u for u in units() if u not in MANIFEST_UNITS]


@pytest.mark.parametrize("unit", MANIFEST_UNITS, ids=unit_id)
def test_unit_findings_match_expectation(unit: Path):
    expected = expectation(unit)
    result = diagnose(load_manifests([str(unit)], Inventory(source="manifests")))
    by_code: dict[str, list] = {}
    for finding in result.findings:
        by_code.setdefault(finding.code, []).append(finding)

    broken = [f for f in result.findings if f.code == CHECK_FAILED or "could not run" in f.message]
    assert not broken, [f"{f.code} {f.resource}: {f.message}" for f in broken]

    missing = [code for code in expected["must"] if code not in by_code]
    assert not missing, f"real faults not reported: {missing} ({expected.get('note', '')})"

    false = [
        f"{f.code} {f.severity} {f.resource}: {f.message}"
        for entry in expected["must_not"]
        for f in by_code.get(entry.split(":")[0], [])
        if f.severity in (entry.split(":")[1:] or LOUD)
    ]
    assert not false, f"findings judged false on this input: {false}"

    unjudged = [
        f"{f.code} {f.resource}: {f.message}"
        for f in result.findings
        if f.severity == "error" and f.code not in expected["must"]
    ]
    assert not unjudged, f"errors nobody judged true (add to must or fix the doctor): {unjudged}"


@pytest.mark.parametrize("unit", CLI_UNITS, ids=unit_id)
def test_template_and_kustomize_units_say_what_to_run(unit: Path, capsys):
    kind = expectation(unit)["input"]
    argv = ["diagnose", "--manifests", str(unit), "--format", "text", "--fail-on", "never"]
    code = cli.main(argv)
    said = capsys.readouterr()
    output = said.out + said.err
    assert "internal error" not in output
    if kind == "template":
        for path in manifest_files(unit):
            assert f"{path.name} is a template" in output, output
        assert "render it first" in output
        assert "helm template" in output
        assert code == 2, "every file is a template: nothing could be read"
    else:
        assert kind == "kustomize"
        assert "kustomize build" in output, output


@pytest.mark.parametrize("unit", units(), ids=unit_id)
def test_expectation_file_is_well_formed(unit: Path):
    expected = expectation(unit)
    assert set(expected) <= {"input", "must", "must_not", "note"}
    assert expected.get("input", "manifests") in ("manifests", "template", "kustomize")
    for code in [*expected["must"], *expected["must_not"]]:
        assert CODE.match(code), code
    assert not set(expected["must"]) & {entry.split(":")[0] for entry in expected["must_not"]}
    assert manifest_files(unit), "a unit holds at least one manifest"


def test_corpus_size_and_provenance():
    sources = sorted(p for p in CORPUS.iterdir() if p.is_dir())
    files = [f for source in sources for f in manifest_files(source)]
    assert len(files) >= 150
    assert len(sources) >= 4
    for source in sources:
        text = (source / "SOURCE.md").read_text()
        assert re.search(r"Repository: https://github\.com/\S+", text), source.name
        assert re.search(r"Commit: [0-9a-f]{40}\b", text), source.name
        assert re.search(r"Licence: (Apache-2\.0|MIT|BSD-[23]-Clause)\b", text), source.name
        for path in manifest_files(source):
            kept = path.relative_to(source).as_posix()
            assert f"`{kept}` <- `" in text, f"{source.name}: {kept} has no original path"
