"""A live read keeps secrets out of every report format, not only out of `doctor snapshot`: the
recorded cluster of test_snapshot_secrets (each shape of secret: argv, redis-cli -a, env names,
values equal to a Secret's, redis.conf text, logs), served by an API server on 127.0.0.1 to the
real `kubernetes` client. Findings that quote argv (SEC003's command line) are masked where the
registry builds them, so a manifests input with a Secret is masked the same way."""

from __future__ import annotations

import copy
import json
import textwrap
import threading
from http.server import ThreadingHTTPServer

import pytest

from doctor.cli import FORMATS, main
from doctor.diagnose import diagnose
from doctor.sources import load_manifests
from doctor.sources.live import LiveOptions, read_live

from .conftest import RecordedApi, write_kubeconfig
from .test_snapshot_secrets import NAMESPACE, SECRETS, recorded_cluster

# A replica that authenticates to its primary but asks no password of its own clients: SEC003
# quotes its command line, `--masterauth` value and all.
REPLICA_SECRETS = {
    "SEC003 argv --masterauth X": "ReplicaMaster55",
    "SEC003 argv, equal to a Secret's value": "ReplicaFromSecret66",
}
ALL_SECRETS = {**SECRETS, **REPLICA_SECRETS}


def served_objects() -> list[dict]:
    inventory = recorded_cluster()
    objects = [copy.deepcopy(o) for kind in inventory.objects.values() for o in kind]
    (secret,) = [o for o in objects if o["kind"] == "Secret"]
    secret["stringData"]["replica"] = REPLICA_SECRETS["SEC003 argv, equal to a Secret's value"]
    replica = {
        "name": "replica",
        "image": "redis:7.2",
        "command": [
            "redis-server",
            "--replicaof",
            "redis",
            "6379",
            "--masterauth",
            REPLICA_SECRETS["SEC003 argv --masterauth X"],
            "--dbfilename",
            REPLICA_SECRETS["SEC003 argv, equal to a Secret's value"],
        ],
    }
    objects.append(
        {
            "kind": "Pod",
            "metadata": {"name": "replica-0", "namespace": NAMESPACE, "labels": {"app": "r"}},
            "spec": {"containers": [replica]},
            "status": {"phase": "Running"},
        }
    )
    return objects


def api_lists(objects: list[dict]) -> dict:
    lists: dict = {}
    for obj in objects:
        plural = obj["kind"].lower() + "s"
        answer = lists.setdefault(
            (NAMESPACE, plural),
            {"kind": f"{obj['kind']}List", "apiVersion": "v1", "metadata": {}, "items": []},
        )
        answer["items"].append({k: v for k, v in obj.items() if k != "kind"})
    return lists


class SecretApi(RecordedApi):
    """Lists the cluster; a container's log is the recorded one, secrets and all."""

    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path.split("?", 1)[0].endswith("/log"):
            (log,) = recorded_cluster().live.logs.values()
            body = log.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()


@pytest.fixture
def secret_cluster(tmp_path, monkeypatch):
    handler = type("Handler", (SecretApi,), {"lists": api_lists(served_objects())})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url, namespace=NAMESPACE)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    yield kubeconfig
    server.shutdown()
    server.server_close()


def leaks(text: str) -> list[str]:
    return [where for where, value in ALL_SECRETS.items() if value in text]


def test_the_live_read_holds_no_secret_value(secret_cluster):
    live = read_live(LiveOptions(kubernetes=True, timeout=10))
    assert [p for p in live.live.probes if p.component == "kubernetes"][0].ok
    assert "Pod/mochi/redis-0/redis" in (live.live.logs or {}), live.live.kubernetes
    held = json.dumps({"objects": live.objects, "state": live.live.to_json()}, default=str)
    assert leaks(held) == []


@pytest.mark.parametrize("format_", FORMATS)
def test_every_live_report_format_holds_no_secret(secret_cluster, tmp_path, format_):
    report = tmp_path / f"report.{format_}"
    code = main(
        ["diagnose", "--context", "recorded", "--format", format_, "--output", str(report),
         "--fail-on", "never", "--timeout", "10"]
    )  # fmt: skip
    assert code == 0
    text = report.read_text()
    assert "SEC003" in text and "SEC005" in text  # the findings that quote argv and values
    assert "--masterauth Re*************" in " ".join(text.split())  # masked, length kept
    assert leaks(text) == []


def test_snapshot_of_the_live_read_holds_no_secret(secret_cluster, tmp_path, capsys):
    assert (
        main(["snapshot", "--context", "recorded", "--out", str(tmp_path), "--timeout", "10"]) == 0
    )
    for path in tmp_path.iterdir():
        assert leaks(path.read_text()) == [], path.name


def test_live_and_snapshot_findings_are_the_same(secret_cluster, tmp_path):
    from doctor.sources import load_snapshot
    from doctor.sources.record import write_snapshot

    live = read_live(LiveOptions(kubernetes=True, timeout=10))
    write_snapshot(live, str(tmp_path))
    evidence = {(f.code, f.resource, f.evidence) for f in diagnose(live).findings}
    again = {
        (f.code, f.resource, f.evidence) for f in diagnose(load_snapshot(str(tmp_path))).findings
    }
    assert evidence == again


MANIFESTS = """
apiVersion: v1
kind: Secret
metadata: {name: replica, namespace: ml}
stringData: {dbfile: ManifestSecret77}
---
apiVersion: v1
kind: Pod
metadata: {name: replica, namespace: ml}
spec:
  containers:
    - name: redis
      image: redis:7.2
      command: ["redis-server", "--masterauth", "ManifestArgv88",
                "--dbfilename", "ManifestSecret77"]
"""


@pytest.mark.parametrize("format_", FORMATS)
def test_manifest_findings_are_masked_in_every_format(tmp_path, format_):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "objects.yaml").write_text(textwrap.dedent(MANIFESTS))
    (finding,) = [
        f for f in diagnose(load_manifests([str(tmp_path / "in")])).findings if f.code == "SEC003"
    ]
    assert "--masterauth Ma************ --dbfilename Ma**************" in finding.evidence
    report = tmp_path / "report"
    main(["diagnose", "--manifests", str(tmp_path / "in"), "--format", format_,
          "--output", str(report), "--fail-on", "never"])  # fmt: skip
    text = report.read_text()
    assert "SEC003" in text
    assert "ManifestArgv88" not in text and "ManifestSecret77" not in text
