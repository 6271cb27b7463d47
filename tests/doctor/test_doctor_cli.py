"""The command line: formats, output file, --fail-on and exit codes, input errors,
suppression by annotation and baseline, explain, checks."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pytest

from doctor.cli import main

FIXTURES = Path(__file__).parent / "fixtures"

BEFORE = str(FIXTURES / "report_before")
AFTER = str(FIXTURES / "report_after")
KUBERAY = str(FIXTURES / "kuberay")


def test_json_shape_and_exit_code(capsys):
    assert main(["diagnose", "--manifests", BEFORE, "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert set(data) >= {"findings", "summary"}
    first = data["findings"][0]
    assert set(first) >= {
        "code",
        "severity",
        "category",
        "resource",
        "message",
        "evidence",
        "fix",
        "runbook",
    }
    assert data["summary"]["errors"] == sum(f["severity"] == "error" for f in data["findings"])


@pytest.mark.parametrize(
    "fail_on, expected", [("error", 1), ("warning", 1), ("info", 1), ("never", 0)]
)
def test_fail_on_thresholds(fail_on, expected, capsys):
    assert main(["diagnose", "--manifests", KUBERAY, "--fail-on", fail_on]) == expected
    assert main(["diagnose", "--manifests", AFTER, "--fail-on", fail_on]) == 0


def test_warnings_only_config(tmp_path, capsys):
    baseline = tmp_path / "baseline.yaml"
    assert main(["diagnose", "--manifests", BEFORE, "--write-baseline", str(baseline)]) == 0
    text = baseline.read_text()
    # Keep only the warnings accepted: errors must fail again, warnings pass at --fail-on error.
    import yaml

    document = yaml.safe_load(text)
    document["accepted"] = [
        e
        for e in document["accepted"]
        if e["code"]
        in (
            "NET001",
            "NET002",
            "NET003",
            "RAY001",
            "RAY002",
            "RAY003",
            "PERM001",
            "PERM002",
            "MEM001",
            "SEC003",
        )
    ]
    baseline.write_text(yaml.safe_dump(document))
    capsys.readouterr()
    args = ["diagnose", "--manifests", BEFORE, "--baseline", str(baseline), "--format", "json"]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["errors"] == 0 and data["summary"]["warnings"] > 0
    assert data["summary"]["suppressed"] == len(document["accepted"])
    assert main(args[:-2] + ["--fail-on", "warning"]) == 1


def test_annotation_suppression_is_counted(capsys):
    main(["diagnose", "--manifests", KUBERAY, "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert [(s["code"], s["suppressed_by"]) for s in data["suppressed"]] == [
        ("AVAIL006", "annotation")
    ]
    assert data["suppressed"][0]["reason"] == "probes come from the service mesh sidecar"
    main(["diagnose", "--manifests", KUBERAY])
    assert "1 suppressed" in capsys.readouterr().out


def test_text_groups_by_category(capsys):
    main(["diagnose", "--manifests", BEFORE])
    out = capsys.readouterr().out
    assert "== connectivity (" in out and "== memory (" in out
    assert "runbook: runbooks/RAY001.md" in out


def test_junit_and_output_file(tmp_path):
    report = tmp_path / "doctor.xml"
    assert (
        main(["diagnose", "--manifests", BEFORE, "--format", "junit", "--output", str(report)]) == 1
    )
    suite = ElementTree.parse(report).getroot()
    failed = {c.get("name").split()[0] for c in suite if c.find("failure") is not None}
    assert {"RAY001", "MEM001", "NET001"} <= failed
    assert int(suite.get("tests")) == len(list(suite))


def test_sarif(tmp_path, capsys):
    main(["diagnose", "--manifests", BEFORE, "--format", "sarif"])
    sarif = json.loads(capsys.readouterr().out)
    run = sarif["runs"][0]
    assert sarif["version"] == "2.1.0"
    rule_ids = {r["id"] for r in run["tool"]["driver"]["rules"]}
    assert {r["ruleId"] for r in run["results"]} <= rule_ids
    located = [r for r in run["results"] if "physicalLocation" in r["locations"][0]]
    assert any(
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith(
            "ray-head-deployment.yaml"
        )
        for r in located
    )


def test_snapshot_and_manifests_together(capsys):
    code = main(
        [
            "diagnose",
            "--manifests",
            AFTER,
            "--snapshot",
            str(FIXTURES / "snapshot_healthy"),
            "--fail-on",
            "info",
        ]
    )
    assert code == 0


@pytest.mark.parametrize(
    "content, message",
    [("kind: [unclosed\n", "not valid YAML"), ('{"kind": ', "not valid JSON")],
)
def test_bad_input_exits_2_without_traceback(tmp_path, capsys, content, message):
    path = tmp_path / ("bad.json" if content.startswith("{") else "bad.yaml")
    path.write_text(content)
    assert main(["diagnose", "--manifests", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_snapshot_yaml_exits_2(tmp_path, capsys):
    (tmp_path / "pods.yaml").write_text("apiVersion: v1\nkind: List\nitems: [\n")
    assert main(["diagnose", "--snapshot", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "pods.yaml is not valid YAML" in err and "Traceback" not in err


def test_missing_paths_and_arguments_exit_2(tmp_path, capsys):
    assert main(["diagnose", "--manifests", str(tmp_path / "nope")]) == 2
    assert main(["diagnose", "--snapshot", str(tmp_path)]) == 2  # no YAML in it
    assert main(["diagnose"]) == 2
    bad_baseline = tmp_path / "b.yaml"
    bad_baseline.write_text("accepted: 3\n")
    assert main(["diagnose", "--manifests", AFTER, "--baseline", str(bad_baseline)]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "Traceback" not in err


def test_unreadable_file_exits_2(tmp_path, capsys):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert main(["diagnose", "--manifests", str(path)]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_explain_and_checks(capsys):
    assert main(["explain", "ray001"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# RAY001") and "## Mitigation" in out
    assert main(["explain", "NOPE999"]) == 2
    assert main(["checks"]) == 0
    out = capsys.readouterr().out
    assert "MEM001" in out and "error" in out


def test_console_script_runs():
    import subprocess
    import sys

    doctor = Path(sys.executable).parent / "doctor"
    if not doctor.exists():
        pytest.skip("console script not installed")
    done = subprocess.run([str(doctor), "checks"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "RAY001" in done.stdout
