"""Retention on a real Redis: an ended job's record, idempotency key and list entry expire after
result_ttl_seconds; list totals stay right; unfinished jobs never expire; prompts are UTF-8."""

import json
import time

import redis

from service.jobstore import JobStore
from service.keys import (
    EXPIRING,
    QUEUED_PER_ACCOUNT,
    account_jobs_key,
    idempotency_key,
    job_key,
)
from service.polling import wait_until

TTL = 1.0


def store_on(server, **kwargs) -> JobStore:
    return JobStore(redis.Redis.from_url(server.url), **kwargs)


def gone(store: JobStore, job_id: str) -> bool:
    return store.get(job_id) is None


def test_a_finished_job_expires_with_its_idempotency_key_and_list_entry(redis_server):
    store = store_on(redis_server, result_ttl_seconds=TTL)
    job_id = store.create("acct", {"prompt": "x"}, idempotency="order-1")[0]["id"]
    claim = store.claim("w")
    assert store.finish(claim, "w", "succeeded", video=f"{job_id}-a1.mp4")
    idem = idempotency_key("acct", "order-1")
    assert 0 < store.redis.pttl(job_key(job_id)) <= TTL * 1000
    assert 0 < store.redis.pttl(idem) <= TTL * 1000

    assert wait_until(lambda: gone(store, job_id), 5, 0.05)
    assert store.redis.exists(idem) == 0
    assert store.list_for_account("acct", 0, 10) == ([], 0)
    assert store.redis.exists(account_jobs_key("acct"), EXPIRING) == 0
    assert store.existing([job_id]) == set()
    # The key is free again: a new submission with it makes a new job.
    again, created = store.create("acct", {"prompt": "y"}, idempotency="order-1")
    assert created and again["id"] != job_id


def test_unfinished_jobs_never_expire_and_list_totals_count_only_live_jobs(redis_server):
    store = store_on(redis_server, result_ttl_seconds=TTL)
    ids = [store.create("acct", {"prompt": str(i)})[0]["id"] for i in range(4)]
    finished, canceled, running, queued = ids
    claim = store.claim("w")
    assert claim.job_id == finished
    assert store.finish(claim, "w", "failed", "boom")
    assert store.cancel(canceled, "acct") == "canceled"
    assert store.claim("w").job_id == running
    assert store.list_for_account("acct", 0, 10)[1] == 4

    assert wait_until(lambda: gone(store, finished) and gone(store, canceled), 5, 0.05)
    jobs, total = store.list_for_account("acct", 0, 10)
    assert total == 2 and [job["id"] for job in jobs] == [queued, running]
    assert store.redis.pttl(job_key(running)) == -1 and store.redis.pttl(job_key(queued)) == -1
    assert store.existing(ids) == {running, queued}
    assert int(store.redis.hget(QUEUED_PER_ACCOUNT, "acct")) == 1


def test_jobs_the_reaper_ends_expire_too(redis_server):
    store = store_on(redis_server, lease_seconds=0.1, max_attempts=1, result_ttl_seconds=TTL)
    failed = store.create("acct", {"prompt": "x"})[0]["id"]
    store.claim("w")
    canceled = store.create("acct", {"prompt": "y"})[0]["id"]
    store.claim("w")
    assert store.cancel(canceled, "acct") == "canceling"
    time.sleep(0.2)
    assert sorted(store.reap_expired()) == sorted([(failed, "failed"), (canceled, "canceled")])
    assert 0 < store.redis.pttl(job_key(failed)) <= TTL * 1000
    assert 0 < store.redis.pttl(job_key(canceled)) <= TTL * 1000
    assert wait_until(lambda: gone(store, failed) and gone(store, canceled), 5, 0.05)
    # The reaper's own pass clears the list, with nobody listing or submitting.
    store.reap_expired()
    assert store.redis.zcard(account_jobs_key("acct")) == 0


def test_one_accounts_submissions_clear_another_accounts_expired_entries(redis_server):
    store = store_on(redis_server, result_ttl_seconds=TTL)
    ids = [store.create("idle", {"prompt": str(i)})[0]["id"] for i in range(3)]
    assert [store.cancel(job_id, "idle") for job_id in ids] == ["canceled"] * 3
    assert store.redis.zcard(account_jobs_key("idle")) == 3
    assert wait_until(lambda: not store.existing(ids), 5, 0.05)
    store.create("busy", {"prompt": "x"})
    assert store.redis.zcard(account_jobs_key("idle")) == 0
    assert store.redis.zcard(EXPIRING) == 0


def test_prompts_are_stored_as_utf8_and_old_escaped_records_still_read(redis_server):
    store = store_on(redis_server)
    prompt = "héron au crépuscule, 鷺, 🐦"
    job_id = store.create("acct", {"prompt": prompt})[0]["id"]
    raw = store.redis.hget(job_key(job_id), "params")
    assert prompt.encode() in raw and b"\\u" not in raw
    assert len(raw) == len(json.dumps({"prompt": prompt}, ensure_ascii=False).encode())
    assert store.get(job_id)["params"]["prompt"] == prompt
    assert store.claim("w").params["prompt"] == prompt

    old = "0123456789abcdef0123456789abcdef"
    store.redis.hset(
        job_key(old),
        mapping={
            "id": old,
            "account": "acct",
            "status": "succeeded",
            "params": json.dumps({"prompt": prompt}),  # the old encoding: \uXXXX escapes
            "metrics": json.dumps({"note": "é"}),
            "created_at": "1.5",
        },
    )
    assert b"\\u00e9" in store.redis.hget(job_key(old), "params")
    job = store.get(old)
    assert job["params"]["prompt"] == prompt and job["metrics"] == {"note": "é"}
