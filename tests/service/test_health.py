"""/healthz and /readyz over a real Redis: liveness from memory, readiness bounded in time and
naming the workers that stopped progressing."""

from __future__ import annotations

import os
import signal
import time

from service.jobstore import JobStore


def register(store: JobStore, worker: str, job: str, seconds_since_progress: float) -> None:
    """A worker's registry entry as the worker writes it: current job, last progress time."""
    info = {"job": job, "progress_at": store.server_time() - seconds_since_progress}
    store.register_worker(worker, {**info, "stall_after": 60.0, "pid": 1})


def test_readyz_lists_workers_that_stopped_progressing(api, redis_client):
    store = JobStore(redis_client)
    register(store, "w-stuck", "a" * 32, seconds_since_progress=300)
    stuck = api.get("/readyz")
    assert stuck.status_code == 503
    body = stuck.json()
    assert body["ready"] is False and "stopped progressing" in body["reason"]
    [report] = body["not_progressing"]
    assert report["worker"] == "w-stuck" and report["job"] == "a" * 32
    assert report["stall_after"] == 60.0 and 299 <= report["seconds_since_progress"] <= 320

    register(store, "w-busy", "b" * 32, seconds_since_progress=5)
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["workers"] == 2
    assert [r["worker"] for r in ready.json()["not_progressing"]] == ["w-stuck"]


def test_an_idle_worker_is_ready_however_long_ago_it_progressed(api, redis_client):
    register(JobStore(redis_client), "w-idle", "", seconds_since_progress=3600)
    assert api.get("/readyz").json() == {"ready": True, "workers": 1, "not_progressing": []}


def test_readyz_is_503_while_no_worker_could_form_its_group(api, redis_client):
    store = JobStore(redis_client)
    error = "rendezvous: ranks did not finish within 600 s"
    store.register_worker("w-group", {"job": "", "gpus_per_job": 2, "group_error": error})
    refused = api.get("/readyz")
    assert refused.status_code == 503
    assert refused.json()["reason"] == f"no worker could form its group of ranks (w-group: {error})"
    register(store, "w-formed", "", seconds_since_progress=1)
    assert api.get("/readyz").status_code == 200


def test_readyz_answers_503_within_its_deadline_while_redis_is_stopped(api, redis_server):
    JobStore(redis_server.client()).register_worker("w1", {"pid": 1})
    assert api.get("/readyz").status_code == 200
    os.kill(redis_server.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        stalled = api.get("/readyz")
        took = time.monotonic() - started
        live = api.get("/healthz")
    finally:
        os.kill(redis_server.process.pid, signal.SIGCONT)
    print(f"/readyz with Redis stopped: {stalled.status_code} in {took * 1000:.0f} ms")
    assert stalled.status_code == 503
    assert "did not answer within 1s" in stalled.json()["reason"]
    assert took < 5  # the API's other Redis client waits 5 s, a sync route far longer
    assert live.json() == {"status": "ok"}
    assert api.get("/readyz").status_code == 200
