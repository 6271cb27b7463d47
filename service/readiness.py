"""/readyz: Redis answers within a short deadline, and a live worker is idle or progressing.

A worker registers `job` (its current job id, or ""), `progress_at` (server time of its last
claim or denoising step) and `stall_after` (seconds); one with a job and no progress for longer
than stall_after has stopped progressing, and is listed."""

from __future__ import annotations

import asyncio
from typing import Any

import redis

from service.keys import WORKERS, WORKERS_SEEN
from service.records import seen_cutoff, worker_info

READY_TIMEOUT_SECONDS = 1.0


async def readiness(client, address: str, worker_ttl_seconds: float) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body). `client` is an asyncio client with a short socket timeout; the
    deadline bounds the whole answer even when Redis accepts the connection but never replies.
    `address` names Redis in the reason (host:port, never credentials)."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            now, workers = await _live_workers(client, worker_ttl_seconds)
    except (TimeoutError, redis.TimeoutError):  # the deadline, or the socket's own
        return _not_ready(f"redis at {address} did not answer within {READY_TIMEOUT_SECONDS:g}s")
    except redis.RedisError as error:
        return _not_ready(f"redis unreachable at {address}: {error}")
    if not workers:
        return _not_ready(f"no worker has sent a heartbeat in the last {worker_ttl_seconds:g}s")
    unformed = {
        worker: info["group_error"] for worker, info in workers.items() if info.get("group_error")
    }
    if len(unformed) == len(workers):
        worker, error = sorted(unformed.items())[0]
        return _not_ready(f"no worker could form its group of ranks ({worker}: {error})")
    stalled = [
        report
        for worker, info in sorted(workers.items())
        if (report := not_progressing(worker, info, now)) is not None
    ]
    if len(stalled) == len(workers):
        reason = f"every live worker ({len(workers)}) stopped progressing"
        return 503, {"ready": False, "reason": reason, "not_progressing": stalled}
    return 200, {"ready": True, "workers": len(workers), "not_progressing": stalled}


def not_progressing(worker: str, info: dict[str, Any], now: float) -> dict[str, Any] | None:
    """What to report about a worker holding a job with no progress for over stall_after
    seconds, or None (idle, progressing, or registered without these fields)."""
    try:
        job = info.get("job") or ""
        idle_for = now - float(info["progress_at"])
        stall_after = float(info["stall_after"])
    except (KeyError, TypeError, ValueError):
        return None
    if not job or idle_for <= stall_after:
        return None
    return {
        "worker": worker,
        "job": job,
        "seconds_since_progress": round(idle_for, 1),
        "stall_after": stall_after,
    }


async def _live_workers(client, ttl_seconds: float) -> tuple[float, dict[str, dict[str, Any]]]:
    seconds, micros = await client.time()
    now = seconds + micros / 1e6
    alive = await client.zrangebyscore(WORKERS_SEEN, seen_cutoff(now, ttl_seconds), "+inf")
    infos = await client.hmget(WORKERS, alive) if alive else []
    return now, {_text(w): worker_info(info) for w, info in zip(alive, infos, strict=True)}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _not_ready(reason: str) -> tuple[int, dict[str, Any]]:
    return 503, {"ready": False, "reason": reason}
