"""Reliability fixtures: the real embedded stack (Redis with AOF, a local Ray head, two tiny-model
actors, the supervisor and the API), shared by every test of this folder, and the API in-process
over a real Redis for the input and security tests.

Every test that breaks the stack (kills a worker, the pool driver or Redis) leaves it whole again;
`healthy_stack` checks that before each test that uses it. Only processes these tests started,
or that the job records name, are ever signalled."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from service import auth
from service.api import create_app
from service.config import Settings
from service.jobstore import JobStore
from service.local_stack import LocalStack
from service.polling import wait_until
from service.processes import free_port
from service.records import ACTIVE_STATES, TERMINAL_STATES

# 7 frames of 64x64 are the smallest job; Mochi's schedule needs at least 2 steps.
TINY = {"prompt": "reliability", "num_frames": 7, "height": 64, "width": 64}
QUICK = {**TINY, "num_inference_steps": 2, "guidance_scale": 0.0}
STACK_SETTINGS = replace(
    Settings(),
    workers=2,
    lease_seconds=3.0,
    max_attempts=3,
    reaper_interval_seconds=0.5,
    worker_ttl_seconds=6.0,
)


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    base = tmp_path_factory.mktemp("rel")  # AF_UNIX paths under it: keep short
    local = LocalStack(base_dir=base, api_port=free_port(), settings=STACK_SETTINGS)
    local.start(progress=lambda line: None)
    yield local
    local.stop()


@pytest.fixture(scope="session")
def store(stack) -> JobStore:
    return stack.store()


@pytest.fixture
def healthy_stack(stack, store):
    """The stack with both workers live and nothing queued or running, before and after."""
    assert wait_for_idle(store, timeout=120), "stack not idle before the test"
    yield stack
    assert wait_for_idle(store, timeout=120), "the test left the stack busy or short of workers"


@pytest.fixture(scope="session")
def http(stack):
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30) as client:
        yield client


def wait_for_idle(store: JobStore, timeout: float) -> bool:
    def idle() -> bool:
        try:
            workers = store.live_workers(STACK_SETTINGS.worker_ttl_seconds)
            return len(workers) >= STACK_SETTINGS.workers and not unfinished(store)
        except redis.RedisError:
            return False

    return wait_until(idle, timeout, interval=0.2)


def unfinished(store: JobStore) -> list[str]:
    """Ids of jobs queued, starting or running, from the records themselves."""
    ids = [key.decode().rsplit(":", 1)[1] for key in store.redis.scan_iter("mochi:job:*")]
    pipe = store.redis.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(f"mochi:job:{job_id}", "status")
    return [
        job_id
        for job_id, status in zip(ids, pipe.execute(), strict=True)
        if status in (b"queued", *(state.encode() for state in ACTIVE_STATES))
    ]


def wait_finished(store: JobStore, ids: list[str], timeout: float) -> list[dict]:
    def done() -> bool:
        return all(store.get(job_id)["status"] in TERMINAL_STATES for job_id in ids)

    assert wait_until(done, timeout, interval=0.2), [store.get(i)["status"] for i in ids]
    return [store.get(job_id) for job_id in ids]


def worker_pid(worker_id: str) -> int:
    """A job record's `worker` is host:pid:index; the pid is a process of our stack."""
    return int(worker_id.split(":")[1])


def freeze(pid: int) -> None:
    os.kill(pid, signal.SIGSTOP)


def thaw(pid: int) -> None:
    os.kill(pid, signal.SIGCONT)


def videos_of(output_dir: Path, job_id: str) -> list[str]:
    return sorted(path.name for path in output_dir.glob(f"{job_id}*"))


def assert_ran_exactly_once_or_failed_with_reason(job: dict, output_dir: Path) -> None:
    """The contract under faults: succeeded once (one video, the recorded one), or failed with
    its reason after its last attempt, never anything in between."""
    files = videos_of(output_dir, job["id"])
    if job["status"] == "succeeded":
        assert files == [job["video"]] == [f"{job['id']}-a{job['attempts']}.mp4"], (job, files)
        assert job["step"] == job["total_steps"]
    else:
        assert job["status"] == "failed", job
        assert job["attempts"] == job["max_attempts"] and job["error"], job
        assert files == [], (job, files)


@pytest.fixture
def api_settings(redis_server, tmp_path) -> Settings:
    output = tmp_path / "videos"
    output.mkdir()
    return Settings(redis_url=redis_server.url, output_dir=str(output), lease_seconds=2.0)


def make_api(settings: Settings, client: redis.Redis) -> TestClient:
    """A TestClient (entered by the caller) with two accounts, alice and bob."""
    test_client = TestClient(create_app(settings))
    test_client.keys = {"alice": auth.add_key(client, "alice"), "bob": auth.add_key(client, "bob")}
    test_client.as_user = lambda name: {"Authorization": f"Bearer {test_client.keys[name]}"}
    return test_client


@pytest.fixture
def api(api_settings, redis_client):
    with make_api(api_settings, redis_client) as client:
        yield client


def stored_state(client: redis.Redis) -> dict[str, object]:
    """Everything a request could have stored, less the per-minute request counters."""
    keys = sorted(k.decode() for k in client.scan_iter() if not k.startswith(b"mochi:rate:"))
    return {
        "keys": keys,
        "queue": client.lrange("mochi:queue", 0, -1),
        "queued": client.hgetall("mochi:queued-per-account"),
    }


def wait_port_closed(url: str, timeout: float = 10) -> bool:
    def closed() -> bool:
        try:
            httpx.get(url, timeout=0.5)
        except httpx.HTTPError:
            return True
        return False

    return wait_until(closed, timeout, 0.05)


def elapsed(started: float) -> float:
    return time.monotonic() - started


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """This file's helpers for the test modules (under --import-mode=importlib a conftest
    cannot be imported by name)."""
    return SimpleNamespace(
        TINY=TINY,
        QUICK=QUICK,
        STACK_SETTINGS=STACK_SETTINGS,
        wait_for_idle=wait_for_idle,
        unfinished=unfinished,
        wait_finished=wait_finished,
        worker_pid=worker_pid,
        freeze=freeze,
        thaw=thaw,
        videos_of=videos_of,
        assert_ran_exactly_once_or_failed_with_reason=assert_ran_exactly_once_or_failed_with_reason,
        make_api=make_api,
        stored_state=stored_state,
        wait_port_closed=wait_port_closed,
        elapsed=elapsed,
    )
