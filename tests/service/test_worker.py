"""A GenerationWorker in-process (no Ray): the real tiny pipeline, real Redis, real MP4s."""

import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from service.jobstore import JobStore
from service.polling import wait_until
from service.video import count_frames
from service.worker import GenerationWorker

JOB = {"prompt": "a fox", "num_frames": 13, "height": 64, "width": 64, "num_inference_steps": 3}


@pytest.fixture
def worker(settings):
    worker = GenerationWorker(settings)
    yield worker
    worker.close()


def test_job_succeeds_with_an_mp4_of_the_asked_frames(worker):
    job_id = worker.store.create("acct", JOB)[0]["id"]
    assert worker.serve(max_jobs=1) == 1
    job = worker.store.get(job_id)
    assert job["status"] == "succeeded" and job["attempts"] == 1
    assert job["step"] == job["total_steps"] == 3
    assert count_frames(Path(worker.settings.output_dir) / job["video"]) == 13
    assert job["metrics"]["mean_step_seconds"] > 0


def test_running_job_is_canceled_at_its_next_step(worker):
    job_id = worker.store.create("acct", {**JOB, "num_inference_steps": 200})[0]["id"]
    observer = JobStore(worker.store.redis)
    thread = threading.Thread(target=worker.serve, kwargs={"max_jobs": 1})
    thread.start()
    assert wait_until(lambda: observer.get(job_id)["step"] >= 2, timeout=30)
    assert observer.cancel(job_id, "acct") == "canceling"
    thread.join(timeout=30)
    job = observer.get(job_id)
    assert job["status"] == "canceled" and job["step"] < 200
    assert not list(Path(worker.settings.output_dir).glob(f"{job_id}*"))


def test_unwritable_output_fails_the_job_with_a_clear_reason(settings):
    blocked = Path(settings.output_dir) / "not-a-directory"
    blocked.write_text("a file where the output directory should be")
    worker = GenerationWorker(replace(settings, output_dir=str(blocked)))
    try:
        failing = worker.store.create("acct", JOB)[0]["id"]
        worker.serve(max_jobs=1)
        job = worker.store.get(failing)
        assert job["status"] == "failed" and str(blocked) in job["error"]
        worker.output_dir = Path(settings.output_dir)
        next_job = worker.store.create("acct", JOB)[0]["id"]
        worker.serve(max_jobs=1)
        assert worker.store.get(next_job)["status"] == "succeeded"
    finally:
        worker.close()


def test_the_pipeline_is_built_once_per_worker_process(worker):
    from service import generation

    loads = generation.pipeline_loads
    for _ in range(3):
        worker.store.create("acct", JOB)
    worker.serve(max_jobs=3)
    assert generation.pipeline_loads == loads
    assert worker.info()["pipeline_loads"] == loads


HEARTBEAT_DELAY_SECONDS = 0.010


class SlowHeartbeatStore(JobStore):
    """The real store with each heartbeat round trip HEARTBEAT_DELAY_SECONDS slower on both
    sides, as on a loaded network: answers arrive after the worker may have moved on."""

    def heartbeat(self, claim, worker, step=-1):
        time.sleep(HEARTBEAT_DELAY_SECONDS)
        answer = super().heartbeat(claim, worker, step)
        time.sleep(HEARTBEAT_DELAY_SECONDS)
        return answer


def test_a_late_heartbeat_answer_never_stops_the_next_job(settings):
    """Many short jobs back to back with heartbeats every 33 ms: an answer about a job that
    just finished ('lost', its claim is over) must not stop the job claimed after it. Before
    answers were bound to their claim, 7 of 40 jobs were stopped this way and left running."""
    worker = GenerationWorker(replace(settings, lease_seconds=0.1))
    worker.store = SlowHeartbeatStore(worker.store.redis, 0.1, settings.max_attempts)
    quick = {**JOB, "num_frames": 7, "num_inference_steps": 2, "guidance_scale": 0.0}
    try:
        ids = [worker.store.create("acct", quick)[0]["id"] for _ in range(40)]
        assert worker.serve(max_jobs=len(ids)) == len(ids)
        jobs = [worker.store.get(job_id) for job_id in ids]
        outcomes = [(job["status"], job["attempts"]) for job in jobs]
        assert outcomes == [("succeeded", 1)] * len(ids)
    finally:
        worker.close()
