"""Redis, live: PING, INFO (persistence, memory, evictions), the config that matters, and the
job store the service keeps there (jobs, queue, leases, workers, the pool's heartbeat)."""

from __future__ import annotations

import json

import redis

from doctor.sources.probe import Deadline, Probe, describe, failure_kind, redact_url

JOB_PREFIX = "mochi:job:"
INFO_FIELDS = (
    "redis_version",
    "aof_enabled",
    "rdb_bgsave_in_progress",
    "rdb_last_save_time",
    "rdb_changes_since_last_save",
    "used_memory",
    "maxmemory",
    "maxmemory_policy",
    "evicted_keys",
    "connected_clients",
    "role",
)
CONFIG_KEYS = ("save", "appendonly", "maxmemory-policy", "maxmemory", "requirepass", "bind")
MAX_JOBS = 20000  # job hashes read at most; the newest are what the checks need
RECENT_SECONDS = 3600.0  # finished jobs older than this are not read


def read_redis(url: str, password: str | None, deadline: Deadline) -> tuple[dict, dict, Probe]:
    """(redis state, jobs state, probe). Each command has its own socket timeout."""
    target = redact_url(url)
    client = redis.Redis.from_url(
        url,
        password=password or None,
        socket_timeout=deadline.timeout(),
        socket_connect_timeout=deadline.timeout(),
        retry_on_timeout=False,
    )
    try:
        client.ping()
    except redis.RedisError as error:
        kind = "auth" if isinstance(error, redis.AuthenticationError) else failure_kind(error)
        probe = Probe("redis", target, False, kind, describe(error))
        return {"url": target, "reachable": False}, {}, probe
    try:
        return _read(client, target, deadline)
    except redis.RedisError as error:
        probe = Probe("redis", target, False, failure_kind(error), describe(error))
        return {"url": target, "reachable": False}, {}, probe
    finally:
        client.close()


def _read(client: redis.Redis, target: str, deadline: Deadline) -> tuple[dict, dict, Probe]:
    info = client.info("everything")
    state = {
        "url": target,
        "reachable": True,
        "info": {k: info[k] for k in INFO_FIELDS if k in info},
        "config": _config(client),
        "password_used": bool(client.connection_pool.connection_kwargs.get("password")),
    }
    jobs = _job_store(client, deadline)
    return state, jobs, Probe("redis", target, True)


def _config(client: redis.Redis) -> dict:
    """CONFIG GET answers when the user may run it; a managed Redis often refuses."""
    config = {}
    for key in CONFIG_KEYS:
        try:
            values = client.config_get(key)
        except redis.ResponseError:
            continue
        for name, value in values.items():
            name = name.decode() if isinstance(name, bytes) else name
            value = value.decode() if isinstance(value, bytes) else value
            config[name] = ("<set>" if value else "") if name == "requirepass" else value
    return config


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _job_store(client: redis.Redis, deadline: Deadline) -> dict:
    seconds, micros = client.time()
    now = seconds + micros / 1e6
    keys = []
    for key in client.scan_iter(match=JOB_PREFIX + "*", count=1000):
        keys.append(_text(key))
        if len(keys) >= MAX_JOBS or deadline.expired:
            break
    jobs = []
    pipe = client.pipeline(transaction=False)
    for start in range(0, len(keys), 500):
        for key in keys[start : start + 500]:
            pipe.hgetall(key)
        for raw in pipe.execute():
            job = {_text(k): _text(v) for k, v in raw.items()}
            if _worth_keeping(job, now):
                jobs.append(_summary(job))
        if deadline.expired:
            break
    workers = {_text(k): _json(v) for k, v in client.hgetall("mochi:workers").items()}
    seen = {
        _text(k): float(v) for k, v in client.zrange("mochi:workers-seen", 0, -1, withscores=True)
    }
    heartbeat = client.get("mochi:pool-heartbeat")
    submission = client.get("mochi:pool-submission")
    return {
        "server_time": now,
        "jobs": jobs,
        "jobs_scanned": len(keys),
        "queue_length": client.llen("mochi:queue"),
        "leases": client.zcard("mochi:leases"),
        "workers": workers,
        "workers_seen": seen,
        "pool_heartbeat": float(heartbeat) if heartbeat else None,
        "pool_submission": _text(submission) if submission else None,
    }


def _json(value) -> dict:
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return {}


def _worth_keeping(job: dict, now: float) -> bool:
    if job.get("status") in ("queued", "starting", "running"):
        return True
    finished = float(job.get("finished_at") or 0)
    return now - finished <= RECENT_SECONDS


def _float(value) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def _summary(job: dict) -> dict:
    """What the checks read of a job: never the prompt (it can be private), never the account."""
    params = _json(job.get("params"))
    return {
        "id": job.get("id", ""),
        "status": job.get("status", ""),
        "worker": job.get("worker", ""),
        "attempts": int(float(job.get("attempts") or 0)),
        "max_attempts": int(float(job.get("max_attempts") or 0)),
        "step": int(float(job.get("step") or 0)),
        "total_steps": int(float(job.get("total_steps") or 0)),
        "created_at": _float(job.get("created_at")),
        "claimed_at": _float(job.get("claimed_at")),
        "heartbeat_at": _float(job.get("heartbeat_at")),
        "lease_expires": _float(job.get("lease_expires")),
        "finished_at": _float(job.get("finished_at")),
        "error": job.get("error", "")[:300],
        "params": {k: v for k, v in params.items() if k not in ("prompt", "negative_prompt")},
        "metrics": _json(job.get("metrics")),
    }
