"""kubectl habits of the doctor's command line: -o, -n, -A, --kubeconfig, --context checked
against the kubeconfig, --version, --only/--skip/--min-severity, `checks -o json`, colour on a
terminal only, progress on stderr only, and usage errors as one line with exit 2.

The Kubernetes flags are tested against an HTTP server on 127.0.0.1 that answers every list
with an empty List and records the paths the real `kubernetes` client asked for."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from doctor import colour
from doctor.cli import main
from doctor.diagnose import diagnose
from doctor.sources import load_manifests
from service.processes import free_port

FIXTURES = Path(__file__).parent / "fixtures"
BEFORE = str(FIXTURES / "report_before")
DOCTOR = [sys.executable, "-m", "doctor.cli"]
RED_ERROR = "\x1b[1;31mERROR\x1b[0m"
# Any colour, style or reset (Ray's colorama exit handler wrote a lone reset before it was
# unregistered in doctor.raystart).
COLOUR = re.compile(r"\x1b\[[0-9;]*m")


class EmptyLists(BaseHTTPRequestHandler):
    """An API server with nothing in it; `paths` is what was asked, in order."""

    paths: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        self.paths.append(self.path.split("?", 1)[0])
        body = json.dumps({"kind": "List", "apiVersion": "v1", "metadata": {}, "items": []})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def api_server():
    handler = type("Handler", (EmptyLists,), {"paths": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def kubeconfig(tmp_path, api_server, monkeypatch):
    """Two contexts on one server: `first` (namespace alpha, current) and `second` (beta).
    KUBECONFIG names a file that does not exist, so only --kubeconfig can find this one."""
    server = f"http://127.0.0.1:{api_server.server_port}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server}}],
        "users": [{"name": "tester", "user": {"token": "test-token-not-secret"}}],
        "contexts": [
            {"name": name, "context": {"cluster": "local", "user": "tester", "namespace": ns}}
            for name, ns in (("first", "alpha"), ("second", "beta"))
        ],
        "current-context": "first",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    return str(path)


def one_error_line(err: str, command: str | None = "diagnose") -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    hint = f"(see `doctor {command} --help`)" if command else "(see `doctor --help`)"
    assert lines[0].startswith("doctor: error: ") and lines[0].endswith(hint), lines[0]
    assert "usage:" not in err and "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    "argv, says",
    [
        (["diagnose", "-o", "yaml"], "invalid choice: 'yaml'"),
        (["diagnose", "--manifests", BEFORE, "--bogus"], "unrecognized arguments: --bogus"),
        (["diagnose", "-n", "mochi", "-A"], "not allowed with argument -n/--namespace"),
        (["diagnose", "--min-severity", "fatal"], "invalid choice: 'fatal'"),
        (["diagnose", "--manifests", BEFORE, "--only", "NET01"], "did you mean NET001?"),
        (["diagnose", "--manifests", BEFORE, "--skip", "memory,nosuch"], "category nosuch"),
        (["diagnose", "--only", "memory", "--skip", "memory"], "leave no check to run"),
        (["diagnose", "--redis-url", "redis://x:1", "--timeout", "0"], "--timeout must be"),
        (["checks", "-o", "sarif"], "invalid choice: 'sarif'"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(argv, says, capsys):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert says in one_error_line(err, argv[0])


def test_unknown_check_names_every_valid_category_and_code(capsys):
    assert main(["diagnose", "--manifests", BEFORE, "--only", "memroy"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "connectivity, permissions, memory" in line and "MEM001" in line and "SEC007" in line


def test_usage_error_from_the_installed_command_has_no_traceback():
    done = subprocess.run(
        [*DOCTOR, "diagnose", "-o", "yaml"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and done.stdout == ""
    one_error_line(done.stderr)
    done = subprocess.run(DOCTOR, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "required: command" in one_error_line(done.stderr, None)


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"doctor {version('mochi-k8s')}\n"
    assert main(["diagnose", "--help"]) == 0
    help_text = capsys.readouterr().out
    for flag in ("-o", "--output FILE", "-n", "-A", "--kubeconfig", "--only", "--min-severity"):
        assert flag in help_text


def test_o_is_the_format_and_output_is_the_file(tmp_path, capsys):
    assert main(["diagnose", "--manifests", BEFORE, "-o", "json"]) == 1
    short = json.loads(capsys.readouterr().out)
    assert main(["diagnose", "--manifests", BEFORE, "--format", "json"]) == 1
    assert json.loads(capsys.readouterr().out) == short
    report = tmp_path / "doctor.json"
    assert main(["diagnose", "--manifests", BEFORE, "-o", "json", "--output", str(report)]) == 1
    assert capsys.readouterr().out == ""
    assert json.loads(report.read_text()) == short


def codes_of(argv: list[str], capsys) -> set[tuple[str, str]]:
    main(["diagnose", "--manifests", BEFORE, "-o", "json", *argv])
    findings = json.loads(capsys.readouterr().out)["findings"]
    return {(f["code"], f["category"]) for f in findings}


def test_only_and_skip_by_code_and_category(capsys):
    every = codes_of([], capsys)
    memory = {found for found in every if found[1] == "memory"}
    network = min(found for found in every if found[1] == "connectivity")
    assert len(memory) > 1 and memory != every
    assert codes_of(["--only", "memory"], capsys) == memory
    assert codes_of(["--skip", "Memory"], capsys) == every - memory
    assert codes_of(["--only", network[0], "--only", min(memory)[0]], capsys) == {
        network,
        min(memory),
    }
    mixed = ["--only", f"memory,{network[0].lower()}", "--skip", min(memory)[0]]
    assert codes_of(mixed, capsys) == (memory | {network}) - {min(memory)}


def test_selected_checks_are_the_ones_that_ran():
    from doctor.selection import select_checks

    checks = select_checks(["memory"], ["MEM001"])
    result = diagnose(load_manifests([BEFORE]), checks=checks)
    assert [c.code for c in result.checks] == [c.code for c in checks]
    assert {c.category for c in checks} == {"memory"} and "MEM001" not in {c.code for c in checks}


def test_min_severity_hides_and_counts(capsys):
    full = diagnose(load_manifests([BEFORE]))
    counts = full.counts()
    assert counts["warning"] and counts["info"]
    errors_only = diagnose(load_manifests([BEFORE]), min_severity="error")
    assert {f.severity for f in errors_only.findings} == {"error"}
    assert errors_only.hidden == {"warning": counts["warning"], "info": counts["info"]}
    assert diagnose(load_manifests([BEFORE]), min_severity="warning").hidden == {"info": 1}
    # Hidden findings do not fail the run: availability has warnings and info, no error.
    argv = ["diagnose", "--manifests", BEFORE, "--only", "availability", "-o", "json"]
    assert main([*argv, "--fail-on", "info"]) == 1
    kept = json.loads(capsys.readouterr().out)["findings"]
    assert kept and {f["severity"] for f in kept} <= {"warning", "info"}
    assert main([*argv, "--fail-on", "info", "--min-severity", "error"]) == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []


def test_checks_as_json(capsys):
    assert main(["checks"]) == 0
    text_lines = capsys.readouterr().out.splitlines()
    assert main(["checks", "-o", "json"]) == 0
    checks = {c["code"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert len(checks) == len(text_lines)
    assert set(checks["MEM001"]) == {
        "code",
        "severity",
        "category",
        "summary",
        "fix",
        "runbook",
        "live_only",
    }
    assert checks["MEM001"]["live_only"] is False and checks["JOB001"]["live_only"] is True
    assert checks["MEM001"]["runbook"] == "runbooks/MEM001.md" and checks["MEM001"]["fix"]


def on_a_terminal(argv: list[str], env: dict[str, str], stderr_only: bool = False):
    """Run the doctor with stdout (or only stderr) on a pseudo-terminal: (terminal text, the
    other stream's text, exit code)."""
    controller, terminal = pty.openpty()
    streams = (
        {"stderr": terminal, "stdout": subprocess.PIPE}
        if stderr_only
        else {
            "stdout": terminal,
            "stderr": subprocess.PIPE,
        }
    )
    process = subprocess.Popen([*DOCTOR, *argv], env=env, **streams)
    os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    other = (process.stdout if stderr_only else process.stderr).read()
    os.close(controller)
    return seen.decode(), other.decode(), process.wait(timeout=60)


def plain_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    return {**env, "TERM": "xterm", **extra}


def test_colour_only_on_a_terminal_and_never_with_no_color(tmp_path):
    shown, _, code = on_a_terminal(["diagnose", "--manifests", BEFORE], plain_env())
    assert code == 1 and RED_ERROR in shown and "\x1b[33mWARNING\x1b[0m" in shown
    for argv, env in (
        (["diagnose", "--manifests", BEFORE], plain_env(NO_COLOR="1")),
        (["diagnose", "--manifests", BEFORE, "--no-color"], plain_env()),
    ):
        shown, _, code = on_a_terminal(argv, env)
        assert code == 1 and "ERROR" in shown and not COLOUR.search(shown)
    report = tmp_path / "report.txt"
    argv = ["diagnose", "--manifests", BEFORE, "--output", str(report)]
    shown, _, _ = on_a_terminal(argv, plain_env())
    assert "ERROR" in report.read_text() and "\x1b[" not in report.read_text()
    piped = subprocess.run([*DOCTOR, "diagnose", "--manifests", BEFORE], capture_output=True)
    assert b"ERROR" in piped.stdout and b"\x1b[" not in piped.stdout


def test_colour_keeps_the_columns():
    text = "== memory (1 error) ==\n  ERROR   MEM001   Deployment/a/b\n  INFO    NET001   x\n"
    painted = colour.paint(text)
    assert painted.replace(RED_ERROR, "ERROR").replace("\x1b[36mINFO\x1b[0m", "INFO") == text
    assert "== memory (1 error) ==" in painted  # only a finding's severity word is painted


def closed_redis() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


def test_progress_on_stderr_with_the_flag_and_never_on_stdout(capsys):
    argv = ["diagnose", "--redis-url", closed_redis(), "--timeout", "5", "-o", "json"]
    main([*argv, "--progress"])
    out, err = capsys.readouterr()
    assert json.loads(out)["findings"]  # stdout is the report alone
    lines = err.splitlines()
    assert lines[0] == "reading Redis…"
    assert lines[1].startswith("reading Redis… ") and lines[1].endswith(" s"), lines
    float(lines[1].split()[-2])
    main(argv)  # stderr is no terminal here: no progress
    assert "reading" not in capsys.readouterr().err


def test_progress_by_default_when_stderr_is_a_terminal():
    argv = ["diagnose", "--redis-url", closed_redis(), "--timeout", "5", "-o", "json"]
    shown, out, _ = on_a_terminal(argv, plain_env(), stderr_only=True)
    assert "reading Redis…" in shown and json.loads(out)["findings"]
    shown, _, _ = on_a_terminal([*argv, "--no-progress"], plain_env(), stderr_only=True)
    assert "reading" not in shown


def test_unknown_context_is_a_usage_error_listing_the_contexts(kubeconfig, api_server, capsys):
    assert main(["diagnose", "--kubeconfig", kubeconfig, "--context", "thrid"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "--context thrid" in line and "its contexts: first, second" in line
    assert api_server.RequestHandlerClass.paths == []  # nothing was read


def test_context_from_the_kubeconfig_environment_is_checked_too(kubeconfig, monkeypatch, capsys):
    monkeypatch.setenv("KUBECONFIG", kubeconfig)
    assert main(["snapshot", "--out", "dump", "--context", "nope"]) == 2
    assert "its contexts: first, second" in one_error_line(capsys.readouterr().err, "snapshot")


def test_missing_kubeconfig_is_a_usage_error(tmp_path, monkeypatch, capsys):
    assert main(["diagnose", "--kubeconfig", str(tmp_path / "nope")]) == 2
    assert "no such file" in one_error_line(capsys.readouterr().err)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["diagnose", "--context", "prod"]) == 2
    assert "no readable kubeconfig" in one_error_line(capsys.readouterr().err)


def namespaces_asked(server) -> set[str | None]:
    paths = server.RequestHandlerClass.paths
    assert paths, "the Kubernetes API was not read"
    parts = [p.strip("/").split("/") for p in paths if not p.endswith("/nodes")]
    return {p[p.index("namespaces") + 1] if "namespaces" in p else None for p in parts}


@pytest.mark.parametrize(
    "flags, namespaces",
    [
        ([], {"alpha"}),
        (["--context", "second"], {"beta"}),
        (["--context", "second", "-n", "gamma"], {"gamma"}),
        (["-A"], {None}),
    ],
)
def test_kubeconfig_context_and_namespaces_reach_the_api(
    kubeconfig, api_server, flags, namespaces, capsys
):
    argv = ["diagnose", "--kubeconfig", kubeconfig, "--timeout", "10", "-o", "json", *flags]
    assert main(argv) == 0, capsys.readouterr().err
    probes = json.loads(capsys.readouterr().out)
    assert not [f for f in probes["findings"] if f["code"] == "NET006"], probes["findings"]
    assert namespaces_asked(api_server) == namespaces


def test_all_namespaces_lists_every_kind_cluster_wide(kubeconfig, api_server, capsys):
    assert main(["diagnose", "--kubeconfig", kubeconfig, "-A", "--timeout", "10"]) == 0
    asked = set(api_server.RequestHandlerClass.paths)
    for path in (
        "/api/v1/pods",
        "/api/v1/secrets",
        "/apis/apps/v1/deployments",
        "/apis/batch/v1/jobs",
        "/apis/networking.k8s.io/v1/networkpolicies",
        "/apis/ray.io/v1/rayclusters",
        "/apis/ray.io/v1/raycronjobs",
    ):
        assert path in asked, sorted(asked)


def test_counts_say_how_many_were_hidden(capsys):
    main(["diagnose", "--manifests", BEFORE, "--min-severity", "error"])
    assert "(0 suppressed, 14 below --min-severity)" in capsys.readouterr().out
    main(["diagnose", "--manifests", BEFORE, "--min-severity", "error", "-o", "json"])
    assert json.loads(capsys.readouterr().out)["summary"]["hidden"] == {"warning": 13, "info": 1}
