"""The job state machine in Redis. Every transition is one Lua script, so it is atomic.

queued -> starting -> running -> succeeded | failed | canceled. A worker that claims a job holds a
lease (server time, `mochi:leases`) which it renews with heartbeats; every write a worker makes is
fenced by (worker id, attempt number), so a worker that lost its lease cannot touch the job again.
The reaper returns expired jobs to the queue, or fails them after their last attempt.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import redis

from service.auth import API_KEYS, AUTHENTICATE_LUA

PREFIX = "mochi"
QUEUE = f"{PREFIX}:queue"
LEASES = f"{PREFIX}:leases"
WAKE = f"{PREFIX}:wake"
QUEUED_PER_ACCOUNT = f"{PREFIX}:queued-per-account"
WORKERS = f"{PREFIX}:workers"
WORKERS_SEEN = f"{PREFIX}:workers-seen"
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
ACTIVE_STATES = ("starting", "running")
TERMINAL_STATES = ("succeeded", "failed", "canceled")
JOB_ID_LENGTH = 32

_NOW = """
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""

# Authenticate (by account name, or by API key digest with the per-minute rate limit) and
# enqueue, in one round trip: the API's hot path. Keys derived from the account are built here,
# which a single Redis (not Redis Cluster) allows.
# KEYS: api-keys, queue, queued-per-account, wake
# ARGV: 'account' | 'key', account or key digest, rate per minute, prefix, id, params json,
#   max attempts, total steps, max queued, idempotency key (or ''), idempotency ttl
SUBMIT_LUA = (
    _NOW
    + AUTHENTICATE_LUA
    + """
local account = ARGV[2]
if ARGV[1] == 'key' then
  local found, count, seconds_left = authenticate(KEYS[1], ARGV[2], ARGV[4] .. ':rate:')
  if not found then return {-2} end
  if count > tonumber(ARGV[3]) then return {-3, seconds_left} end
  account = found
end
local prefix = ARGV[4]
local idem = ''
if ARGV[10] ~= '' then
  idem = prefix .. ':idempotency:' .. account .. ':' .. ARGV[10]
  local existing = redis.call('GET', idem)
  if existing then return {0, redis.call('HGETALL', prefix .. ':job:' .. existing)} end
end
local queued = tonumber(redis.call('HGET', KEYS[3], account) or '0')
if queued >= tonumber(ARGV[9]) then return {-1} end
local id = ARGV[5]
local job = prefix .. ':job:' .. id
local t = string.format('%.6f', now())
redis.call('HSET', job, 'id', id, 'account', account, 'status', 'queued', 'params', ARGV[6],
  'attempts', 0, 'max_attempts', ARGV[7], 'step', 0, 'total_steps', ARGV[8], 'created_at', t,
  'cancel_requested', 0)
redis.call('RPUSH', KEYS[2], id)
redis.call('ZADD', prefix .. ':account:' .. account .. ':jobs', t, id)
redis.call('HINCRBY', KEYS[3], account, 1)
if idem ~= '' then redis.call('SET', idem, id, 'EX', ARGV[11]) end
redis.call('LPUSH', KEYS[4], 1)
redis.call('LTRIM', KEYS[4], 0, 63)
return {1, t, account}
"""
)

# KEYS: queue, leases, queued-per-account; ARGV: worker, lease seconds, job key prefix
_CLAIM = (
    _NOW
    + """
while true do
  local id = redis.call('LPOP', KEYS[1])
  if not id then return nil end
  local key = ARGV[3] .. id
  if redis.call('HGET', key, 'status') == 'queued' then
    local t = now()
    local attempt = redis.call('HINCRBY', key, 'attempts', 1)
    redis.call('HSET', key, 'status', 'starting', 'worker', ARGV[1], 'heartbeat_at', t,
      'claimed_at', t, 'lease_expires', t + tonumber(ARGV[2]), 'step', 0)
    if not redis.call('HGET', key, 'started_at') then redis.call('HSET', key, 'started_at', t) end
    redis.call('ZADD', KEYS[2], t + tonumber(ARGV[2]), id)
    redis.call('HINCRBY', KEYS[3], redis.call('HGET', key, 'account'), -1)
    return {id, attempt, redis.call('HGET', key, 'params')}
  end
end
"""
)

_FENCE = """
local function fenced(key, worker, attempt)
  local job = redis.call('HMGET', key, 'status', 'worker', 'attempts', 'cancel_requested')
  if (job[1] ~= 'starting' and job[1] ~= 'running') or job[2] ~= worker
     or job[3] ~= attempt then
    return nil
  end
  return job
end
"""

# KEYS: job, leases; ARGV: id, worker, attempt, lease seconds, step (or -1)
_HEARTBEAT = (
    _NOW
    + _FENCE
    + """
local job = fenced(KEYS[1], ARGV[2], ARGV[3])
if not job then return 'lost' end
local t = now()
redis.call('HSET', KEYS[1], 'heartbeat_at', t, 'lease_expires', t + tonumber(ARGV[4]))
redis.call('ZADD', KEYS[2], t + tonumber(ARGV[4]), ARGV[1])
if tonumber(ARGV[5]) >= 0 then
  redis.call('HSET', KEYS[1], 'status', 'running', 'step', ARGV[5])
end
if job[4] == '1' then return 'cancel' end
return 'ok'
"""
)

# KEYS: job, leases; ARGV: id, worker, attempt, outcome, error, video name, metrics json
_FINISH = (
    _NOW
    + _FENCE
    + """
if not fenced(KEYS[1], ARGV[2], ARGV[3]) then return 'lost' end
redis.call('HSET', KEYS[1], 'status', ARGV[4], 'error', ARGV[5], 'video', ARGV[6],
  'metrics', ARGV[7], 'finished_at', now())
if ARGV[4] == 'succeeded' then
  redis.call('HSET', KEYS[1], 'step', redis.call('HGET', KEYS[1], 'total_steps'))
end
redis.call('ZREM', KEYS[2], ARGV[1])
return 'ok'
"""
)

# KEYS: job, queue, queued-per-account; ARGV: id, account
_CANCEL = (
    _NOW
    + """
local job = redis.call('HMGET', KEYS[1], 'status', 'account')
if not job[1] or job[2] ~= ARGV[2] then return 'missing' end
if job[1] == 'queued' then
  redis.call('LREM', KEYS[2], 0, ARGV[1])
  redis.call('HINCRBY', KEYS[3], ARGV[2], -1)
  redis.call('HSET', KEYS[1], 'status', 'canceled', 'finished_at', now(),
    'error', 'canceled by the client')
  return 'canceled'
end
if job[1] == 'starting' or job[1] == 'running' then
  redis.call('HSET', KEYS[1], 'cancel_requested', 1)
  return 'canceling'
end
return 'already-' .. job[1]
"""
)

# KEYS: leases, queue, queued-per-account, wake; ARGV: job key prefix, batch size
_REAP = (
    _NOW
    + """
local t = now()
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', t, 'LIMIT', 0, tonumber(ARGV[2]))
local result = {}
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id)
  local key = ARGV[1] .. id
  local job = redis.call('HMGET', key, 'status', 'attempts', 'max_attempts', 'account',
    'lease_expires', 'cancel_requested', 'worker')
  if job[1] == 'starting' or job[1] == 'running' then
    local lost = 'worker ' .. (job[7] or '?') .. ' lost: lease expired at ' .. job[5]
      .. ' (attempt ' .. job[2] .. ' of ' .. job[3] .. ')'
    if job[6] == '1' then
      redis.call('HSET', key, 'status', 'canceled', 'finished_at', t, 'error', lost)
      table.insert(result, {id, 'canceled'})
    elseif tonumber(job[2]) < tonumber(job[3]) then
      redis.call('HSET', key, 'status', 'queued', 'worker', '', 'error', lost)
      redis.call('LPUSH', KEYS[2], id)
      redis.call('HINCRBY', KEYS[3], job[4], 1)
      redis.call('LPUSH', KEYS[4], 1)
      table.insert(result, {id, 'requeued'})
    else
      redis.call('HSET', key, 'status', 'failed', 'finished_at', t, 'error', lost)
      table.insert(result, {id, 'failed'})
    end
  end
end
return result
"""
)


class QueueFull(Exception):
    """The account already has its maximum number of queued jobs."""


class UnknownKey(Exception):
    """No account has this API key."""


class RateLimited(Exception):
    def __init__(self, retry_after_seconds: int):
        super().__init__(retry_after_seconds)
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True)
class Submission:
    """One call of the submit script, shared by the sync store and the async API path."""

    mode: str  # 'account' or 'key'
    who: str  # account name, or API key digest
    params: dict[str, Any]
    max_attempts: int
    max_queued: int
    idempotency: str | None = None
    rate_per_minute: int = 0

    def keys(self) -> list[str]:
        return [API_KEYS, QUEUE, QUEUED_PER_ACCOUNT, WAKE]

    job_id: str = field(default_factory=lambda: new_job_id())

    def args(self) -> list[Any]:
        return [
            self.mode,
            self.who,
            self.rate_per_minute,
            PREFIX,
            self.job_id,
            json.dumps(self.params, sort_keys=True),
            self.max_attempts,
            self.params.get("num_inference_steps", 0),
            self.max_queued,
            self.idempotency or "",
            IDEMPOTENCY_TTL_SECONDS,
        ]

    def outcome(self, result: list) -> tuple[dict[str, Any], bool]:
        """(job, created), or the exception the script's answer means."""
        code = int(result[0])
        if code == -1:
            raise QueueFull()
        if code == -2:
            raise UnknownKey()
        if code == -3:
            raise RateLimited(int(result[1]))
        if code == 0:  # an earlier job with the same idempotency key
            flat = result[1]
            return _decode_job(dict(zip(flat[::2], flat[1::2], strict=True))), False
        return self._new_job(float(result[1]), _text(result[2])), True

    def _new_job(self, created_at: float, account: str) -> dict[str, Any]:
        """The record the script just wrote, without reading it back (the hot path)."""
        return {
            "id": self.job_id,
            "account": account,
            "status": "queued",
            "params": self.params,
            "attempts": 0,
            "max_attempts": self.max_attempts,
            "step": 0,
            "total_steps": self.params.get("num_inference_steps", 0),
            "created_at": created_at,
            "started_at": None,
            "finished_at": None,
            "metrics": {},
        }


@dataclass(frozen=True)
class Claim:
    job_id: str
    attempt: int
    params: dict[str, Any]


def connect(settings, socket_timeout: float = 10.0) -> redis.Redis:
    """A client for the settings' Redis; the password comes from its own secret setting."""
    return redis.Redis.from_url(
        settings.redis_url,
        password=settings.redis_password or None,
        socket_timeout=socket_timeout,
        socket_connect_timeout=min(5.0, socket_timeout),
        health_check_interval=10,
        retry_on_timeout=True,
    )


def connect_async(settings, socket_timeout: float = 5.0):
    """The asyncio twin of connect(), for the API's submit path. No automatic retry: a submit
    whose reply was lost must not be sent twice (the client retries, with its idempotency key)."""
    import redis.asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return redis.asyncio.Redis.from_url(
        settings.redis_url,
        password=settings.redis_password or None,
        socket_timeout=socket_timeout,
        socket_connect_timeout=min(5.0, socket_timeout),
        retry=Retry(NoBackoff(), 0),
    )


def job_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}"


def account_jobs_key(account: str) -> str:
    return f"{PREFIX}:account:{account}:jobs"


def new_job_id() -> str:
    return secrets.token_hex(JOB_ID_LENGTH // 2)


def is_valid_job_id(job_id: str) -> bool:
    """Job ids are server-made hex; anything else (paths, NULs, huge strings) is not a job."""
    return len(job_id) == JOB_ID_LENGTH and all(c in "0123456789abcdef" for c in job_id)


class JobStore:
    def __init__(self, client: redis.Redis, lease_seconds: float = 30.0, max_attempts: int = 3):
        self.redis = client
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self._submit = client.register_script(SUBMIT_LUA)
        self._claim = client.register_script(_CLAIM)
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._finish = client.register_script(_FINISH)
        self._cancel = client.register_script(_CANCEL)
        self._reap = client.register_script(_REAP)

    # --- API side -------------------------------------------------------------------------

    def create(
        self,
        account: str,
        params: dict[str, Any],
        idempotency: str | None = None,
        max_queued: int = 1000,
    ) -> tuple[dict[str, Any], bool]:
        """Enqueue a job; returns (job, created). A repeated idempotency key returns the
        first job and created=False."""
        submission = Submission(
            "account", account, params, self.max_attempts, max_queued, idempotency
        )
        return self.submit(submission)

    def submit(self, submission: Submission) -> tuple[dict[str, Any], bool]:
        result = self._submit(keys=submission.keys(), args=submission.args())
        return submission.outcome(result)

    def get(self, job_id: str) -> dict[str, Any] | None:
        raw = self.redis.hgetall(job_key(job_id))
        return _decode_job(raw) if raw else None

    def list_for_account(self, account: str, offset: int, limit: int) -> tuple[list[dict], int]:
        key = account_jobs_key(account)
        ids = self.redis.zrevrange(key, offset, offset + limit - 1)
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(job_key(_text(job_id)))
        jobs = [_decode_job(raw) for raw in pipe.execute() if raw]
        return jobs, self.redis.zcard(key)

    def cancel(self, job_id: str, account: str) -> str:
        """'canceled' (was queued), 'canceling' (running; stops at its next step), 'missing',
        or 'already-<state>' for a job that had ended."""
        keys = [job_key(job_id), QUEUE, QUEUED_PER_ACCOUNT]
        return _text(self._cancel(keys=keys, args=[job_id, account]))

    def queue_length(self) -> int:
        return self.redis.llen(QUEUE)

    # --- worker side ----------------------------------------------------------------------

    def claim(self, worker: str) -> Claim | None:
        keys = [QUEUE, LEASES, QUEUED_PER_ACCOUNT]
        claimed = self._claim(keys=keys, args=[worker, self.lease_seconds, job_key("")])
        if not claimed:
            return None
        job_id, attempt, params = claimed
        return Claim(_text(job_id), int(attempt), json.loads(params))

    def wait_for_work(self, timeout_seconds: float) -> None:
        """Block until a job is enqueued (or the timeout passes); the caller then claims."""
        self.redis.blpop([WAKE], timeout=timeout_seconds)

    def heartbeat(self, claim: Claim, worker: str, step: int = -1) -> str:
        """'ok', 'cancel' (the client asked to stop) or 'lost' (the lease is gone: stop)."""
        keys = [job_key(claim.job_id), LEASES]
        args = [claim.job_id, worker, claim.attempt, self.lease_seconds, step]
        return _text(self._heartbeat(keys=keys, args=args))

    def finish(
        self,
        claim: Claim,
        worker: str,
        outcome: str,
        error: str = "",
        video: str = "",
        metrics: dict[str, float] | None = None,
    ) -> bool:
        """Record the outcome; False when the lease was lost (a late write, rejected).
        `video` is the file name inside the shared output directory."""
        if outcome not in TERMINAL_STATES:
            raise ValueError(f"outcome must be one of {TERMINAL_STATES}, not {outcome!r}")
        keys = [job_key(claim.job_id), LEASES]
        args = [claim.job_id, worker, claim.attempt, outcome, error, video]
        args.append(json.dumps(metrics or {}, sort_keys=True))
        return _text(self._finish(keys=keys, args=args)) == "ok"

    # --- supervisor side ------------------------------------------------------------------

    def reap_expired(self, batch: int = 100) -> list[tuple[str, str]]:
        """Requeue or fail every job whose lease expired; returns (job id, action) pairs."""
        keys = [LEASES, QUEUE, QUEUED_PER_ACCOUNT, WAKE]
        reaped = self._reap(keys=keys, args=[job_key(""), batch])
        return [(_text(job_id), _text(action)) for job_id, action in reaped]

    # --- worker registry (readiness, doctor) -----------------------------------------------

    def register_worker(self, worker: str, info: dict[str, Any]) -> None:
        pipe = self.redis.pipeline()
        pipe.hset(WORKERS, worker, json.dumps(info, sort_keys=True))
        pipe.zadd(WORKERS_SEEN, {worker: self.server_time()})
        pipe.execute()

    def worker_seen(self, worker: str) -> None:
        self.redis.zadd(WORKERS_SEEN, {worker: self.server_time()})

    def live_workers(self, ttl_seconds: float) -> dict[str, dict[str, Any]]:
        alive = self.redis.zrangebyscore(WORKERS_SEEN, self.server_time() - ttl_seconds, "+inf")
        if not alive:
            return {}
        infos = self.redis.hmget(WORKERS, alive)
        return {
            _text(worker): json.loads(info) if info else {}
            for worker, info in zip(alive, infos, strict=True)
        }

    def server_time(self) -> float:
        seconds, micros = self.redis.time()
        return seconds + micros / 1e6


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


_FLOAT_FIELDS = (
    "created_at",
    "started_at",
    "claimed_at",
    "finished_at",
    "heartbeat_at",
    "lease_expires",
)
_INT_FIELDS = ("attempts", "max_attempts", "step", "total_steps", "cancel_requested")


def _decode_job(raw: dict) -> dict[str, Any]:
    job = {_text(k): _text(v) for k, v in raw.items()}
    for name in _FLOAT_FIELDS:
        job[name] = float(job[name]) if job.get(name) else None
    for name in _INT_FIELDS:
        job[name] = int(float(job.get(name) or 0))
    job["params"] = json.loads(job.get("params") or "{}")
    job["metrics"] = json.loads(job.get("metrics") or "{}")
    return job
