"""The live Kubernetes source through the real `kubernetes` client, against an API server on
127.0.0.1 that answers the list endpoints with recorded objects (no cluster)."""

from __future__ import annotations

from doctor.cli import main
from doctor.diagnose import diagnose
from doctor.sources import load_snapshot
from doctor.sources.live import LiveOptions, read_live

from .conftest import RECORDED


def test_live_read_gives_the_snapshot_findings(recorded_api):
    live = read_live(LiveOptions(kubernetes=True, context="recorded", timeout=10))
    probes = live.live.probes
    assert [p for p in probes if p.component == "kubernetes"][0].ok, probes
    assert len(live.of("Pod")) == 5 and len(live.of("Node")) == 2
    offline = load_snapshot(str(RECORDED))
    # The live read is scoped to the context's namespace; the dump also holds a pod of namespace
    # `video` and an event of namespace `default` (about a Node).
    offline_codes = {
        (f.code, f.resource)
        for f in diagnose(offline).findings
        if "/video/" not in f.resource and not f.resource.startswith("Node/default/")
    }
    live_codes = {(f.code, f.resource) for f in diagnose(live).findings}
    assert offline_codes <= live_codes, offline_codes - live_codes
    assert {"MEM005", "PERM004", "NET004"} <= {code for code, _ in live_codes}


def test_secrets_never_leave_the_reader_and_logs_are_read(recorded_api):
    live = read_live(LiveOptions(kubernetes=True, timeout=10))
    for secret in live.of("Secret"):
        assert set(secret.get("data", {}).values()) <= {"<redacted>"}
    assert all("managedFields" not in (o.get("metadata") or {}) for o in live.of("Pod"))
    kubernetes = live.live.kubernetes
    assert kubernetes is not None and kubernetes.namespace == "mochi-video-gen"


def test_cli_with_context_and_junit(recorded_api, tmp_path, capsys):
    report = tmp_path / "doctor.xml"
    code = main(["diagnose", "--context", "recorded", "--format", "junit", "--output", str(report)])
    assert code == 1
    assert "MEM005" in report.read_text() and "<failure" in report.read_text()


def test_unknown_context_is_a_usage_error(recorded_api, capsys):
    code = main(["diagnose", "--context", "nope", "--format", "json", "--timeout", "5"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert "--context nope: no such context" in err and "its contexts: recorded" in err
