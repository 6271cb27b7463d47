"""Faults on the real embedded stack (real Redis, real Ray, tiny model): worker actors killed
with SIGKILL under a backlog, the pool driver killed, a worker frozen past its lease, the output
volume full or read-only. After each: no job lost, none run twice, none left half done.

Only processes of this stack are signalled: the worker pids the job records name
(`host:pid:index`) and the pool driver pid the stack's own Ray Jobs API names."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from service.polling import wait_until
from service.supervisor import POOL_SUBMISSION

LONG = {"prompt": "a long job", "num_frames": 7, "height": 64, "width": 64, "guidance_scale": 0.0}


def submit(http, body) -> str:
    response = http.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def kill_worker_of(store, kit, job_id: str) -> str:
    """SIGKILL the actor process the job record names; returns its worker id."""
    worker = store.get(job_id)["worker"]
    pid = kit.worker_pid(worker)
    assert "_ActorWorker" in cmdline(pid), f"pid {pid} is not one of our worker actors"
    os.kill(pid, signal.SIGKILL)
    return worker


def mp4s(output_dir: Path, job_id: str) -> list[str]:
    return sorted(path.name for path in output_dir.glob(f"{job_id}*.mp4"))


def test_worker_actors_sigkilled_repeatedly_under_a_backlog(healthy_stack, http, store, kit):
    """One job loses its worker on every attempt and fails with the reason after its last;
    a backlog runs meanwhile while other workers are killed too: every other job succeeds,
    exactly once, with exactly one video, the one its record names."""
    output = Path(healthy_stack.settings.output_dir)
    doomed = submit(http, {**LONG, "num_inference_steps": 200})
    backlog = [submit(http, kit.QUICK) for _ in range(20)]
    killed = []
    for attempt in (1, 2, 3):

        def running_attempt(attempt=attempt):
            job = store.get(doomed)
            return job["status"] == "running" and job["attempts"] == attempt and job["step"] >= 1

        assert wait_until(running_attempt, 60, 0.02), store.get(doomed)
        killed.append(kill_worker_of(store, kit, doomed))
        if attempt == 2:  # and a worker in the middle of a backlog job, if one is running
            running = [j for j in backlog if store.get(j)["status"] in ("starting", "running")]
            if running:
                killed.append(kill_worker_of(store, kit, running[0]))

    jobs = kit.wait_finished(store, [doomed, *backlog], timeout=180)
    doomed_job, backlog_jobs = jobs[0], jobs[1:]
    assert doomed_job["status"] == "failed" and doomed_job["attempts"] == 3
    assert "lease expired" in doomed_job["error"] and "attempt 3 of 3" in doomed_job["error"]
    assert f"worker {killed[-1]} lost" in doomed_job["error"]
    for job in jobs:
        kit.assert_ran_exactly_once_or_failed_with_reason(job, output)
        assert mp4s(output, job["id"]) == ([job["video"]] if job["status"] == "succeeded" else [])
    assert [job["status"] for job in backlog_jobs] == ["succeeded"] * len(backlog)
    # The killed actors were restarted by Ray and serve again.
    assert kit.wait_for_idle(store, 120)
    ttl = kit.STACK_SETTINGS.worker_ttl_seconds
    assert wait_until(lambda: not set(killed) & set(store.live_workers(ttl)), 3 * ttl, 0.2)


def _driver_pid(stack) -> tuple[str, int]:
    submission = stack.store().redis.get(POOL_SUBMISSION).decode()
    url = f"{stack.ray.dashboard_url}/api/jobs/{submission}"
    details = httpx.get(url, headers=stack.ray.auth_headers(), timeout=10).json()
    pid = int(details["driver_info"]["pid"])
    assert "service.cli" in cmdline(pid) or "pool" in cmdline(pid), cmdline(pid)
    return submission, pid


def test_pool_driver_killed_the_supervisor_brings_it_back_and_the_queue_drains(
    healthy_stack, http, store, kit
):
    output = Path(healthy_stack.settings.output_dir)
    in_flight = submit(http, {**LONG, "num_inference_steps": 100})
    assert wait_until(lambda: store.get(in_flight)["status"] == "running", 60, 0.02)
    submission, pid = _driver_pid(healthy_stack)
    restarts = healthy_stack.supervisor.restarts
    os.kill(pid, signal.SIGKILL)
    backlog = [submit(http, kit.QUICK) for _ in range(10)]
    assert wait_until(lambda: healthy_stack.supervisor.restarts == restarts + 1, 60, 0.2)
    assert store.redis.get(POOL_SUBMISSION).decode() != submission
    jobs = kit.wait_finished(store, [in_flight, *backlog], timeout=180)
    assert [job["status"] for job in jobs] == ["succeeded"] * len(jobs), jobs
    assert jobs[0]["attempts"] == 2  # the job the dead pool's actor held came back by its lease
    for job in jobs:
        kit.assert_ran_exactly_once_or_failed_with_reason(job, output)
    assert _driver_pid(healthy_stack)[1] != pid


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "moment",
    [
        pytest.param("mid-steps", id="frozen-between-steps"),
        pytest.param("after-last-step", id="frozen-while-decoding-then-writes-late"),
    ],
)
def test_frozen_worker_loses_its_job_and_its_late_writes_are_refused(
    healthy_stack, http, store, kit, moment
):
    """SIGSTOP a worker past its lease: the job moves to another worker and succeeds there. On
    SIGCONT the frozen one either stops at its next step (heartbeat fenced) or, frozen after its
    last step, finishes decoding, writes its own attempt's file and is refused at finish (finish
    fenced), deleting that file. The winner's record and video are never touched."""
    output = Path(healthy_stack.settings.output_dir)
    steps = 60 if moment == "mid-steps" else 12
    # Frozen after the last step, the decode of 19 frames at 192x192 gives a wide window.
    body = {**LONG, "num_inference_steps": steps, "num_frames": 19, "height": 192, "width": 192}
    job_id = submit(http, body)
    target = 3 if moment == "mid-steps" else steps

    def reached():
        job = store.get(job_id)
        return job["status"] == "running" and job["attempts"] == 1 and job["step"] >= target

    assert wait_until(reached, 60, 0.005), store.get(job_id)
    frozen = store.get(job_id)["worker"]
    pid = kit.worker_pid(frozen)
    assert "_ActorWorker" in cmdline(pid)
    kit.freeze(pid)
    try:
        winner = kit.wait_finished(store, [job_id], timeout=120)[0]
        assert winner["status"] == "succeeded" and winner["attempts"] == 2, winner
        assert winner["worker"] != frozen
        video = output / winner["video"]
        digest, mtime = _sha256(video), video.stat().st_mtime_ns
    finally:
        kit.thaw(pid)
    # The thawed worker is healthy and back at work: it runs a later job to success. Its main
    # loop is sequential, so by then its late finish has been tried and refused.
    assert _runs_a_job(http, store, kit, frozen), f"{frozen} did not take new work after SIGCONT"
    after = store.get(job_id)
    assert after == winner, "the late worker changed the winner's record"
    assert _sha256(video) == digest and video.stat().st_mtime_ns == mtime
    assert mp4s(output, job_id) == [winner["video"]] == [f"{job_id}-a2.mp4"]
    assert not list(output.glob(f"{job_id}-a1*")), "the refused late write left its file"


def _runs_a_job(http, store, kit, worker: str, timeout: float = 120) -> bool:
    """Submit jobs one at a time until `worker` runs one (the other worker takes some too)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = kit.wait_finished(store, [submit(http, kit.QUICK)], timeout=60)[0]
        assert job["status"] == "succeeded", job
        if job["worker"] == worker:
            return True
    return False


@contextlib.contextmanager
def small_volume(path: Path, size: str = "512k"):
    """A real, small filesystem (tmpfs) mounted over the output directory for the test."""
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()}); needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def fill(volume: Path) -> Path:
    filler = volume / "filler"
    with open(filler, "wb", buffering=0) as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0" * 65536)
    return filler


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_output_volume_full_or_unwritable_fails_the_job_and_the_worker_goes_on(
    healthy_stack, http, store, kit, fault
):
    output = Path(healthy_stack.settings.output_dir)
    with small_volume(output):
        if fault == "full":
            filler = fill(output)
        else:
            subprocess.run(["mount", "-o", "remount,ro", str(output)], check=True)
        failing = submit(http, kit.QUICK)
        job = kit.wait_finished(store, [failing], timeout=60)[0]
        assert job["status"] == "failed" and job["attempts"] == 1, job
        if fault == "full":
            assert job["error"] == f"output volume full: no space left in {output}"
            filler.unlink()
        else:
            assert job["error"].startswith(f"output directory {output} is not writable")
            assert "Read-only file system" in job["error"]
            subprocess.run(["mount", "-o", "remount,rw", str(output)], check=True)
        assert not list(output.glob(f"{failing}*")), "the failed write left a file"
        response = http.get(f"/v1/jobs/{failing}").json()
        assert response["status"] == "failed" and response["error"] == job["error"]
        # The very worker that failed is still alive and takes the next job to success.
        assert _runs_a_job(http, store, kit, job["worker"]), job["worker"]
