"""Liveness during a Redis stall: the real API on uvicorn, a real redis-server paused with
SIGSTOP (by the pid this test started), 80 Redis-bound requests in flight over real HTTP.
The API runs as its own `uvicorn --factory service.api:app_from_env` process.

/healthz answers from memory on the event loop, so neither the stalled Redis nor the thread
pool that the waiting sync routes fill can delay it; a liveness probe keeps passing and the
pods are not restarted for a Redis problem. /readyz answers 503 within its own deadline."""

from __future__ import annotations

import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from service import auth
from service.jobstore import JobStore
from service.polling import wait_until
from service.processes import free_port, spawn_in_own_session, stop_process_group

REPO = Path(__file__).resolve().parents[2]

IN_FLIGHT = 80
VALID = {"prompt": "a stalled test", "num_frames": 7, "height": 64, "width": 64}


@pytest.fixture
def served_api(api_settings, redis_client, tmp_path):
    """`uvicorn --factory service.api:app_from_env` as its own process, on a free port."""
    key = auth.add_key(redis_client, "alice")
    port = free_port()
    env = {**os.environ, **api_settings.to_env(), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "uvicorn", "--factory", "service.api:app_from_env"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    process = spawn_in_own_session(command, tmp_path / "api.log", env)
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: answers(f"{url}/healthz"), 60, 0.05), "the API did not start"
        yield SimpleNamespace(url=url, key=key)
    finally:
        stop_process_group(process)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def timed_get(client: httpx.Client, path: str) -> tuple[int, float]:
    started = time.monotonic()
    status = client.get(path).status_code
    return status, time.monotonic() - started


def test_healthz_answers_at_once_with_redis_stopped_and_80_requests_waiting(
    served_api, redis_server
):
    JobStore(redis_server.client()).register_worker("w1", {"pid": 1})
    headers = {"Authorization": f"Bearer {served_api.key}"}
    limits = httpx.Limits(max_connections=IN_FLIGHT + 10)
    with (
        httpx.Client(base_url=served_api.url, headers=headers, timeout=60, limits=limits) as http,
        httpx.Client(base_url=served_api.url, timeout=30) as probe,
    ):
        assert probe.get("/healthz").status_code == 200  # its connection made before the stall
        assert http.post("/v1/jobs", json=VALID).status_code == 202
        assert http.get("/readyz").status_code == 200

        def redis_bound(index: int) -> int:
            # Half wait in the thread pool (sync routes), half on the event loop (the submit).
            if index % 2:
                return http.get("/v1/jobs").status_code
            return http.post("/v1/jobs", json=VALID).status_code

        os.kill(redis_server.process.pid, signal.SIGSTOP)
        try:
            with ThreadPoolExecutor(IN_FLIGHT) as pool:
                requests = [pool.submit(redis_bound, index) for index in range(IN_FLIGHT)]
                time.sleep(1.0)  # every request sent, every one waiting on Redis
                waiting = sum(not request.done() for request in requests)
                health, health_seconds = timed_get(probe, "/healthz")
                ready, ready_seconds = timed_get(probe, "/readyz")
                os.kill(redis_server.process.pid, signal.SIGCONT)
                answers = [request.result() for request in requests]
        finally:
            os.kill(redis_server.process.pid, signal.SIGCONT)
    print(
        f"\nRedis stopped, {waiting} requests waiting on it: /healthz {health} in "
        f"{health_seconds * 1000:.1f} ms, /readyz {ready} in {ready_seconds * 1000:.0f} ms"
    )
    assert waiting == IN_FLIGHT
    assert health == 200 and health_seconds < 1.0
    assert ready == 503 and ready_seconds < 5.0
    assert set(answers) <= {200, 202, 503}, answers  # once Redis is back: answered, never 500
