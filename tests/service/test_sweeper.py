"""The file sweeper on a real Redis and real files in the output directory (mtimes set with
os.utime): orphans older than the grace period go, every file a live job owns stays."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from service import sweeper
from service.jobstore import SWEPT_KINDS, JobStore, job_key
from service.processes import free_port
from service.supervisor import Supervisor

JOB = {"prompt": "p", "num_frames": 7, "height": 64, "width": 64, "num_inference_steps": 2}
GRACE = 3600
OLD = time.time() - 2 * GRACE


@pytest.fixture
def store(redis_client):
    return JobStore(redis_client, lease_seconds=30.0, max_attempts=3)


def write(output: Path, name: str, mtime: float = OLD) -> Path:
    path = output / name
    path.write_bytes(b"\0" * 16)
    os.utime(path, (mtime, mtime))
    return path


def succeeded_after_a_lost_attempt(store: JobStore) -> str:
    """A job whose first attempt lost its lease; its second attempt's video is the record's."""
    job_id = store.create("acct", JOB)[0]["id"]
    store.claim("w1")
    store.redis.zadd("mochi:leases", {job_id: 0})  # the lease ran out
    assert store.reap_expired() == [(job_id, "requeued")]
    claim = store.claim("w2")
    assert claim.attempt == 2
    assert store.finish(claim, "w2", "succeeded", video=f"{job_id}-a2.mp4")
    return job_id


@pytest.fixture
def output_dir(settings):
    return Path(settings.output_dir)


def test_orphans_go_and_every_owned_file_stays(store, output_dir):
    finished = succeeded_after_a_lost_attempt(store)
    named = write(output_dir, f"{finished}-a2.mp4")
    lost_attempt = write(output_dir, f"{finished}-a1.mp4")
    stale_partial = write(output_dir, f"{finished}-a2.mp4.partial")

    running = store.create("acct", JOB)[0]["id"]
    assert store.claim("w3").job_id == running
    running_partial = write(output_dir, f"{running}-a1.mp4.partial")
    running_video = write(output_dir, f"{running}-a1.mp4")  # written, not yet recorded

    expired = store.create("acct", JOB)[0]["id"]
    claim = store.claim("w4")
    store.finish(claim, "w4", "succeeded", video=f"{expired}-a1.mp4")
    expired_video = write(output_dir, f"{expired}-a1.mp4")
    expired_partial = write(output_dir, f"{expired}-a2.mp4.partial")
    store.redis.delete(job_key(expired))  # what retention's expiry does to the record

    fresh_orphan = write(output_dir, f"{expired}-a3.mp4", mtime=time.time())
    not_ours = write(output_dir, "notes.txt")
    (output_dir / f"{expired}-a4.mp4").mkdir()

    counts = sweeper.sweep(store, output_dir, GRACE)

    assert counts == {"jobs": 1, "videos": 1, "partials": 2, "attempts": 1}
    gone = {lost_attempt, stale_partial, expired_video, expired_partial}
    kept = {named, running_partial, running_video, fresh_orphan, not_ours}
    assert not any(path.exists() for path in gone)
    assert all(path.exists() for path in kept)
    assert store.redis.hgetall("mochi:swept") == {
        b"jobs": b"1",
        b"videos": b"1",
        b"partials": b"2",
        b"attempts": b"1",
    }
    assert sweeper.sweep(store, output_dir, GRACE) == dict.fromkeys(SWEPT_KINDS, 0)
    assert store.redis.hget("mochi:swept", "partials") == b"2"


def test_files_of_many_jobs_are_checked_in_batches(store, output_dir):
    live = [store.create("acct", JOB)[0]["id"] for _ in range(sweeper.BATCH + 20)]
    for job_id in live:
        write(output_dir, f"{job_id}-a1.mp4.partial")  # queued jobs: never claimed, so orphans
    gone = [f"{n:032x}" for n in range(30)]
    for job_id in gone:
        write(output_dir, f"{job_id}-a1.mp4")
    counts = sweeper.sweep(store, output_dir, GRACE)
    assert counts == {"jobs": 30, "videos": 30, "partials": len(live), "attempts": 0}
    assert list(output_dir.iterdir()) == []


def test_the_supervisor_sweeps_even_while_ray_is_unreachable(settings, store, output_dir):
    unreachable_ray = f"http://127.0.0.1:{free_port()}"
    supervisor = Supervisor(
        replace(settings, ray_dashboard_url=unreachable_ray, orphan_grace_seconds=GRACE)
    )
    job_id = store.create("acct", JOB)[0]["id"]
    store.redis.delete(job_key(job_id))
    orphan = write(output_dir, f"{job_id}-a1.mp4")
    supervisor.tick()
    assert not orphan.exists() and "ConnectError" in supervisor.last_error
    assert not supervisor.sweep_due()  # the next sweep waits its interval
    write(output_dir, f"{job_id}-a2.mp4")
    supervisor.tick()
    assert (output_dir / f"{job_id}-a2.mp4").exists()
    assert store.redis.hget("mochi:swept", "videos") == b"1"


def test_an_unreadable_output_directory_is_reported_not_fatal(settings, store, tmp_path):
    supervisor = Supervisor(replace(settings, output_dir=str(tmp_path / "missing")))
    assert supervisor.sweep_files() == {}
    assert supervisor.last_sweep is not None
