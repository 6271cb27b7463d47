"""`doctor` from the images' installs: the worker's has Ray, the API's has none, and there RAY001
(which reads `ray start`'s options from the installed Ray) is reported as skipped, with why."""

from __future__ import annotations

import json
from xml.etree import ElementTree

from doctor import cli
from doctor.raystart import RAY_MISSING
from tests.packaging.installs import REPO, run

MANIFESTS = REPO / "tests" / "doctor" / "fixtures" / "report_before"
EXIT_FINDINGS = 1


def diagnose_json(install) -> dict:
    # From the repository root, as the checkout's run: reports show paths relative to it.
    command = [install.bin("doctor"), "diagnose", "--manifests", MANIFESTS, "--format", "json"]
    done = run(command, cwd=REPO)
    assert done.returncode == EXIT_FINDINGS, done.stderr
    return json.loads(done.stdout)


def checkout_json(capsys, monkeypatch) -> dict:
    monkeypatch.chdir(REPO)
    assert cli.main(["diagnose", "--manifests", str(MANIFESTS), "--format", "json"]) == 1
    return json.loads(capsys.readouterr().out)


def fingerprints(report: dict) -> set[str]:
    return {finding["fingerprint"] for finding in report["findings"]}


def test_explain_prints_the_runbook_from_the_install(worker_install, tmp_path):
    done = run([worker_install.bin("doctor"), "explain", "RAY001"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (REPO / "runbooks" / "RAY001.md").read_text()


def test_worker_install_diagnoses_as_the_checkout_does(worker_install, capsys, monkeypatch):
    installed = diagnose_json(worker_install)
    assert "RAY001" in {finding["code"] for finding in installed["findings"]}
    assert installed["summary"]["skipped_checks"] == []
    assert fingerprints(installed) == fingerprints(checkout_json(capsys, monkeypatch))


def test_without_ray_the_report_says_ray001_was_skipped(api_install, capsys, monkeypatch):
    report = diagnose_json(api_install)
    skipped = [{"code": "RAY001", "reason": RAY_MISSING}]
    assert report["summary"]["skipped_checks"] == skipped
    checkout = checkout_json(capsys, monkeypatch)
    ray001 = {f["fingerprint"] for f in checkout["findings"] if f["code"] == "RAY001"}
    assert ray001, "the fixture should make RAY001 fire where Ray is installed"
    assert fingerprints(report) == fingerprints(checkout) - ray001

    text = run([api_install.bin("doctor"), "diagnose", "--manifests", MANIFESTS], cwd=REPO)
    assert f"RAY001: {RAY_MISSING}" in text.stdout

    junit = run(
        [api_install.bin("doctor"), "diagnose", "--manifests", MANIFESTS, "--format", "junit"],
        cwd=REPO,
    )
    suite = ElementTree.fromstring(junit.stdout)
    [case] = [c for c in suite if c.get("name", "").startswith("RAY001")]
    assert case.find("skipped").get("message") == RAY_MISSING
