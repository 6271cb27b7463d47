"""Fixtures of the live doctor tests: the real embedded stack (reaper off, so a stuck job stays
stuck), a loopback blackhole, and a Kubernetes API server that serves recorded objects."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from service.config import Settings
from service.local_stack import LocalStack
from service.processes import free_port

FIXTURES = Path(__file__).parent / "fixtures"
RECORDED = Path(__file__).parents[1] / "doctor" / "fixtures" / "snapshot_faulty"
PLURALS = {"Endpoints": "endpoints", "NetworkPolicy": "networkpolicies"}


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """Redis, a local Ray head, one tiny-model actor and the API; the reaper is off."""
    base = tmp_path_factory.mktemp("ds")
    settings = replace(
        Settings(), workers=1, lease_seconds=3.0, reaper_interval_seconds=0.5, reaper_enabled=False
    )
    local = LocalStack(base_dir=base, api_port=free_port(), settings=settings)
    local.start(progress=lambda line: None)
    yield local
    local.stop()


class Blackhole:
    """Accepts TCP connections on 127.0.0.1 and never answers: a firewalled or hung peer."""

    def __init__(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.port = self.server.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self):
        self.server.close()
        for connection in self.accepted:
            connection.close()


@pytest.fixture
def blackhole():
    hole = Blackhole()
    yield hole
    hole.close()


def recorded_lists() -> dict[tuple[str | None, str], dict]:
    """(namespace or None, plural) -> the List the API server answers, from a kubectl dump."""
    lists: dict[tuple[str | None, str], dict] = {}
    for path in sorted(RECORDED.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            items = document.get("items", [document]) if isinstance(document, dict) else []
            for item in items:
                kind = item["kind"]
                namespace = (item.get("metadata") or {}).get("namespace")
                if kind == "Node":
                    namespace = None
                plural = PLURALS.get(kind, kind.lower() + "s")
                answer = lists.setdefault(
                    (namespace, plural),
                    {"kind": f"{kind}List", "apiVersion": "v1", "metadata": {}, "items": []},
                )
                answer["items"].append({k: v for k, v in item.items() if k != "kind"})
    return lists


class RecordedApi(BaseHTTPRequestHandler):
    lists: dict = {}

    def do_GET(self):  # noqa: N802 - http.server's name
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        namespace = parts[parts.index("namespaces") + 1] if "namespaces" in parts else None
        plural = parts[-1]
        if parts[-1] == "log":
            self._send(200, b"line 1\nPermissionError: [Errno 13] Permission denied: '/data'\n")
            return
        answer = self.lists.get((namespace, plural))
        if answer is None and (plural in {p for _, p in self.lists} or plural.endswith("s")):
            kind = plural[:-1].capitalize()
            answer = {"kind": f"{kind}List", "apiVersion": "v1", "metadata": {}, "items": []}
        if plural == "rayclusters":
            status = {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}
            self._send(404, json.dumps(status).encode())
            return
        self._send(200, json.dumps(answer).encode())

    def _send(self, code: int, body: bytes):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def write_kubeconfig(path: Path, server: str, namespace: str = "mochi-video-gen") -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "recorded", "cluster": {"server": server}}],
        "users": [{"name": "tester", "user": {"token": "test-token-not-secret"}}],
        "contexts": [
            {
                "name": "recorded",
                "context": {"cluster": "recorded", "user": "tester", "namespace": namespace},
            }
        ],
        "current-context": "recorded",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def recorded_api(tmp_path, monkeypatch):
    """A kubeconfig whose cluster is an HTTP server on 127.0.0.1 serving recorded objects."""
    handler = type("Handler", (RecordedApi,), {"lists": recorded_lists()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    yield kubeconfig
    server.shutdown()
    server.server_close()
