"""The Redis state machine: atomic claims under races, fencing, the reaper, AOF durability."""

import threading
import time

import pytest
import redis

from service.config import Settings
from service.jobstore import (
    IdempotencyConflict,
    JobStore,
    QueueFull,
    Submission,
    VideoName,
    params_hash,
    parse_video_name,
    video_name,
)
from service.keys import (
    POOL_HEARTBEAT,
    POOL_SUBMISSION,
    QUEUE,
    QUEUED_PER_ACCOUNT,
    WORKERS_SEEN,
    idempotency_key,
    job_key,
)
from service.records import BadJobRecord, JobRecord, JobStatus


def store_on(server, **kwargs) -> JobStore:
    return JobStore(redis.Redis.from_url(server.url), **kwargs)


def test_racing_claimers_take_each_job_exactly_once(redis_server):
    store = store_on(redis_server)
    created = {store.create("acct", {"prompt": str(i)})[0]["id"] for i in range(300)}
    claimed: list[str] = []
    lock = threading.Lock()

    def claimer(name):
        own = store_on(redis_server)
        while (claim := own.claim(name)) is not None:
            with lock:
                claimed.append(claim.job_id)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(created)


def test_lost_lease_is_requeued_then_failed_after_the_last_attempt(redis_server):
    store = store_on(redis_server, lease_seconds=0.2, max_attempts=2)
    job_id = store.create("acct", {"prompt": "x"})[0]["id"]
    first = store.claim("w1")
    time.sleep(0.3)
    assert store.reap_expired() == [(job_id, "requeued")]
    job = store.get(job_id)
    assert job["status"] == "queued" and "lease expired" in job["error"]
    second = store.claim("w2")
    assert second.attempt == 2
    time.sleep(0.3)
    assert store.reap_expired() == [(job_id, "failed")]
    job = store.get(job_id)
    assert job["status"] == "failed" and "attempt 2 of 2" in job["error"]
    assert store.heartbeat(first, "w1") == "lost" and store.heartbeat(second, "w2") == "lost"


def test_late_result_of_a_fenced_worker_is_refused(redis_server):
    store = store_on(redis_server, lease_seconds=0.2)
    job_id = store.create("acct", {"prompt": "x"})[0]["id"]
    frozen = store.claim("frozen")
    time.sleep(0.3)
    store.reap_expired()
    winner = store.claim("winner")
    assert store.finish(winner, "winner", "succeeded", video=f"{job_id}-a2.mp4")
    assert not store.finish(frozen, "frozen", "succeeded", video=f"{job_id}-a1.mp4")
    assert store.get(job_id)["video"] == f"{job_id}-a2.mp4"


def test_cancel_of_a_running_job_reaches_its_worker(redis_server):
    store = store_on(redis_server)
    job_id = store.create("acct", {"prompt": "x"})[0]["id"]
    claim = store.claim("w")
    assert store.heartbeat(claim, "w", step=1) == "ok"
    assert store.cancel(job_id, "acct") == "canceling"
    assert store.heartbeat(claim, "w", step=2) == "cancel"
    assert store.finish(claim, "w", "canceled", "canceled by the client")
    assert store.cancel(job_id, "acct") == "already-canceled"


def test_queued_cap_per_account(redis_server):
    store = store_on(redis_server)
    for _ in range(3):
        store.create("acct", {"prompt": "x"}, max_queued=3)
    with pytest.raises(QueueFull):
        store.create("acct", {"prompt": "x"}, max_queued=3)
    store.claim("w")
    assert store.create("acct", {"prompt": "x"}, max_queued=3)[1]


def test_redis_killed_and_restarted_with_aof_loses_no_queued_job(redis_server):
    store = store_on(redis_server)
    created = [store.create("acct", {"prompt": str(i)})[0]["id"] for i in range(200)]
    redis_server.kill()
    redis_server.start()
    after = store_on(redis_server)
    queued = [value.decode() for value in after.redis.lrange(QUEUE, 0, -1)]
    assert queued == created
    assert all(after.get(job_id)["status"] == "queued" for job_id in created)


def test_a_repeated_submission_returns_its_job_and_counts_it_once(redis_server):
    store = store_on(redis_server)
    submission = Submission("account", "acct", {"prompt": "x"}, 3, 10)
    first, created = store.submit(submission)
    again, created_again = store.submit(submission)
    assert created and created_again and again["id"] == first["id"] == submission.job_id
    assert store.queue_length() == 1
    assert store.redis.hget(QUEUED_PER_ACCOUNT, "acct") == b"1"
    assert store.list_for_account("acct", 0, 10)[1] == 1


def test_idempotency_key_remembers_the_body(redis_server):
    store = store_on(redis_server)
    first, created = store.create("acct", {"prompt": "x"}, idempotency="k")
    assert created
    same, created = store.create("acct", {"prompt": "x"}, idempotency="k")
    assert not created and same["id"] == first["id"]
    with pytest.raises(IdempotencyConflict) as conflict:
        store.create("acct", {"prompt": "other"}, idempotency="k")
    assert conflict.value.job_id == first["id"] and "different body" in str(conflict.value)
    assert store.queue_length() == 1
    # A key stored before body hashes existed holds only the job id: it matches any body.
    old = store.create("acct", {"prompt": "old"})[0]["id"]
    store.redis.set(idempotency_key("acct", "legacy"), old)
    assert store.create("acct", {"prompt": "new"}, idempotency="legacy")[0]["id"] == old


def test_the_api_passes_its_body_hash(redis_server):
    store = store_on(redis_server)
    params = {"prompt": "x", "num_frames": 7}
    assert params_hash(params) == params_hash({"num_frames": 7, "prompt": "x"})
    assert Submission.params_hash(params) == params_hash(params)
    made = Submission("account", "acct", params, 3, 10, "k", body_hash=params_hash(params))
    store.submit(made)
    stored = store.redis.get(idempotency_key("acct", "k")).decode()
    assert stored == f"{made.job_id}:{params_hash(params)}"
    changed = Submission("account", "acct", params, 3, 10, "k", body_hash=params_hash({"a": 1}))
    with pytest.raises(IdempotencyConflict):
        store.submit(changed)


def test_claim_and_cancel_repeated_with_their_token_answer_as_the_first_time(redis_server):
    store = store_on(redis_server)
    ids = [store.create("acct", {"prompt": str(i)})[0]["id"] for i in range(2)]
    first = store.claim("w", token="t1")
    assert store.claim("w", token="t1") == first and first.job_id == ids[0]
    assert store.queue_length() == 1 and store.get(ids[1])["attempts"] == 0
    assert store.claim("w2", token="t2").job_id == ids[1]
    assert store.claim("w2", token="t2").job_id == ids[1] and store.queue_length() == 0
    queued = store.create("acct", {"prompt": "q"})[0]["id"]
    assert store.cancel(queued, "acct", token="c1") == "canceled"
    assert store.cancel(queued, "acct", token="c1") == "canceled"
    assert store.cancel(queued, "acct") == "already-canceled"  # a new request: a conflict
    assert store.redis.hget(QUEUED_PER_ACCOUNT, "acct") is None  # zero: the field is dropped
    assert store.cancel(ids[0], "acct", token="c2") == "canceling"
    assert store.cancel(ids[0], "acct", token="c2") == "canceling"


def test_finish_repeated_with_the_same_result_succeeds_and_another_result_is_refused(redis_server):
    store = store_on(redis_server)
    job_id = store.create("acct", {"prompt": "x"})[0]["id"]
    claim = store.claim("w")
    video = video_name(job_id, claim.attempt)
    assert store.finish(claim, "w", "succeeded", video=video)
    assert store.finish(claim, "w", "succeeded", video=video)
    assert not store.finish(claim, "w", "failed", "late")
    assert not store.finish(claim, "intruder", "succeeded", video=video)
    assert store.get(job_id)["status"] == "succeeded"


def test_video_file_names_name_their_job_and_attempt():
    job_id = "0123456789abcdef0123456789abcdef"
    assert video_name(job_id, 2) == f"{job_id}-a2.mp4"
    assert parse_video_name(f"{job_id}-a2.mp4") == VideoName(job_id, 2, False)
    assert parse_video_name(f"{job_id}-a12.mp4.partial") == VideoName(job_id, 12, True)
    for other in ("notes.txt", f"{job_id}.mp4", f"{job_id}-a0.mp4", f"../{job_id}-a1.mp4"):
        assert parse_video_name(other) is None


def test_store_takes_its_retention_from_settings(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    store = JobStore.from_settings(client, Settings(result_ttl_seconds=60, lease_seconds=7.0))
    assert (store.result_ttl_seconds, store.lease_seconds) == (60, 7.0)
    with pytest.raises(ValueError, match="result_ttl_seconds must be above 0"):
        JobStore(client, result_ttl_seconds=0)


# -- the job record: every shape the store writes decodes once, the same for every reader -------


def raw_record(store: JobStore, job_id: str) -> dict:
    return store.redis.hgetall(job_key(job_id))


def test_every_stored_shape_decodes_to_the_record_get_serves(redis_server):
    store = store_on(redis_server, lease_seconds=0.2, max_attempts=2)
    made, _ = store.create("acct", {"prompt": "x", "num_inference_steps": 4}, idempotency="k")
    job_id = made["id"]
    queued = JobRecord.from_redis(raw_record(store, job_id))
    assert (queued.status, queued.account, queued.total_steps) == (JobStatus.QUEUED, "acct", 4)
    assert queued.idempotency == idempotency_key("acct", "k") and queued.worker is None
    # the submit's answer, built without reading the record back, is the record as stored
    assert made == {k: v for k, v in queued.as_dict().items() if k != "idempotency"}

    first = store.claim("w1")
    assert store.heartbeat(first, "w1", step=2) == "ok"
    running = JobRecord.from_redis(raw_record(store, job_id))
    assert (running.status, running.worker, running.step, running.attempts) == (
        JobStatus.RUNNING,
        "w1",
        2,
        1,
    )
    assert running.status.active and not running.status.ended
    assert running.claimed_at <= running.heartbeat_at < running.lease_expires

    time.sleep(0.3)
    assert store.reap_expired() == [(job_id, "requeued")]
    requeued = JobRecord.from_redis(raw_record(store, job_id))
    assert requeued.status == JobStatus.QUEUED and requeued.worker == ""
    assert "lease expired" in requeued.error and requeued.started_at is not None

    second = store.claim("w2")
    assert store.cancel(job_id, "acct", token="c") == "canceling"
    assert store.finish(second, "w2", "canceled", "canceled by the client")
    canceled = JobRecord.from_redis(raw_record(store, job_id))
    assert canceled.status.ended and canceled.cancel_requested
    assert (canceled.cancel_token, canceled.cancel_answer) == ("c", "canceling")
    assert canceled.finished_at >= canceled.started_at
    assert store.get(job_id) == canceled.as_dict()
    assert store.get(job_id)["cancel_requested"] == 1 and store.get(job_id)["status"] == "canceled"


def test_a_succeeded_job_and_a_record_of_few_fields_decode(redis_server):
    store = store_on(redis_server)
    job_id = store.create("acct", {"prompt": "x", "num_inference_steps": 3})[0]["id"]
    claim = store.claim("w")
    video = video_name(job_id, claim.attempt)
    assert store.finish(claim, "w", "succeeded", video=video, metrics={"seconds": 1.5})
    done = JobRecord.from_redis(raw_record(store, job_id))
    assert (done.status, done.step, done.video, done.metrics) == (
        JobStatus.SUCCEEDED,
        3,
        video,
        {"seconds": 1.5},
    )
    assert done.error == "" and done.as_dict()["error"] == ""

    sparse = JobRecord.from_redis({b"id": b"old", b"status": b"failed"})
    assert sparse.as_dict() == {
        "id": "old",
        "status": "failed",
        **dict.fromkeys(
            (
                "created_at",
                "started_at",
                "claimed_at",
                "finished_at",
                "heartbeat_at",
                "lease_expires",
            )
        ),
        **dict.fromkeys(("attempts", "max_attempts", "step", "total_steps"), 0),
        "params": {},
        "metrics": {},
        "cancel_requested": 0,
    }


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"status": "queued"}, "job record has no id"),
        ({"id": "j", "status": "paused"}, "job j: status 'paused' is not one of queued, starting"),
        ({"id": "j"}, "job j: status None is not one of"),
        ({"id": "j", "status": "queued", "attempts": "two"}, "job j: attempts 'two' is not a"),
        ({"id": "j", "status": "queued", "created_at": "noon"}, "job j: created_at 'noon' is not"),
        ({"id": "j", "status": "queued", "params": '{"prompt": "secret'}, "job j: params is not"),
        ({"id": "j", "status": "queued", "metrics": "[1]"}, "job j: metrics is a JSON list, not"),
        ({"id": "j", "status": b"\xff"}, "job record is not UTF-8 text"),
    ],
)
def test_a_record_this_version_cannot_read_names_its_field(fields, message):
    with pytest.raises(BadJobRecord) as bad:
        JobRecord.from_redis(fields)
    assert str(bad.value).startswith(message)
    assert "secret" not in str(bad.value)


# -- the snapshot: one read of everything, for the doctor ---------------------------------------


def test_the_snapshot_reads_the_whole_store_and_reports_bad_records(redis_server):
    store = store_on(redis_server)
    claimed = store.create("acct", {"prompt": "a", "num_frames": 7})[0]["id"]
    waiting = store.create("acct", {"prompt": "b"})[0]["id"]
    long_done = store.create("acct", {"prompt": "c"})[0]["id"]
    store.redis.lrem(QUEUE, 0, long_done)
    store.redis.hset(job_key(long_done), mapping={"status": "succeeded", "finished_at": "1000"})
    assert store.claim("node:1:0").job_id == claimed
    store.redis.hset(job_key("broken"), mapping={"id": "broken", "status": "lost-in-time"})
    store.register_worker("node:1:0", {"model": "tiny", "device_memory_gib": 24.0})
    store.register_worker("node:2:0", {"model": "tiny"})
    store.redis.zadd(WORKERS_SEEN, {"node:2:0": store.server_time() - 60})
    store.redis.set(POOL_HEARTBEAT, store.server_time())
    store.redis.set(POOL_SUBMISSION, "mochi-pool-1")

    snapshot = store.snapshot(15.0, limit=100, finished_within=3600.0)

    assert {job.id: job.status for job in snapshot.jobs} == {
        claimed: JobStatus.STARTING,
        waiting: JobStatus.QUEUED,
    }
    assert snapshot.jobs_scanned == 4 and snapshot.unreadable_count == 1
    [bad] = snapshot.unreadable
    assert bad.key == job_key("broken")
    assert bad.error.startswith("job broken: status 'lost-in-time' is not one of queued")
    assert (snapshot.queue_length, snapshot.leases) == (1, 1)
    assert snapshot.workers["node:1:0"]["device_memory_gib"] == 24.0
    assert set(snapshot.workers) == set(snapshot.workers_seen) == {"node:1:0", "node:2:0"}
    # one rule for "live", in the store's Redis query and in the snapshot's recorded sightings
    assert set(snapshot.live_workers) == {"node:1:0"} == set(store.live_workers(15.0))
    assert set(store.snapshot(120.0, limit=100).live_workers) == {"node:1:0", "node:2:0"}
    assert snapshot.pool_submission == "mochi-pool-1"
    assert abs(snapshot.pool_heartbeat - snapshot.server_time) < 5
    everything = store.snapshot(15.0, limit=100)
    assert {job.id for job in everything.jobs} == {claimed, waiting, long_done}


def test_the_snapshot_stops_at_its_limit_and_when_told(redis_server):
    store = store_on(redis_server)
    for i in range(30):
        store.create("acct", {"prompt": str(i)})
    assert store.snapshot(15.0, limit=10).jobs_scanned == 10
    asked = []

    def stop() -> bool:
        asked.append(True)
        return True

    stopped = store.snapshot(15.0, limit=100, stop=stop)
    assert stopped.jobs_scanned == 1 and len(stopped.jobs) == 1 and asked
    assert stopped.queue_length == 30
