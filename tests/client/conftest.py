"""Client fixtures: the real API served over HTTP by uvicorn, a real Redis, and a real
tiny-model GenerationWorker in-process (the Ray pool is the local-stack tests' business)."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import redis
import uvicorn

from service import auth, cli
from service.api import create_app
from service.config import Settings
from service.processes import RedisServer, free_port
from service.worker import GenerationWorker


@contextmanager
def serving(app):
    """The app on a free 127.0.0.1 port, as `mochi api` serves it; yields its URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "API did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@dataclass
class Service:
    url: str
    key: str
    redis_url: str


def _work(worker: GenerationWorker, stopping: threading.Event) -> None:
    while not stopping.is_set():
        claim = worker.store.claim(worker.worker_id)
        if claim is None:
            stopping.wait(0.05)
        else:
            worker.run(claim)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """API + Redis + one worker: jobs really run, videos are real MP4s."""
    base = tmp_path_factory.mktemp("client")
    server = RedisServer(base / "redis", free_port()).start()
    (base / "videos").mkdir()
    settings = Settings(redis_url=server.url, output_dir=str(base / "videos"), lease_seconds=3.0)
    key = auth.add_key(redis.Redis.from_url(server.url), "cli-user")
    worker = GenerationWorker(settings)
    stopping = threading.Event()
    working = threading.Thread(target=_work, args=(worker, stopping), daemon=True)
    working.start()
    try:
        with serving(create_app(settings)) as url:
            yield Service(url, key, server.url)
    finally:
        stopping.set()
        working.join(timeout=30)
        worker.close()
        server.stop()


@pytest.fixture
def idle_service(redis_server, redis_client, tmp_path):
    """API + Redis, no worker, one queued job allowed per account."""
    settings = Settings(
        redis_url=redis_server.url, output_dir=str(tmp_path), max_queued_per_account=1
    )
    key = auth.add_key(redis_client, "idle-user")
    with serving(create_app(settings)) as url:
        yield Service(url, key, redis_server.url)


@pytest.fixture(autouse=True)
def no_ambient_configuration(monkeypatch, tmp_path):
    """No MOCHI_API_* from the caller's shell, no .mochi/local.json from a running stack."""
    monkeypatch.delenv("MOCHI_API_URL", raising=False)
    monkeypatch.delenv("MOCHI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def mochi(capsys):
    """`mochi ARGS...` in-process: exit code, stdout, stderr."""

    def run(*args: str) -> Run:
        capsys.readouterr()
        try:
            code = cli.main([str(arg) for arg in args])
        except SystemExit as exit:
            code = exit.code
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run
