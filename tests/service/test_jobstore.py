"""The Redis state machine: atomic claims under races, fencing, the reaper, AOF durability."""

import threading
import time

import pytest
import redis

from service.jobstore import QUEUE, JobStore, QueueFull


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
