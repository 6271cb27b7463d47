"""Deadlines: with every endpoint blackholed (accepts, never answers) or refusing, the run ends
inside --timeout, names every unreachable component, and never prints a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from doctor.cli import main
from service.processes import free_port

from .conftest import write_kubeconfig

DOCTOR = str(Path(sys.executable).with_name("doctor"))


def test_everything_blackholed_ends_inside_the_deadline(blackhole, tmp_path, monkeypatch, capsys):
    address = f"127.0.0.1:{blackhole.port}"
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://{address}")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    started = time.monotonic()
    code = main(
        [
            "diagnose",
            "--context",
            "recorded",
            "--ray-address",
            f"http://{address}",
            "--redis-url",
            f"redis://:hunter2secret@{address}/0",
            "--api-url",
            f"http://{address}",
            "--timeout",
            "3",
            "--format",
            "json",
        ]
    )
    elapsed = time.monotonic() - started
    assert elapsed < 3.5, elapsed
    out = capsys.readouterr()
    assert code == 1 and "Traceback" not in out.err
    findings = json.loads(out.out)["findings"]
    unreachable = {f["message"].split(" at ")[0] for f in findings if f["code"] == "NET006"}
    # "ray" when the whole Ray read, not only its dashboard probe, was cut by the deadline
    assert unreachable - {"ray"} == {"kubernetes", "ray-dashboard", "redis", "api"}, findings
    assert all("timeout" in f["evidence"] for f in findings if f["code"] == "NET006")
    assert "hunter2secret" not in out.out


def test_refused_is_named_and_the_process_exits(tmp_path):
    closed = free_port()  # nothing listens there
    started = time.monotonic()
    result = subprocess.run(
        [
            DOCTOR,
            "diagnose",
            "--redis-url",
            f"redis://127.0.0.1:{closed}/0",
            "--api-url",
            f"http://127.0.0.1:{closed}",
            "--ray-address",
            f"http://127.0.0.1:{closed}",
            "--timeout",
            "4",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "KUBECONFIG": str(tmp_path / "none")},
    )
    assert time.monotonic() - started < 15
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    evidence = [f["evidence"] for f in json.loads(result.stdout)["findings"]]
    assert sum(e.startswith("refused") for e in evidence) >= 3, evidence


def test_blackholed_process_exits_inside_the_deadline(blackhole):
    """The console script as a process: abandoned probe threads do not hold the exit."""
    address = f"127.0.0.1:{blackhole.port}"
    started = time.monotonic()
    result = subprocess.run(
        [DOCTOR, "diagnose", "--redis-url", f"redis://{address}/0", "--timeout", "2"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1 and "NET006" in result.stdout, result.stdout + result.stderr
    assert elapsed < 2 + 3, elapsed  # the deadline plus the interpreter's start-up
