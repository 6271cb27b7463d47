"""The progress watchdog: the real tiny pipeline and a real Redis in-process, and the real
embedded stack (Ray actors) for a call that never returns. A hang is made with the test-only
setting test_hang_prompt: that job blocks inside its first denoising step."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from service import memory_model, watchdog
from service.config import STALL_FLOOR_SECONDS, Settings, SettingsError
from service.jobstore import LEASES, JobStore
from service.local_stack import LocalStack
from service.params import GenerationParams
from service.polling import wait_until
from service.processes import free_port
from service.worker import GenerationWorker

HANG = "hang here"
JOB = {"num_frames": 7, "height": 64, "width": 64, "num_inference_steps": 2, "guidance_scale": 0.0}
# The repository's copy of shared/data's H200 calibration (the memory model's tests read it too).
CALIBRATION = Path(__file__).resolve().parents[1] / "data" / "mochi-h200-calibration.json"


# --- limits -----------------------------------------------------------------------------------


def test_the_derived_stall_limit_follows_the_step_time_estimate_above_the_floor():
    small = GenerationParams(prompt="p", num_frames=31)
    large = GenerationParams(prompt="p", num_frames=163)
    derived = watchdog.limits_for(Settings(), memory_model.MOCHI_1, large)
    assert derived.stall_derived and derived.stall_after > STALL_FLOOR_SECONDS
    step = watchdog.estimated_step_seconds(memory_model.MOCHI_1, large)
    assert derived.stall_after == pytest.approx(watchdog.STALL_MARGIN * step)
    assert watchdog.limits_for(Settings(), memory_model.MOCHI_1, small).stall_after == 60.0
    assert watchdog.limits_for(Settings(), memory_model.TINY, large).stall_after == 60.0
    configured = watchdog.limits_for(Settings(stall_timeout_seconds=7), memory_model.TINY, large)
    assert configured.stall_after == 7 and not configured.stall_derived


def test_the_step_time_estimate_matches_every_measured_step_within_10_percent():
    results = json.loads(CALIBRATION.read_text())["results"]
    forwards = [row for row in results if row["component"] == "transformer_forward"]
    assert forwards
    for row in forwards:
        params = GenerationParams(
            prompt="p",
            num_frames=row["frames"],
            height=row["height"],
            width=row["width"],
            guidance_scale=4.5 if row["batch"] == 2 else 0.0,
        )
        steady = min(row["seconds"][1:])
        estimate = watchdog.estimated_step_seconds(memory_model.MOCHI_1, params)
        assert estimate == pytest.approx(steady, rel=0.10), row


@pytest.mark.parametrize("name", ["stall_timeout_seconds", "job_timeout_seconds"])
def test_a_negative_limit_is_refused_naming_the_setting(name):
    with pytest.raises(SettingsError, match=f"MOCHI_{name.upper()}=-1.*must be 0"):
        Settings(**{name: -1.0})


# --- in-process worker ----------------------------------------------------------------------


class RecordingStore(JobStore):
    """The real store, remembering when each heartbeat was sent and for which claim."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.heartbeats: list[tuple[str, float]] = []

    def heartbeat(self, claim, worker, step=-1):
        self.heartbeats.append((claim.job_id, time.monotonic()))
        return super().heartbeat(claim, worker, step)


@pytest.fixture
def hang_settings(settings):
    return replace(
        settings,
        stall_timeout_seconds=2.0,
        test_hang_prompt=HANG,
        test_hang_seconds=4.0,
        max_attempts=2,
        lease_seconds=1.5,
    )


def start_worker(settings) -> tuple[GenerationWorker, list[str]]:
    stuck: list[str] = []
    worker = GenerationWorker(settings, on_stuck=stuck.append)
    worker.store = RecordingStore(worker.store.redis, settings.lease_seconds, settings.max_attempts)
    return worker, stuck


def test_a_stalled_step_is_stopped_requeued_then_failed_with_the_limit(hang_settings):
    """The hung step comes back after the watchdog fired: the attempt ends there, the job is
    requeued with the reason, its second attempt stalls too and fails with it."""
    worker, stuck = start_worker(hang_settings)
    try:
        job_id = worker.store.create("acct", {**JOB, "prompt": HANG})[0]["id"]
        assert worker.serve(max_jobs=2) == 2
        job = worker.store.get(job_id)
        assert job["status"] == "failed" and job["attempts"] == 2
        assert "no denoising step for" in job["error"]
        assert "over stall_timeout_seconds=2 (attempt 2 of 2)" in job["error"]
        assert worker.worker_id in job["error"]
        assert job["video"] == "" and not list(Path(hang_settings.output_dir).iterdir())
        assert stuck == []  # the call came back: no replacement needed
        # The worker goes on with the next job (with room for a slow CI machine's first step).
        worker.settings = replace(hang_settings, stall_timeout_seconds=30.0)
        next_job = worker.store.create("acct", {**JOB, "prompt": "fine"})[0]["id"]
        worker.serve(max_jobs=1)
        assert worker.store.get(next_job)["status"] == "succeeded"
    finally:
        worker.close()


def test_a_call_that_never_comes_back_stops_renewals_and_asks_for_a_replacement(hang_settings):
    settings = replace(hang_settings, test_hang_seconds=10.0)
    worker, stuck = start_worker(settings)
    store = worker.store
    observer = JobStore(store.redis)
    try:
        job_id = store.create("acct", {**JOB, "prompt": HANG})[0]["id"]
        serving = threading.Thread(target=worker.serve, kwargs={"max_jobs": 1})
        serving.start()

        def not_progressing() -> bool:
            info = observer.live_workers(settings.worker_ttl_seconds)[worker.worker_id]
            quiet = observer.server_time() - info["progress_at"]
            return info["job"] == job_id and info["stall_after"] == 2.0 and quiet > 2.0

        assert wait_until(not_progressing, timeout=10)
        assert wait_until(lambda: observer.get(job_id)["status"] == "queued", timeout=10)
        stopped_at = time.monotonic()
        requeued = observer.get(job_id)
        assert "over stall_timeout_seconds=2 (attempt 1 of 2)" in requeued["error"]
        assert store.redis.zscore(LEASES, job_id) is None
        assert wait_until(lambda: stuck, timeout=8)
        assert len(stuck) == 1 and job_id in stuck[0] and "never returned" in stuck[0]
        serving.join(timeout=15)
        assert [sent for sent in store.heartbeats if sent[1] > stopped_at] == []
        assert observer.get(job_id)["status"] == "queued"  # the late return writes nothing
        assert not list(Path(settings.output_dir).iterdir())
    finally:
        worker.close()


def test_a_canceled_job_whose_call_hangs_is_still_given_up(hang_settings):
    """The cancel reached the worker, but its call hangs: the watchdog ends it as canceled
    while the call still hangs, instead of renewing its lease forever."""
    # The hang outlasts the cancel's way to the watchdog by far, on a loaded machine too.
    worker, stuck = start_worker(replace(hang_settings, test_hang_seconds=15.0))
    observer = JobStore(worker.store.redis)
    try:
        job_id = worker.store.create("acct", {**JOB, "prompt": HANG})[0]["id"]
        serving = threading.Thread(target=worker.serve, kwargs={"max_jobs": 1})
        serving.start()
        assert wait_until(lambda: observer.get(job_id)["status"] in ("starting", "running"), 10)
        assert observer.cancel(job_id, "acct") == "canceling"
        assert wait_until(lambda: observer.get(job_id)["status"] == "canceled", timeout=10)
        assert serving.is_alive()  # decided while the call was still hung
        assert observer.get(job_id)["error"] == "canceled by the client"
        serving.join(timeout=25)
        assert observer.get(job_id)["status"] == "canceled"
    finally:
        worker.close()


def test_a_job_past_its_deadline_fails_with_job_timeout_seconds(hang_settings):
    settings = replace(
        hang_settings,
        stall_timeout_seconds=30.0,
        job_timeout_seconds=1.0,
        test_hang_seconds=2.5,
        max_attempts=1,
    )
    worker, stuck = start_worker(settings)
    try:
        job_id = worker.store.create("acct", {**JOB, "prompt": HANG})[0]["id"]
        worker.serve(max_jobs=1)
        job = worker.store.get(job_id)
        assert job["status"] == "failed" and job["attempts"] == 1
        assert "past job_timeout_seconds=1 (attempt 1 of 1)" in job["error"]
        assert stuck == []
    finally:
        worker.close()


def test_a_progressing_job_reports_its_progress_and_is_not_stopped(settings):
    worker = GenerationWorker(replace(settings, stall_timeout_seconds=5.0, job_timeout_seconds=60))
    try:
        job_id = worker.store.create("acct", {**JOB, "prompt": "fine", "num_inference_steps": 8})
        worker.serve(max_jobs=1)
        assert worker.store.get(job_id[0]["id"])["status"] == "succeeded"
        info = worker.store.live_workers(settings.worker_ttl_seconds)[worker.worker_id]
        assert info["job"] == "" and info["stall_after"] == 5.0
        assert info["progress_at"] <= worker.store.server_time()
    finally:
        worker.close()


# --- the embedded stack: the actor replaces itself ---------------------------------------------


@pytest.fixture(scope="module")
def hanging_stack(tmp_path_factory):
    settings = replace(
        Settings(),
        workers=1,
        lease_seconds=3.0,
        reaper_interval_seconds=0.5,
        worker_ttl_seconds=6.0,
        max_attempts=2,
        stall_timeout_seconds=2.5,
        test_hang_prompt=HANG,
        test_hang_seconds=3600.0,
    )
    local = LocalStack(
        base_dir=tmp_path_factory.mktemp("wd"), api_port=free_port(), settings=settings
    )
    local.start(progress=lambda line: None)
    yield local
    local.stop()


def test_a_stuck_actor_gives_the_job_back_exits_and_is_replaced(hanging_stack):
    store = hanging_stack.store()
    ttl = hanging_stack.settings.worker_ttl_seconds
    first = {info["pid"] for info in store.live_workers(ttl).values()}
    job_id = store.create("local", {**JOB, "prompt": HANG})[0]["id"]
    assert wait_until(lambda: store.get(job_id)["status"] == "failed", timeout=120)
    job = store.get(job_id)
    assert job["attempts"] == 2
    assert "over stall_timeout_seconds=2.5 (attempt 2 of 2)" in job["error"]
    second = int(job["error"].split()[1].split(":")[1])  # "worker host:pid:index stopped ..."
    assert len(first) == 1 and second not in first
    fine = store.create("local", {**JOB, "prompt": "fine"})[0]["id"]
    assert wait_until(lambda: store.get(fine)["status"] == "succeeded", timeout=90)
    third = int(store.get(fine)["worker"].split(":")[1])
    assert third not in first | {second}
