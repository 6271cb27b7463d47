"""SARIF as GitHub code scanning ingests it and JUnit as CI publishers read it, from the real CLI.

SARIF is checked against the OASIS SARIF 2.1.0 schema (tests/doctor/schemas, see its licence
file) and against the rules of GitHub's "SARIF support for code scanning" page
(https://docs.github.com/en/code-security/code-scanning/integrating-with-code-scanning/sarif-support-for-code-scanning,
github/docs content/code-security/code-scanning/integrating-with-code-scanning/
sarif-support-for-code-scanning.md and data/reusables/code-scanning/sarif-limits.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree

import jsonschema
import pytest

from doctor.cli import RUNBOOKS, main
from doctor.registry import REGISTRY, Check, Hit, all_checks

FIXTURES = Path(__file__).parent / "fixtures"
REPOSITORY = Path(__file__).resolve().parents[2]
BEFORE = FIXTURES / "report_before"
SNAPSHOT = FIXTURES / "snapshot_faulty"
SCHEMA = json.loads((Path(__file__).parent / "schemas" / "sarif-schema-2.1.0.json").read_text())
# The schema's one pattern Python's re cannot compile (run.language) is never used: instances
# are validated, the schema itself is not re-checked against its metaschema.
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def doctor(capsys, *args: str) -> tuple[int, str]:
    code = main(["diagnose", *args])
    return code, capsys.readouterr().out


def sarif(capsys, *args: str) -> dict:
    _, out = doctor(capsys, *args, "--format", "sarif")
    return json.loads(out)


def assert_github_ingests(document: dict) -> None:
    """GitHub's documented ingestion rules (page cited in the module docstring)."""
    assert document["$schema"] and document["version"] == "2.1.0"
    assert 1 <= len(document["runs"]) <= 20  # runs per file
    for run in document["runs"]:
        driver = run["tool"]["driver"]
        assert driver["name"] and driver["rules"] and len(driver["rules"]) <= 25_000
        assert "informationUri" not in driver or is_absolute(driver["informationUri"])
        for rule in driver["rules"]:
            assert rule["id"] and len(rule.get("name", "")) <= 255
            for field in ("shortDescription", "fullDescription"):
                assert 0 < len(rule[field]["text"]) <= 1024, (rule["id"], field)
            assert rule["help"]["text"] and rule["help"]["markdown"]
            assert rule["defaultConfiguration"]["level"] in ("note", "warning", "error")
            assert len(rule["properties"]["tags"]) <= 20  # tags per rule
            assert "helpUri" not in rule or is_absolute(rule["helpUri"])
        rule_ids = [rule["id"] for rule in driver["rules"]]
        assert len(run["results"]) <= 25_000  # more and the upload is rejected
        for result in run["results"]:
            assert rule_ids[result["ruleIndex"]] == result["ruleId"]
            assert result["message"]["text"]
            assert 1 <= len(result["locations"]) <= 10
            hash_ = result["partialFingerprints"]["primaryLocationLineHash"]
            assert re.fullmatch(r"[0-9a-f]{16}:1", hash_)


def assert_located_in_files(document: dict) -> None:
    """Every result has a physicalLocation: a normalised path relative to the repository
    root (no scheme, no leading `/`, no `..`, forward slashes) of a file that exists, and a
    startLine >= 1 inside it."""
    for result in document["runs"][0]["results"]:
        physical = result["locations"][0]["physicalLocation"]
        uri = physical["artifactLocation"]["uri"]
        parts = PurePosixPath(uri).parts
        assert "\\" not in uri and ":" not in uri and not uri.startswith("/"), uri
        assert ".." not in parts and "." not in parts and "" not in parts, uri
        lines = (REPOSITORY / uri).read_text().splitlines()
        assert 1 <= physical["region"]["startLine"] <= len(lines)


def object_text(result: dict) -> str:
    """The lines of the result's file from its startLine to the next object."""
    physical = result["locations"][0]["physicalLocation"]
    lines = (REPOSITORY / physical["artifactLocation"]["uri"]).read_text().splitlines()
    start = physical["region"]["startLine"] - 1
    end = next(
        (i for i in range(start + 1, len(lines)) if re.match(r"^(---|\s*- apiVersion)", lines[i])),
        len(lines),
    )
    return "\n".join(lines[start:end])


def is_absolute(uri: str) -> bool:
    return re.match(r"^https?://[^/]+", uri) is not None


def test_manifest_sarif_meets_the_schema_and_github_rules(capsys):
    document = sarif(capsys, "--manifests", str(BEFORE))
    assert list(VALIDATOR.iter_errors(document)) == []
    assert_github_ingests(document)
    assert_located_in_files(document)
    run = document["runs"][0]
    assert run["tool"]["driver"]["version"] == "0.1.0"
    assert "informationUri" not in run["tool"]["driver"]
    assert all("helpUri" not in rule for rule in run["tool"]["driver"]["rules"])
    results = run["results"]
    quota = next(r for r in results if r["ruleId"] == "QUOTA002")
    physical = quota["locations"][0]["physicalLocation"]
    # The ResourceQuota is the second document of storage.yaml: its own line, not line 1.
    assert physical["artifactLocation"]["uri"] == (
        "tests/doctor/fixtures/report_before/base/storage.yaml"
    )
    assert physical["region"]["startLine"] > 1
    for result in results:
        logical = result["locations"][0]["logicalLocations"][0]
        kind, namespace, name = logical["fullyQualifiedName"].split("/")
        assert (logical["properties"]["kind"], logical["name"]) == (kind, name)
        if kind != "Namespace":  # SEC002: no Namespace object, the namespace's first file
            assert f"kind: {kind}" in object_text(result) and name in object_text(result)


def test_snapshot_sarif_has_the_object_and_the_snapshot_file(capsys):
    document = sarif(capsys, "--snapshot", str(SNAPSHOT))
    assert list(VALIDATOR.iter_errors(document)) == []
    assert_github_ingests(document)
    assert_located_in_files(document)
    results = document["runs"][0]["results"]
    pvc = next(r for r in results if r["ruleId"] == "AVAIL004")
    [logical] = pvc["locations"][0]["logicalLocations"]
    assert logical == {
        "name": "video-storage",
        "fullyQualifiedName": "PersistentVolumeClaim/mochi-video-gen/video-storage",
        "kind": "resource",
        "properties": {"kind": "PersistentVolumeClaim", "namespace": "mochi-video-gen"},
    }
    # Each List item has its own line in the kubectl dump.
    text = object_text(pvc)
    assert "kind: PersistentVolumeClaim" in text and "name: video-storage" in text
    lines = {r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in results}
    assert len(lines) > 5


def test_uris_are_normalised_and_fingerprints_ignore_the_working_directory(
    capsys, monkeypatch, tmp_path
):
    monkeypatch.chdir(REPOSITORY)
    from_root = sarif(capsys, "--manifests", "tests/doctor/fixtures/report_before")
    baseline = tmp_path / "baseline.yaml"
    doctor(capsys, "--manifests", str(BEFORE), "--write-baseline", str(baseline))
    monkeypatch.chdir(BEFORE / "deployments")
    from_inside = sarif(capsys, "--manifests", "../base/../base", "..")
    assert_located_in_files(from_inside)

    def located(document: dict) -> set[tuple]:
        return {
            (
                r["partialFingerprints"]["doctor/v1"],
                r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
                r["locations"][0]["physicalLocation"]["region"]["startLine"],
            )
            for r in document["runs"][0]["results"]
        }

    assert located(from_inside) == located(from_root)
    # The baseline written from the repository root still matches every finding here.
    code, out = doctor(capsys, "--manifests", "..", "--baseline", str(baseline), "-o", "json")
    report = json.loads(out)
    assert code == 0 and report["findings"] == []
    assert len(report["suppressed"]) == len(from_root["runs"][0]["results"])


def test_runbooks_are_the_rule_help_and_help_uri_is_absolute(capsys, monkeypatch):
    base = "https://docs.example.test/mochi/runbooks"
    document = sarif(capsys, "--manifests", str(BEFORE), "--runbook-url", base + "/")
    assert_github_ingests(document)
    driver = document["runs"][0]["tool"]["driver"]
    rule = next(r for r in driver["rules"] if r["id"] == "NET001")
    assert rule["helpUri"] == f"{base}/NET001.md" and driver["informationUri"] == f"{base}/"
    assert rule["help"]["markdown"] == (RUNBOOKS / "NET001.md").read_text()
    assert rule["fullDescription"]["text"].startswith("An address in an env value")
    monkeypatch.setenv("DOCTOR_RUNBOOK_URL", base)
    from_env = sarif(capsys, "--manifests", str(BEFORE))
    assert from_env["runs"][0]["tool"]["driver"]["rules"][0]["helpUri"].startswith(base)


@pytest.mark.parametrize("url", ["runbooks/", "file:///srv/runbooks", "docs.example.test"])
def test_a_relative_runbook_url_is_a_usage_error(capsys, url):
    assert main(["diagnose", "--manifests", str(BEFORE), "--runbook-url", url]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "--runbook-url: must be an absolute http(s) URL" in line


def junit(capsys, *args: str) -> tuple[int, ElementTree.Element]:
    code, out = doctor(capsys, *args, "--format", "junit")
    return code, ElementTree.fromstring(out)


def cases(suite: ElementTree.Element) -> dict[str, ElementTree.Element]:
    return {case.get("name").split()[0]: case for case in suite}


def outcome(case: ElementTree.Element) -> str:
    return next((child.tag for child in case if child.tag != "system-out"), "passed")


def assert_counts(suite: ElementTree.Element) -> None:
    tally = [outcome(case) for case in suite]
    assert int(suite.get("tests")) == len(tally)
    assert int(suite.get("failures")) == tally.count("failure")
    assert int(suite.get("errors")) == tally.count("error")
    assert int(suite.get("skipped")) == tally.count("skipped")


def test_junit_skips_live_checks_on_manifests_and_follows_fail_on(capsys):
    code, suite = junit(capsys, "--manifests", str(BEFORE))
    assert code == 1
    assert_counts(suite)
    by_code = cases(suite)
    live = {c.code for c in all_checks() if c.needs_live}
    assert live and {code for code in live if outcome(by_code[code]) == "skipped"} == live
    assert "reads live state" in by_code["RAY005"].find("skipped").get("message")
    # AVAIL006 is a warning: under the default --fail-on error it is not a failure, but it
    # is reported in the test case's output.
    assert outcome(by_code["AVAIL006"]) == "passed"
    assert "Deployment/mochi-video-gen/backend" in by_code["AVAIL006"].find("system-out").text
    assert outcome(by_code["RAY001"]) == "failure"

    _, stricter = junit(capsys, "--manifests", str(BEFORE), "--fail-on", "warning")
    assert_counts(stricter)
    assert outcome(cases(stricter)["AVAIL006"]) == "failure"
    assert int(stricter.get("failures")) > int(suite.get("failures"))
    _, never = junit(capsys, "--manifests", str(BEFORE), "--fail-on", "never")
    assert never.get("failures") == "0" and never.find("*/failure") is None


def test_junit_on_a_snapshot_runs_what_it_can(capsys):
    _, suite = junit(capsys, "--snapshot", str(SNAPSHOT))
    assert_counts(suite)
    by_code = cases(suite)
    assert outcome(by_code["AVAIL004"]) == "failure"
    assert outcome(by_code["JOB001"]) == "skipped"  # a kubectl dump holds no job store


def test_a_check_that_crashes_is_a_junit_error(capsys, monkeypatch):
    def broken(inventory) -> list[Hit]:
        return inventory.of("Deployment")[0]["no such field"]

    monkeypatch.setitem(
        REGISTRY, "ZZZ001", Check("ZZZ001", "error", "jobs", "A broken check", "-", broken)
    )
    code, suite = junit(capsys, "--manifests", str(BEFORE))
    assert_counts(suite)
    by_code = cases(suite)
    error = by_code["ZZZ001"].find("error")
    assert error is not None and error.get("type") == "CONF002"
    assert "check ZZZ001 could not run" in error.get("message")
    assert outcome(by_code["CONF002"]) == "passed" and suite.get("errors") == "1"


def test_ray015_is_live_only_though_its_module_holds_static_checks(capsys):
    """RAY015 reads only the workers' registry; RAY014 and RAY016 in the same module read
    manifests. What a check needs is the check's own declaration, not its module's."""
    _, suite = junit(capsys, "--manifests", str(BEFORE))
    by_code = cases(suite)
    assert outcome(by_code["RAY015"]) == "skipped"
    assert "reads live state" in by_code["RAY015"].find("skipped").get("message")
    assert outcome(by_code["RAY014"]) != "skipped" and outcome(by_code["RAY016"]) != "skipped"
    assert main(["checks", "-o", "json"]) == 0
    live_only = {c["code"]: c["live_only"] for c in json.loads(capsys.readouterr().out)["checks"]}
    assert live_only["RAY015"] is True
    assert live_only["RAY014"] is False and live_only["RAY016"] is False
