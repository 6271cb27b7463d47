"""Security: API keys required on every job endpoint, looked up by SHA-256 digest (so no secret
byte is ever compared in Python, nor sent to Redis), stored only hashed, never logged nor echoed
in errors or /metrics; per-account isolation on every endpoint; per-account rate limit and
queued-job cap answered 429 with Retry-After."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from dataclasses import replace
from pathlib import Path

import httpx
import redis

from service import auth

VALID = {"prompt": "a secure test", "num_frames": 7, "height": 64, "width": 64}
DIGEST = re.compile(r"^[0-9a-f]{64}$")


def operations(app) -> list[tuple[str, str, bool]]:
    """(method, path, needs a key) for every operation of the app's own spec."""
    found = []
    for path, methods in app.openapi()["paths"].items():
        for method, operation in methods.items():
            names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            found.append((method.upper(), path, "authorization" in names))
    return found


def call(api, method, path, headers=None):
    path = path.replace("{job_id}", "0" * 32)
    body = VALID if method == "POST" else None
    return api.request(method, path, json=body, headers=headers or {})


def test_every_job_endpoint_requires_a_key_and_unknown_keys_are_401(api, redis_client, kit):
    ops = operations(api.app)
    keyed = {(method, path) for method, path, needs_key in ops if needs_key}
    job_routes = {(m, p) for m, p, _ in ops if p.startswith("/v1/jobs") or p == "/generate"}
    assert keyed == job_routes and len(job_routes) == 6, ops
    before = kit.stored_state(redis_client)
    almost = api.keys["alice"][:-1] + ("A" if api.keys["alice"][-1] != "A" else "B")
    for method, path in sorted(keyed):
        for headers in (
            {},
            {"Authorization": "Bearer mk_not-a-key"},
            {"Authorization": f"Bearer {almost}"},  # one character off
            {"Authorization": f"Basic {api.keys['alice']}"},
            {"Authorization": api.keys["alice"]},
            {"X-API-Key": api.keys["alice"]},
        ):
            response = call(api, method, path, headers)
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert api.keys["alice"] not in response.text
    assert kit.stored_state(redis_client) == before


def test_keys_are_looked_up_by_digest_and_never_sent_to_redis(api, redis_server):
    """How the comparison is constant time: the API hashes the presented key (SHA-256, fixed
    work whatever the key) and Redis looks the digest up in a hash table; no byte of a stored
    secret is compared with the presented one in Python, so timing tells nothing about it.
    MONITOR proves only the digest crosses the wire."""
    key = api.keys["alice"]
    seen: list[str] = []
    ready = threading.Event()

    def watch():
        with redis.Redis.from_url(redis_server.url).monitor() as monitor:
            ready.set()
            for command in monitor.listen():
                seen.append(command["command"])
                if "stop-monitor" in command["command"]:
                    return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert ready.wait(10)
    time.sleep(0.2)
    assert api.get("/v1/jobs", headers=api.as_user("alice")).status_code == 200
    assert api.post("/v1/jobs", json=VALID, headers=api.as_user("alice")).status_code == 202
    assert api.post("/generate", json=VALID, headers=api.as_user("alice")).status_code == 202
    redis.Redis.from_url(redis_server.url).get("stop-monitor")
    watcher.join(10)
    wire = "\n".join(seen)
    assert auth.digest(key) in wire
    assert key not in wire and key[3:] not in wire
    assert auth.digest(key) == hashlib.sha256(key.encode()).hexdigest()


def dump(client: redis.Redis) -> bytes:
    """Every key and every value of every type in the Redis."""
    parts = []
    for key in client.scan_iter(count=1000):
        parts.append(key)
        kind = client.type(key)
        if kind == b"string":
            parts.append(client.get(key))
        elif kind == b"hash":
            parts.extend(b for pair in client.hgetall(key).items() for b in pair)
        elif kind == b"list":
            parts.extend(client.lrange(key, 0, -1))
        elif kind == b"set":
            parts.extend(client.smembers(key))
        elif kind == b"zset":
            parts.extend(member for member, _ in client.zrange(key, 0, -1, withscores=True))
        elif kind == b"stream":
            parts.extend(repr(entry).encode() for entry in client.xrange(key))
    return b"\n".join(parts)


def test_keys_stored_only_as_digests_including_bootstrap_keys(api_settings, redis_client, kit):
    bootstrap = {"carol": auth.new_key(), "dave": auth.new_key()}
    settings = replace(
        api_settings, bootstrap_api_keys=",".join(f"{a}:{k}" for a, k in bootstrap.items())
    )
    with kit.make_api(settings, redis_client) as api:
        keys = {**api.keys, **bootstrap}
        for account in keys:
            headers = {"Authorization": f"Bearer {keys[account]}"}
            body = {**VALID, "prompt": f"job of {account}"}
            assert api.post("/v1/jobs", json=body, headers=headers).status_code == 202
    stored = redis_client.hgetall("mochi:api-keys")
    assert all(DIGEST.match(field.decode()) for field in stored)
    assert {value.decode() for value in stored.values()} == set(keys)
    everything = dump(redis_client)
    for key in keys.values():
        assert key.encode() not in everything and key[3:].encode() not in everything
    assert "carol:" not in repr(settings) and bootstrap["carol"] not in repr(settings)


def test_secrets_never_in_errors_readyz_or_metrics(api_settings, api, redis_client, kit):
    key = api.keys["alice"]
    answers = [
        api.post("/v1/jobs", json={**VALID, "prompt": ""}, headers=api.as_user("alice")),
        api.post("/v1/jobs", json=VALID, headers={**api.as_user("alice"), "Idempotency-Key": ""}),
        api.get("/v1/jobs/" + "f" * 32, headers=api.as_user("alice")),
        api.get("/v1/jobs?limit=0", headers=api.as_user("alice")),
        api.get("/v1/jobs", headers={"Authorization": f"Bearer {key}x"}),
        api.post("/generate", json={**VALID, "account_id": "bob"}, headers=api.as_user("alice")),
        api.get("/metrics"),
        api.get("/readyz"),
        api.get("/version"),
    ]
    for response in answers:
        assert key not in response.text and key[3:] not in response.text
        assert auth.digest(key) not in response.text
    # Redis credentials stay out of /readyz's reason when Redis is unreachable.
    secret_settings = replace(
        api_settings,
        redis_url="redis://mochi:url-secret-9f2@127.0.0.1:1/0",
        redis_password="password-secret-4e1",
    )
    with kit.make_api(secret_settings, redis_client) as broken:
        for path in ("/readyz", "/metrics", "/v1/jobs"):
            response = broken.get(path, headers={"Authorization": "Bearer mk_x"})
            assert "secret" not in response.text, (path, response.text)
        assert broken.get("/readyz").status_code == 503
    assert "password-secret" not in repr(secret_settings)


def test_rate_limit_per_account_is_429_with_retry_after(api_settings, redis_client, kit):
    """Submissions are limited per account and minute (reads are not: they spend no GPU)."""
    per_minute = 4
    settings = replace(api_settings, rate_limit_per_minute=per_minute)
    seconds, _ = redis_client.time()
    if 60 - seconds % 60 < 8:  # the window turns over at the minute: start in a fresh one
        time.sleep(60 - seconds % 60 + 0.5)
    with kit.make_api(settings, redis_client) as api:
        alice = api.as_user("alice")
        for _ in range(per_minute):
            assert api.post("/v1/jobs", json=VALID, headers=alice).status_code == 202
        before = kit.stored_state(redis_client)
        for path in ("/v1/jobs", "/generate"):
            refused = api.post(path, json=VALID, headers=alice)
            assert refused.status_code == 429, refused.text
            assert 1 <= int(refused.headers["retry-after"]) <= 60
            assert "rate limit" in refused.json()["error"]
        assert kit.stored_state(redis_client) == before
        assert api.get("/v1/jobs", headers=alice).json()["total"] == per_minute
        assert api.post("/v1/jobs", json=VALID, headers=api.as_user("bob")).status_code == 202


def test_queued_job_cap_per_account_is_429_and_frees_up(api_settings, redis_client, kit):
    settings = replace(api_settings, max_queued_per_account=3)
    with kit.make_api(settings, redis_client) as api:
        alice = api.as_user("alice")
        ids = [api.post("/v1/jobs", json=VALID, headers=alice).json()["id"] for _ in range(3)]
        before = kit.stored_state(redis_client)
        for path in ("/v1/jobs", "/generate"):
            refused = api.post(path, json=VALID, headers=alice)
            assert refused.status_code == 429, refused.text
            assert int(refused.headers["retry-after"]) > 0
            assert "3 queued jobs" in refused.json()["error"]
        assert kit.stored_state(redis_client) == before
        assert api.post("/v1/jobs", json=VALID, headers=api.as_user("bob")).status_code == 202
        assert api.post(f"/v1/jobs/{ids[0]}/cancel", headers=alice).status_code == 202
        assert api.post("/v1/jobs", json=VALID, headers=alice).status_code == 202


# --- on the real stack ---------------------------------------------------------------------


def test_isolation_on_every_endpoint_including_the_video(healthy_stack, http, store, kit):
    owner = http
    other_key = auth.add_key(store.redis, "mallory")
    job_id = owner.post("/v1/jobs", json=kit.QUICK).json()["id"]
    job = kit.wait_finished(store, [job_id], timeout=120)[0]
    assert job["status"] == "succeeded"
    video = owner.get(f"/v1/jobs/{job_id}/video")
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    headers = {"Authorization": f"Bearer {other_key}"}
    with httpx.Client(base_url=healthy_stack.api_url, headers=headers, timeout=30) as other:
        missing = "0" * 32
        for method, path in [
            ("GET", "/v1/jobs/{}"),
            ("GET", "/v1/jobs/{}/video"),
            ("POST", "/v1/jobs/{}/cancel"),
        ]:
            theirs = other.request(method, path.format(job_id))
            nobody = other.request(method, path.format(missing))
            assert theirs.status_code == nobody.status_code == 404
            # The same answer as for no job at all: no oracle for another account's ids.
            assert theirs.json()["error"].replace(job_id, missing) == nobody.json()["error"]
            assert theirs.headers.get("content-type") == "application/json"
        assert job_id not in other.get("/v1/jobs?limit=100").text
        legacy = other.post("/generate", json={**kit.TINY, "account_id": "local"})
        assert legacy.status_code == 422
    assert owner.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"


def test_no_key_in_redis_nor_in_any_log_of_the_stack(healthy_stack, http, store, kit, caplog):
    """Runs traffic with valid and wrong keys, at DEBUG, then reads every log the stack wrote
    (Redis, the Ray head and session, pool driver, actors, the API process of the restart
    test) and every key and value in Redis. The address file `local.json` is the one place a
    key is written on purpose: it hands the local user their key (mode 0600, removed at
    stop)."""
    caplog.set_level(logging.DEBUG)
    keys = [healthy_stack.api_key, auth.add_key(store.redis, "logged")]
    wrong = auth.new_key()
    for key in [*keys, wrong]:
        headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "log-check"}
        http.post("/v1/jobs", json=kit.QUICK, headers=headers)
        http.get("/v1/jobs", headers=headers)
    assert kit.wait_for_idle(store, 120)
    time.sleep(1.0)  # Ray's log monitor copies actor output to the driver log
    secrets = [*keys, wrong]
    assert not [k for k in secrets if k in caplog.text], "a key reached a Python log record"
    everything = dump(store.redis)
    assert not [k for k in keys if k.encode() in everything], "a plaintext key is in Redis"
    leaks = []
    files = 0
    folders = {Path(healthy_stack.base_dir), Path(healthy_stack.ray.temp_dir)}
    for path in (path for folder in folders for path in folder.rglob("*")):
        if not path.is_file() or path.is_symlink() or path == healthy_stack.address_file:
            continue
        if path.suffix in (".mp4", ".partial") or path.stat().st_size > 50_000_000:
            continue
        files += 1
        content = path.read_bytes()
        leaks += [(str(path), k[:6]) for k in secrets if k.encode() in content]
    assert files > 20, "expected the stack's logs to be there"
    assert not leaks, leaks
    metrics = http.get("/metrics").text
    assert not [k for k in secrets if k in metrics]
