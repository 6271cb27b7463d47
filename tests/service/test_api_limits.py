"""The API's limits over a real Redis: authentication before the body, a per-client cap on
failed authentications, the leaky-bucket submission rate across a minute boundary, and new
submissions refused while Redis memory is at its high-water mark."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from service import auth
from service.api import create_app
from service.auth_failures import FailedAuthLimiter
from service.redis_memory import counted_memory

VALID = {"prompt": "a limited test", "num_frames": 7, "height": 64, "width": 64}
UNKNOWN = {"Authorization": f"Bearer {auth.new_key()}"}
JSON = {"Content-Type": "application/json"}

BAD_BODIES = [
    b'{"prompt": ',
    b'{"prompt": "", "num_frames": 8}',
    b'{"prompt": "a", "colour": "red"}',
    b'{"prompt": "a", "num_frames": 163, "height": 848, "width": 848, "account_id": "x"}',
    b"[]",
]


@pytest.mark.parametrize("path", ["/v1/jobs", "/generate"])
@pytest.mark.parametrize("body", BAD_BODIES)
def test_an_unknown_key_with_a_bad_body_is_401_and_no_detail(api, path, body):
    refused = api.post(path, content=body, headers={**UNKNOWN, **JSON})
    assert refused.status_code == 401, refused.text
    assert refused.json() == {"error": "unknown API key"}
    assert refused.headers["www-authenticate"] == "Bearer"
    known = api.post(path, content=body, headers={**api.as_user("alice"), **JSON})
    assert known.status_code == 422, known.text


def test_an_unknown_key_hears_nothing_about_its_headers_or_query(api):
    bad_idempotency = api.post(
        "/v1/jobs", json=VALID, headers={**UNKNOWN, "Idempotency-Key": "x" * 500}
    )
    assert bad_idempotency.status_code == 401
    assert api.get("/v1/jobs?limit=0", headers=UNKNOWN).status_code == 401
    assert api.get("/v1/jobs?limit=0", headers=api.as_user("alice")).status_code == 422


def test_an_unknown_key_is_401_even_for_a_job_no_worker_can_run(settings, redis_client):
    on_24gib_gpus = replace(settings, model="genmo/mochi-1-preview", worker_gpu_memory_gib=24.0)
    big = {"prompt": "x", "num_frames": 163, "height": 848, "width": 848}
    with TestClient(create_app(on_24gib_gpus)) as client:
        assert client.post("/v1/jobs", json=big, headers=UNKNOWN).status_code == 401
        known = {"Authorization": f"Bearer {auth.add_key(redis_client, 'carol')}"}
        assert client.post("/v1/jobs", json=big, headers=known).status_code == 422


def test_failed_authentications_per_client_are_capped_with_retry_after(settings, redis_client):
    per_minute = 5
    capped = replace(settings, auth_failures_per_minute=per_minute)
    good = {"Authorization": f"Bearer {auth.add_key(redis_client, 'alice')}"}
    app = create_app(capped)
    with TestClient(app, client=("192.0.2.7", 4000)) as attacker:
        for method, path in [
            ("GET", "/v1/jobs"),
            ("POST", "/v1/jobs"),
            ("POST", "/generate"),
            ("GET", "/v1/jobs/" + "0" * 32),
            ("POST", "/v1/jobs"),
        ]:
            assert attacker.request(method, path, json=VALID, headers=UNKNOWN).status_code == 401
        for method, path, headers in [
            ("GET", "/v1/jobs", UNKNOWN),
            ("POST", "/v1/jobs", UNKNOWN),
            ("GET", "/v1/jobs", {}),
            ("GET", "/v1/jobs", good),  # the address is refused before any key is looked up
        ]:
            refused = attacker.request(method, path, json=VALID, headers=headers)
            assert refused.status_code == 429, refused.text
            assert 1 <= int(refused.headers["retry-after"]) <= 60 / per_minute + 1
            assert "too many failed authentications from 192.0.2.7" in refused.json()["error"]
        assert attacker.get("/healthz").status_code == 200
    with TestClient(app, client=("198.51.100.9", 4000)) as neighbour:
        assert neighbour.get("/v1/jobs", headers=good).status_code == 200
        assert neighbour.get("/v1/jobs", headers=UNKNOWN).status_code == 401


def test_the_failure_cap_drains_at_its_rate():
    now = [1000.0]
    limiter = FailedAuthLimiter(per_minute=6, clock=lambda: now[0])
    for _ in range(6):
        assert limiter.retry_after("a") is None
        limiter.failed("a")
    assert limiter.retry_after("a") == 10  # one failure drains every 60 / 6 seconds
    assert limiter.retry_after("b") is None
    now[0] += 10
    assert limiter.retry_after("a") is None
    limiter.failed("a")
    assert limiter.retry_after("a") == 10
    assert FailedAuthLimiter(per_minute=0).retry_after("a") is None  # 0: no cap


def test_submission_rate_is_not_refilled_at_a_minute_boundary(settings, redis_client):
    """The old fixed-minute window let `limit` more through at each minute boundary (twice the
    limit within a second); a leaky bucket refills at limit / 60 a second wherever it is.
    Spends the limit in the seconds before a minute boundary (waiting for one if needed), then
    submits just after it."""
    per_minute = 30  # drains one submission each 2 s
    limited = replace(settings, rate_limit_per_minute=per_minute)
    key = auth.add_key(redis_client, "alice")
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(limited)) as api:
        wait_for_second_of_minute(redis_client, 58.0)
        accepted = [api.post("/v1/jobs", json=VALID, headers=headers) for _ in range(per_minute)]
        assert [r.status_code for r in accepted] == [202] * per_minute
        refused = api.post("/generate", json=VALID, headers=headers)
        assert refused.status_code == 429
        wait_for_second_of_minute(redis_client, 0.3)
        after_boundary = [api.post("/v1/jobs", json=VALID, headers=headers) for _ in range(3)]
        statuses = [r.status_code for r in after_boundary]
        assert statuses.count(202) <= 1, statuses  # at most what ~2.3 s of draining frees
        last = after_boundary[-1]
        assert last.status_code == 429 and "rate limit of 30" in last.json()["error"]
        retry_after = int(last.headers["retry-after"])
        assert 1 <= retry_after <= 2
        time.sleep(retry_after + 0.1)
        assert api.post("/v1/jobs", json=VALID, headers=headers).status_code == 202
        assert api.post("/v1/jobs", json=VALID, headers=headers).status_code == 429


def wait_for_second_of_minute(client, second: float) -> None:
    """Sleep until Redis' clock (the one the rate limit reads) is `second` into a minute."""
    seconds, micros = client.time()
    into_minute = seconds % 60 + micros / 1e6
    time.sleep((second - into_minute) % 60)


FILLER_KEYS = 24_000


def fill(client) -> None:
    """About 30 MiB in 1 KiB values, sent in small batches: the client buffers Redis frees
    later (a few hundred KiB) are then a small share of what it uses."""
    for start in range(0, FILLER_KEYS, 200):
        with client.pipeline(transaction=False) as pipe:
            for index in range(start, start + 200):
                pipe.set(f"filler:{index}", b"x" * 1024)
            pipe.execute()


def fill_to(client, share_of_maxmemory: float) -> None:
    """Fill Redis with data, then set maxmemory so that the data uses this share of it."""
    client.config_set("maxmemory", 0)
    fill(client)
    used = counted_memory(client.info("memory"))
    client.config_set("maxmemory", int(used / share_of_maxmemory))


def empty(client) -> None:
    for start in range(0, FILLER_KEYS, 1000):
        client.delete(*(f"filler:{index}" for index in range(start, start + 1000)))


def test_submissions_are_refused_at_the_redis_high_water_mark(api, redis_client):
    alice = api.as_user("alice")
    job_id = api.post("/v1/jobs", json=VALID, headers=alice).json()["id"]
    fill_to(redis_client, 0.95)
    time.sleep(1.1)  # the API reads INFO memory at most once a second
    for path in ("/v1/jobs", "/generate"):
        refused = api.post(path, json=VALID, headers=alice)
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["retry-after"]) > 0
        message = refused.json()["error"]
        assert "MiB of its maxmemory" in message and "refused from 90%" in message
    assert redis_client.llen("mochi:queue") == 1
    assert api.get("/v1/jobs", headers=alice).json()["total"] == 1
    assert api.get(f"/v1/jobs/{job_id}", headers=alice).status_code == 200
    assert api.post(f"/v1/jobs/{job_id}/cancel", headers=alice).status_code == 202
    assert api.get("/healthz").status_code == 200
    assert api.post("/v1/jobs", json=VALID, headers=UNKNOWN).status_code == 401

    empty(redis_client)
    time.sleep(1.1)
    assert api.post("/v1/jobs", json=VALID, headers=alice).status_code == 202


def test_no_maxmemory_means_no_high_water_mark(api, redis_client):
    redis_client.config_set("maxmemory", 0)
    fill(redis_client)
    assert api.post("/v1/jobs", json=VALID, headers=api.as_user("alice")).status_code == 202
