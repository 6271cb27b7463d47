"""Redis stalled mid-call (SIGSTOP past the client's socket timeout, then SIGCONT): the sync
client sends the command again and Redis runs both sends, yet every effect happens once. Submit,
claim, cancel and finish are checked through the store, /generate and POST /v1/jobs through the
real API over HTTP: the queue, the account's queued counter and the answers."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import Counter

import httpx
import pytest
import uvicorn

from service import auth
from service.api import create_app
from service.config import Settings
from service.jobstore import (
    QUEUE,
    QUEUED_PER_ACCOUNT,
    JobStore,
    RateLimited,
    Submission,
    connect,
)
from service.polling import wait_until
from service.processes import free_port

SOCKET_TIMEOUT = 0.5
# Past one timeout (the first send gives up), within two (the resent command is answered).
STALL = 1.5 * SOCKET_TIMEOUT
JOB = {"prompt": "exactly once", "num_frames": 7, "height": 64, "width": 64}
QUICK = {**JOB, "num_inference_steps": 2, "guidance_scale": 0.0}


@contextlib.contextmanager
def stalled(server, seconds: float = STALL):
    """Redis frozen now and thawed after `seconds`, whatever the block does meanwhile."""
    pid = server.process.pid
    os.kill(pid, signal.SIGSTOP)
    thaw = threading.Timer(seconds, os.kill, (pid, signal.SIGCONT))
    thaw.start()
    try:
        yield
    finally:
        thaw.join()


def script_runs(admin) -> int:
    return admin.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)


def queued_count(admin, account: str) -> int:
    return int(admin.hget(QUEUED_PER_ACCOUNT, account) or 0)


@pytest.fixture
def admin(redis_server):
    client = redis_server.client(socket_timeout=10)
    yield client
    client.close()


@pytest.fixture
def store(redis_server) -> JobStore:
    """The store as services make it: connect(), which resends a command that timed out. Every
    script has run once (loaded), so a stalled call sends only its EVALSHA."""
    settings = Settings(redis_url=redis_server.url)
    warm = JobStore(connect(settings, socket_timeout=SOCKET_TIMEOUT))
    for _ in range(2):
        warm.create("warm-up", JOB)
    claim = warm.claim("warm-up")
    warm.finish(claim, "warm-up", "succeeded", video="warm.mp4")
    warm.cancel(warm.claim("warm-up").job_id, "warm-up")
    warm.cancel(warm.create("warm-up", JOB)[0]["id"], "warm-up")
    warm.reap_expired()
    assert warm.queue_length() == 0
    return warm


def test_submit_stalled_past_the_timeout_enqueues_once(redis_server, store, admin):
    before = script_runs(admin)
    with stalled(redis_server):
        job, created = store.create("acct", JOB, idempotency="k1")
    assert script_runs(admin) - before == 2, "the stall did not make the client resend"
    assert created and job["status"] == "queued"
    assert [v.decode() for v in admin.lrange(QUEUE, 0, -1)] == [job["id"]]
    assert queued_count(admin, "acct") == 1
    assert admin.zcard("mochi:account:acct:jobs") == 1
    assert store.create("acct", JOB, idempotency="k1") == (store.get(job["id"]), False)


def test_submit_by_api_key_counts_once_against_the_rate_limit(redis_server, store, admin):
    key = auth.add_key(admin, "keyed")
    # One submission a minute: a resend counted as a second would be refused.
    once_a_minute = Submission("key", auth.digest(key), JOB, 3, 10, rate_per_minute=1)
    before = script_runs(admin)
    with stalled(redis_server):
        job, created = store.submit(once_a_minute)
    assert script_runs(admin) - before == 2
    assert created and job["id"] == once_a_minute.job_id and job["account"] == "keyed"
    assert store.queue_length() == 1 and queued_count(admin, "keyed") == 1
    with pytest.raises(RateLimited):
        store.submit(Submission("key", auth.digest(key), JOB, 3, 10, rate_per_minute=1))


def test_claim_stalled_past_the_timeout_takes_one_job(redis_server, store, admin):
    first = store.create("acct", JOB)[0]["id"]
    second = store.create("acct", JOB)[0]["id"]
    before = script_runs(admin)
    with stalled(redis_server):
        claim = store.claim("w1")
    assert script_runs(admin) - before == 2
    assert claim.job_id == first and claim.attempt == 1
    assert [v.decode() for v in admin.lrange(QUEUE, 0, -1)] == [second]
    assert queued_count(admin, "acct") == 1
    assert store.get(first)["status"] == "starting" and store.get(first)["worker"] == "w1"
    assert store.get(second)["status"] == "queued" and store.get(second)["attempts"] == 0
    assert store.claim("w2").job_id == second


def test_cancel_stalled_past_the_timeout_answers_success(redis_server, store, admin):
    running = store.create("acct", JOB)[0]["id"]
    claim = store.claim("w")
    queued = store.create("acct", JOB)[0]["id"]
    waiting = store.create("acct", JOB)[0]["id"]
    before = script_runs(admin)
    with stalled(redis_server):
        answer = store.cancel(queued, "acct")
    assert script_runs(admin) - before == 2
    assert answer == "canceled" and store.get(queued)["status"] == "canceled"
    assert [v.decode() for v in admin.lrange(QUEUE, 0, -1)] == [waiting]
    assert queued_count(admin, "acct") == 1

    before = script_runs(admin)
    with stalled(redis_server):
        answer = store.cancel(running, "acct")
    assert script_runs(admin) - before == 2
    assert answer == "canceling" and store.get(running)["cancel_requested"] == 1
    assert store.heartbeat(claim, "w", 1) == "cancel"


def test_finish_stalled_past_the_timeout_records_the_result(redis_server, store, admin):
    job_id = store.create("acct", JOB)[0]["id"]
    claim = store.claim("w")
    before = script_runs(admin)
    with stalled(redis_server):
        recorded = store.finish(claim, "w", "succeeded", video=f"{job_id}-a1.mp4")
    assert script_runs(admin) - before == 2
    assert recorded
    job = store.get(job_id)
    assert job["status"] == "succeeded" and job["video"] == f"{job_id}-a1.mp4"
    assert admin.zscore("mochi:leases", job_id) is None
    assert store.queue_length() == 0 and queued_count(admin, "acct") == 0


# --- through the API, over real HTTP ----------------------------------------------------------


@pytest.fixture
def api(redis_server, admin, tmp_path):
    """The real app served by uvicorn on 127.0.0.1; its sync client has the short timeout."""
    settings = Settings(redis_url=redis_server.url, output_dir=str(tmp_path))
    app = create_app(settings, client=connect(settings, socket_timeout=SOCKET_TIMEOUT))
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert wait_until(lambda: server.started, 20, 0.05), "API did not start"
    key = auth.add_key(admin, "alice")
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as http:
        yield http
    server.should_exit = True
    thread.join(timeout=10)


class Submitter(threading.Thread):
    """Submits one job under its own Idempotency-Key, resending after a 503 until accepted."""

    def __init__(self, http: httpx.Client, path: str, key: str):
        super().__init__(daemon=True)
        self.http, self.path, self.key = http, path, key
        self.answers: list[httpx.Response] = []

    def run(self) -> None:
        while not self.answers or self.answers[-1].status_code == 503:
            response = self.http.post(self.path, json=QUICK, headers={"Idempotency-Key": self.key})
            self.answers.append(response)
            if response.status_code == 503:
                time.sleep(0.05)

    def job_ids(self) -> set[str]:
        return {r.json()["id"] for r in self.answers if r.status_code == 202}


def test_submissions_through_the_api_with_redis_stalled_queue_each_job_once(
    redis_server, api, admin
):
    requests = 0
    submitters: list[Submitter] = []
    for round_number in range(20):
        before = script_runs(admin)
        batch = [
            Submitter(api, path, f"r{round_number}-{index}")
            for index, path in enumerate(["/generate", "/v1/jobs"] * 6)
        ]
        for submitter in batch:
            submitter.start()
        time.sleep(0.005 * (round_number % 5))
        with stalled(redis_server):
            pass
        for submitter in batch:
            submitter.join(timeout=60)
        submitters += batch
        requests_now = sum(len(s.answers) for s in batch)
        requests += requests_now
        if script_runs(admin) - before > requests_now:
            break  # some submit script ran twice: a resend caught mid-call
    else:
        pytest.fail("no stall caught a submission mid-call in 20 rounds")

    answers = [r for s in submitters for r in s.answers]
    assert Counter(r.status_code for r in answers).keys() <= {202, 503}
    for refused in (r for r in answers if r.status_code == 503):
        assert refused.json()["error"] == "job store unavailable, retry shortly"
        assert int(refused.headers["retry-after"]) > 0
    per_key = [s.job_ids() for s in submitters]
    assert all(len(ids) == 1 for ids in per_key), "a key's answers named different jobs"
    accepted = [ids.pop() for ids in per_key]
    queue = [v.decode() for v in admin.lrange(QUEUE, 0, -1)]
    assert sorted(queue) == sorted(accepted), "the queue holds other or doubled jobs"
    assert queued_count(admin, "alice") == len(accepted)
    assert admin.zcard("mochi:account:alice:jobs") == len(accepted)
    listing = api.get("/v1/jobs", params={"limit": 100}).json()
    assert listing["total"] == len(accepted)


def test_async_submit_stalled_past_its_timeout_is_a_503_that_a_retry_resolves(
    redis_server, api, admin
):
    # Just before: the API's Redis memory reading is fresh, so the stall meets the submit.
    earlier = api.post("/v1/jobs", json=QUICK, headers={"Idempotency-Key": "earlier"})
    assert earlier.status_code == 202, earlier.text
    headers = {"Idempotency-Key": "stalled-async"}
    with stalled(redis_server, seconds=6.0):  # the async client's own timeout is 5 s
        refused = api.post("/v1/jobs", json=QUICK, headers=headers)
    assert refused.status_code == 503, refused.text
    assert int(refused.headers["retry-after"]) > 0
    assert wait_until(lambda: admin.llen(QUEUE) == 2, 5, 0.05), "the lost send never ran"
    retried = api.post("/v1/jobs", json=QUICK, headers=headers)
    assert retried.status_code == 202, retried.text
    queue = [v.decode() for v in admin.lrange(QUEUE, 0, -1)]
    assert queue == [earlier.json()["id"], retried.json()["id"]]
    assert queued_count(admin, "alice") == 2
    again = api.post("/generate", json=QUICK, headers=headers)
    assert again.status_code == 202 and again.json()["id"] == retried.json()["id"]
