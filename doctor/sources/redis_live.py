"""Redis, live: PING, INFO (persistence, memory, evictions), the config that matters, and the
job store the service keeps there (jobs, queue, leases, workers, the pool's heartbeat), read
through the service's own JobStore.snapshot: its key names, its record. Which workers are live
is the checks' to say (doctor.live_state.live_workers): the service keeps no worker TTL in
Redis, so the read records none and the checks take the deployment's from its settings."""

from __future__ import annotations

import redis

from doctor.sources.probe import Deadline, Probe, describe, failure_kind, redact_url
from service.config import Settings
from service.jobstore import JobStore
from service.records import JobRecord

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
RECENT_SECONDS = 3600.0  # finished jobs older than this are not kept
PRIVATE_PARAMS = ("prompt", "negative_prompt")


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


def _job_store(client: redis.Redis, deadline: Deadline) -> dict:
    """The job store's state as the checks read it (and snapshots record it)."""
    snapshot = JobStore(client).snapshot(
        Settings.worker_ttl_seconds,  # for StoreSnapshot.live_workers, which the doctor leaves
        limit=MAX_JOBS,
        finished_within=RECENT_SECONDS,
        stop=lambda: deadline.expired,
    )
    return {
        "server_time": snapshot.server_time,
        "jobs": [_summary(job) for job in snapshot.jobs],
        "jobs_scanned": snapshot.jobs_scanned,
        "jobs_unreadable": snapshot.unreadable_count,
        "unreadable_jobs": [{"key": bad.key, "error": bad.error} for bad in snapshot.unreadable],
        "queue_length": snapshot.queue_length,
        "leases": snapshot.leases,
        "workers": snapshot.workers,
        "workers_seen": snapshot.workers_seen,
        "pool_heartbeat": snapshot.pool_heartbeat,
        "pool_submission": snapshot.pool_submission,
    }


def _summary(job: JobRecord) -> dict:
    """What the checks read of a job: never the prompt (it can be private), never the account."""
    return {
        "id": job.id,
        "status": job.status.value,
        "worker": job.worker or "",
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "step": job.step,
        "total_steps": job.total_steps,
        "created_at": job.created_at,
        "claimed_at": job.claimed_at,
        "heartbeat_at": job.heartbeat_at,
        "lease_expires": job.lease_expires,
        "finished_at": job.finished_at,
        "error": (job.error or "")[:300],
        "params": {k: v for k, v in job.params.items() if k not in PRIVATE_PARAMS},
        "metrics": job.metrics,
    }
