"""The job state machine in Redis. Every transition is one Lua script, so it is atomic.

queued -> starting -> running -> succeeded | failed | canceled (service.records.JobStatus). A
worker that claims a job holds a lease (server time, in LEASES) which it renews with heartbeats;
every write a worker makes is fenced by (worker id, attempt number), so a worker that lost its
lease cannot touch the job again. The reaper returns expired jobs to the queue, or fails them
after their last attempt. Key names come from service.keys; a record decodes as JobRecord.

Every script is safe to run twice: the sync client resends a command whose reply timed out, and
the first send may still have run. Submit carries its job id, claim and cancel a one-time token,
finish recognises its own result; a repeat answers as the first run did and changes nothing.

A job that ended (succeeded, failed, canceled) lives `result_ttl_seconds` more: its record and
its idempotency key expire in Redis, and its entry in the account's list is removed through
service.keys.EXPIRING by the submit, reap and list calls.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import redis

from service.auth import AUTHENTICATE_LUA
from service.keys import (
    ACCOUNT_JOBS_SUFFIX,
    ACCOUNT_PREFIX,
    API_KEYS,
    EXPIRING,
    IDEMPOTENCY_PREFIX,
    JOB_PREFIX,
    LEASES,
    POOL_HEARTBEAT,
    POOL_SUBMISSION,
    QUEUE,
    QUEUED_PER_ACCOUNT,
    SWEPT,
    WAKE,
    WORKERS,
    WORKERS_SEEN,
    account_jobs_key,
    job_key,
    last_claim_key,
    lua_literal,
)
from service.records import (
    TERMINAL_STATES,
    BadJobRecord,
    JobRecord,
    JobStatus,
    StoreSnapshot,
    UnreadableJob,
    seen_cutoff,
    worker_info,
)

SWEPT_KINDS = ("jobs", "videos", "partials", "attempts")
LAST_CLAIM_TTL_SECONDS = 3600
DEFAULT_RESULT_TTL_SECONDS = 7 * 24 * 3600
PRUNE_BATCH = 500
# Each submission removes a few expired list entries, of any account: more than it adds.
SUBMIT_PRUNE_BATCH = 4
JOB_ID_LENGTH = 32
# Job records JobStore.snapshot reads per round trip, and how many unreadable ones it describes.
SNAPSHOT_BATCH = 500
SNAPSHOT_UNREADABLE_SHOWN = 20

_NOW = """
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""

# The keys of service.keys the scripts derive from a job id or an account.
_KEY_LAYOUT = f"""
local function job_key(id) return {lua_literal(JOB_PREFIX)} .. id end
local function account_jobs_key(account)
  return {lua_literal(ACCOUNT_PREFIX)} .. account .. {lua_literal(ACCOUNT_JOBS_SUFFIX)}
end
local function idempotency_key(account, key)
  return {lua_literal(IDEMPOTENCY_PREFIX)} .. account .. ':' .. key
end
"""

_RETENTION = (
    _KEY_LAYOUT
    + """
local function prune(expiring, limit)
  local due = redis.call('ZRANGEBYSCORE', expiring, '-inf', now(), 'LIMIT', 0, limit)
  for _, member in ipairs(due) do
    local space = string.find(member, ' ', 1, true)
    local id, account = string.sub(member, 1, space - 1), string.sub(member, space + 1)
    redis.call('ZREM', account_jobs_key(account), id)
  end
  if #due > 0 then redis.call('ZREM', expiring, unpack(due)) end
  return #due
end

local function retire(key, id, ttl_ms, expiring, t)
  local job = redis.call('HMGET', key, 'account', 'idempotency')
  redis.call('PEXPIRE', key, ttl_ms)
  if job[2] then
    local held = redis.call('GET', job[2])
    if held and string.sub(held, 1, #id) == id then redis.call('PEXPIRE', job[2], ttl_ms) end
  end
  redis.call('ZADD', expiring, t + tonumber(ttl_ms) / 1000, id .. ' ' .. (job[1] or ''))
end

local function unqueue(counter, account)
  if redis.call('HINCRBY', counter, account, -1) <= 0 then redis.call('HDEL', counter, account) end
end
"""
)

# Authenticate (by account name, or by API key digest with the per-minute rate limit) and
# enqueue, in one round trip: the API's hot path. Keys derived from the account are built here,
# which a single Redis (not Redis Cluster) allows. The idempotency key holds "<id>:<body hash>"
# (just "<id>" when stored before body hashes existed, which then match any body).
# KEYS: api-keys, queue, queued-per-account, wake, expiring
# ARGV: 'account' | 'key', account or key digest, rate per minute, id, params json,
#   max attempts, total steps, max queued, idempotency key (or ''), body hash (or '')
SUBMIT_LUA = (
    _NOW
    + _RETENTION
    + AUTHENTICATE_LUA
    + """
local id = ARGV[4]
local job = job_key(id)
if redis.call('EXISTS', job) == 1 then
  -- this very submission, run again: its job, unchanged
  local owner = ARGV[2]
  if ARGV[1] == 'key' then owner = redis.call('HGET', KEYS[1], ARGV[2]) end
  if not owner then return {-2} end
  if redis.call('HGET', job, 'account') ~= owner then return {-5} end
  return {2, redis.call('HGETALL', job)}
end
local account = ARGV[2]
if ARGV[1] == 'key' then
  local found, count, seconds_left = authenticate(KEYS[1], ARGV[2])
  if not found then return {-2} end
  if count > tonumber(ARGV[3]) then return {-3, seconds_left} end
  account = found
end
prune(KEYS[5], SUBMIT_PRUNE_BATCH)
local idem = ''
if ARGV[9] ~= '' then
  idem = idempotency_key(account, ARGV[9])
  local held = redis.call('GET', idem)
  if held then
    local earlier, hash = held, ''
    local colon = string.find(held, ':', 1, true)
    if colon then earlier, hash = string.sub(held, 1, colon - 1), string.sub(held, colon + 1) end
    local record = redis.call('HGETALL', job_key(earlier))
    if #record > 0 then
      if hash ~= '' and ARGV[10] ~= '' and hash ~= ARGV[10] then return {-4, earlier} end
      return {0, record}
    end
  end
end
local queued = tonumber(redis.call('HGET', KEYS[3], account) or '0')
if queued >= tonumber(ARGV[8]) then return {-1} end
local t = string.format('%.6f', now())
redis.call('HSET', job, 'id', id, 'account', account, 'status', 'queued', 'params', ARGV[5],
  'attempts', 0, 'max_attempts', ARGV[6], 'step', 0, 'total_steps', ARGV[7], 'created_at', t,
  'cancel_requested', 0)
redis.call('RPUSH', KEYS[2], id)
redis.call('ZADD', account_jobs_key(account), t, id)
redis.call('HINCRBY', KEYS[3], account, 1)
if idem ~= '' then
  -- no expiry while the job lives: it gets the job's own when the job ends
  local value = id
  if ARGV[10] ~= '' then value = id .. ':' .. ARGV[10] end
  redis.call('SET', idem, value)
  redis.call('HSET', job, 'idempotency', idem)
end
redis.call('LPUSH', KEYS[4], 1)
redis.call('LTRIM', KEYS[4], 0, 63)
return {1, t, account}
""".replace("SUBMIT_PRUNE_BATCH", str(SUBMIT_PRUNE_BATCH))
)

# KEYS: queue, leases, queued-per-account, the worker's last claim
# ARGV: worker, lease seconds, claim token, last claim ttl seconds
_CLAIM = (
    _NOW
    + _RETENTION
    + """
local last = redis.call('GET', KEYS[4])
if last and string.sub(last, 1, #ARGV[3] + 1) == ARGV[3] .. ' ' then
  -- this very claim, run again: the same job while this worker still holds it
  local earlier = string.sub(last, #ARGV[3] + 2)
  local job = redis.call('HMGET', job_key(earlier), 'status', 'worker', 'attempts', 'params')
  if (job[1] == 'starting' or job[1] == 'running') and job[2] == ARGV[1] then
    return {earlier, job[3], job[4]}
  end
  return nil
end
while true do
  local id = redis.call('LPOP', KEYS[1])
  if not id then return nil end
  local key = job_key(id)
  if redis.call('HGET', key, 'status') == 'queued' then
    local t = now()
    local attempt = redis.call('HINCRBY', key, 'attempts', 1)
    redis.call('HSET', key, 'status', 'starting', 'worker', ARGV[1], 'heartbeat_at', t,
      'claimed_at', t, 'lease_expires', t + tonumber(ARGV[2]), 'step', 0)
    if not redis.call('HGET', key, 'started_at') then redis.call('HSET', key, 'started_at', t) end
    redis.call('ZADD', KEYS[2], t + tonumber(ARGV[2]), id)
    unqueue(KEYS[3], redis.call('HGET', key, 'account'))
    redis.call('SET', KEYS[4], ARGV[3] .. ' ' .. id, 'EX', ARGV[4])
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

# KEYS: job, leases, expiring
# ARGV: id, worker, attempt, outcome, error, video name, metrics json, result ttl ms
_FINISH = (
    _NOW
    + _RETENTION
    + _FENCE
    + """
local recorded = redis.call('HMGET', KEYS[1], 'status', 'worker', 'attempts', 'video')
if recorded[1] == ARGV[4] and recorded[2] == ARGV[2] and recorded[3] == ARGV[3]
   and recorded[4] == ARGV[6] then
  return 'ok'  -- this very result, recorded by an earlier run
end
if not fenced(KEYS[1], ARGV[2], ARGV[3]) then return 'lost' end
local t = now()
redis.call('HSET', KEYS[1], 'status', ARGV[4], 'error', ARGV[5], 'video', ARGV[6],
  'metrics', ARGV[7], 'finished_at', t)
if ARGV[4] == 'succeeded' then
  redis.call('HSET', KEYS[1], 'step', redis.call('HGET', KEYS[1], 'total_steps'))
end
redis.call('ZREM', KEYS[2], ARGV[1])
retire(KEYS[1], ARGV[1], ARGV[8], KEYS[3], t)
return 'ok'
"""
)

# The record keeps the token and answer of the cancel that changed it, for that call's repeats.
# KEYS: job, queue, queued-per-account, expiring; ARGV: id, account, token, result ttl ms
_CANCEL = (
    _NOW
    + _RETENTION
    + """
local job = redis.call('HMGET', KEYS[1], 'status', 'account', 'cancel_token', 'cancel_answer')
if not job[1] or job[2] ~= ARGV[2] then return 'missing' end
if job[3] == ARGV[3] then return job[4] end
local answer = 'already-' .. job[1]
if job[1] == 'queued' then
  local t = now()
  redis.call('LREM', KEYS[2], 0, ARGV[1])
  unqueue(KEYS[3], ARGV[2])
  redis.call('HSET', KEYS[1], 'status', 'canceled', 'finished_at', t,
    'error', 'canceled by the client')
  retire(KEYS[1], ARGV[1], ARGV[4], KEYS[4], t)
  answer = 'canceled'
elseif job[1] == 'starting' or job[1] == 'running' then
  redis.call('HSET', KEYS[1], 'cancel_requested', 1)
  answer = 'canceling'
else
  return answer
end
redis.call('HSET', KEYS[1], 'cancel_token', ARGV[3], 'cancel_answer', answer)
return answer
"""
)

# KEYS: leases, queue, queued-per-account, wake, expiring
# ARGV: batch size, result ttl ms, prune batch size
_REAP = (
    _NOW
    + _RETENTION
    + """
local t = now()
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', t, 'LIMIT', 0, tonumber(ARGV[1]))
local result = {}
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id)
  local key = job_key(id)
  local job = redis.call('HMGET', key, 'status', 'attempts', 'max_attempts', 'account',
    'lease_expires', 'cancel_requested', 'worker')
  if job[1] == 'starting' or job[1] == 'running' then
    local lost = 'worker ' .. (job[7] or '?') .. ' lost: lease expired at ' .. job[5]
      .. ' (attempt ' .. job[2] .. ' of ' .. job[3] .. ')'
    if job[6] == '1' then
      redis.call('HSET', key, 'status', 'canceled', 'finished_at', t, 'error', lost)
      retire(key, id, ARGV[2], KEYS[5], t)
      table.insert(result, {id, 'canceled'})
    elseif tonumber(job[2]) < tonumber(job[3]) then
      redis.call('HSET', key, 'status', 'queued', 'worker', '', 'error', lost)
      redis.call('LPUSH', KEYS[2], id)
      redis.call('HINCRBY', KEYS[3], job[4], 1)
      redis.call('LPUSH', KEYS[4], 1)
      table.insert(result, {id, 'requeued'})
    else
      redis.call('HSET', key, 'status', 'failed', 'finished_at', t, 'error', lost)
      retire(key, id, ARGV[2], KEYS[5], t)
      table.insert(result, {id, 'failed'})
    end
  end
end
prune(KEYS[5], tonumber(ARGV[3]))
return result
"""
)

# KEYS: expiring; ARGV: batch size
_PRUNE = _NOW + _RETENTION + "return prune(KEYS[1], tonumber(ARGV[1]))"


class QueueFull(Exception):
    """The account already has its maximum number of queued jobs."""


class UnknownKey(Exception):
    """No account has this API key."""


class RateLimited(Exception):
    def __init__(self, retry_after_seconds: int):
        super().__init__(retry_after_seconds)
        self.retry_after_seconds = retry_after_seconds


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before, for job `job_id`, with a different body."""

    def __init__(self, idempotency_key: str, job_id: str):
        super().__init__(
            f"Idempotency-Key {idempotency_key!r} was used for job {job_id} with a different body"
        )
        self.idempotency_key, self.job_id = idempotency_key, job_id


def params_hash(params: dict[str, Any]) -> str:
    """Hex SHA-256 of the parameters' canonical JSON: what an idempotency key remembers."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def encode_json(value: Any) -> str:
    """JSON as stored in job records: UTF-8 text, not \\uXXXX escapes (6 bytes a character)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class Submission:
    """One call of the submit script, shared by the sync store and the async API path.

    Its job id is made once, with the submission: a repeated run of the script (a retry whose
    first reply was lost) finds that job and returns it unchanged."""

    mode: str  # 'account' or 'key'
    who: str  # account name, or API key digest
    params: dict[str, Any]
    max_attempts: int
    max_queued: int
    idempotency: str | None = None
    rate_per_minute: int = 0
    job_id: str = field(default_factory=lambda: new_job_id())
    # params_hash(params) of the request; empty: computed here when an idempotency key is set.
    body_hash: str = ""

    params_hash = staticmethod(params_hash)

    def keys(self) -> list[str]:
        return [API_KEYS, QUEUE, QUEUED_PER_ACCOUNT, WAKE, EXPIRING]

    def args(self) -> list[Any]:
        return [
            self.mode,
            self.who,
            self.rate_per_minute,
            self.job_id,
            encode_json(self.params),
            self.max_attempts,
            self.params.get("num_inference_steps", 0),
            self.max_queued,
            self.idempotency or "",
            self._body_hash(),
        ]

    def _body_hash(self) -> str:
        if not self.idempotency:
            return ""
        return self.body_hash or params_hash(self.params)

    def outcome(self, result: list) -> tuple[dict[str, Any], bool]:
        """(job, created), or the exception the script's answer means. A repeated run of this
        same submission answers created=True: this submission made the job."""
        code = int(result[0])
        if code == -1:
            raise QueueFull()
        if code == -2:
            raise UnknownKey()
        if code == -3:
            raise RateLimited(int(result[1]))
        if code == -4:
            raise IdempotencyConflict(self.idempotency or "", _text(result[1]))
        if code == -5:
            raise ValueError(f"job id {self.job_id} belongs to another account's job")
        if code in (0, 2):  # 0: an earlier job with the same idempotency key; 2: this one
            flat = result[1]
            record = JobRecord.from_redis(dict(zip(flat[::2], flat[1::2], strict=True)))
            return record.as_dict(), code == 2
        return self._new_job(float(result[1]), _text(result[2])), True

    def _new_job(self, created_at: float, account: str) -> dict[str, Any]:
        """The record the script just wrote, without reading it back (the hot path)."""
        return JobRecord(
            id=self.job_id,
            status=JobStatus.QUEUED,
            account=account,
            params=self.params,
            max_attempts=self.max_attempts,
            total_steps=self.params.get("num_inference_steps", 0),
            created_at=created_at,
        ).as_dict()


@dataclass(frozen=True)
class Claim:
    job_id: str
    attempt: int
    params: dict[str, Any]


class VideoName(NamedTuple):
    job_id: str
    attempt: int
    partial: bool


_VIDEO_NAME = re.compile(rf"([0-9a-f]{{{JOB_ID_LENGTH}}})-a([1-9][0-9]*)\.mp4(\.partial)?")


def video_name(job_id: str, attempt: int) -> str:
    """The file an attempt writes in the output directory (while writing: name + '.partial')."""
    return f"{job_id}-a{attempt}.mp4"


def parse_video_name(name: str) -> VideoName | None:
    """The job and attempt a file of the output directory belongs to; None for other files."""
    match = _VIDEO_NAME.fullmatch(name)
    if not match:
        return None
    return VideoName(match[1], int(match[2]), match[3] is not None)


def connect(settings, socket_timeout: float = 10.0) -> redis.Redis:
    """A client for the settings' Redis; the password comes from its own secret setting.
    A command whose reply timed out is sent once more: every script here is safe to repeat."""
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


def new_job_id() -> str:
    return secrets.token_hex(JOB_ID_LENGTH // 2)


def new_token() -> str:
    return secrets.token_hex(16)


def is_valid_job_id(job_id: str) -> bool:
    """Job ids are server-made hex; anything else (paths, NULs, huge strings) is not a job."""
    return len(job_id) == JOB_ID_LENGTH and all(c in "0123456789abcdef" for c in job_id)


class JobStore:
    def __init__(
        self,
        client: redis.Redis,
        lease_seconds: float = 30.0,
        max_attempts: int = 3,
        *,
        result_ttl_seconds: float = DEFAULT_RESULT_TTL_SECONDS,
    ):
        if not result_ttl_seconds > 0:
            raise ValueError(f"result_ttl_seconds must be above 0, not {result_ttl_seconds!r}")
        self.redis = client
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.result_ttl_seconds = result_ttl_seconds
        self._result_ttl_ms = max(1, round(result_ttl_seconds * 1000))
        self._submit = client.register_script(SUBMIT_LUA)
        self._claim = client.register_script(_CLAIM)
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._finish = client.register_script(_FINISH)
        self._cancel = client.register_script(_CANCEL)
        self._reap = client.register_script(_REAP)
        self._prune = client.register_script(_PRUNE)

    @classmethod
    def from_settings(cls, client: redis.Redis, settings) -> JobStore:
        return cls(
            client,
            settings.lease_seconds,
            settings.max_attempts,
            result_ttl_seconds=settings.result_ttl_seconds,
        )

    # --- API side -------------------------------------------------------------------------

    def create(
        self,
        account: str,
        params: dict[str, Any],
        idempotency: str | None = None,
        max_queued: int = 1000,
        job_id: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Enqueue a job; returns (job, created). A repeated idempotency key returns the
        first job and created=False (IdempotencyConflict when the params differ)."""
        submission = Submission(
            "account",
            account,
            params,
            self.max_attempts,
            max_queued,
            idempotency,
            job_id=job_id or new_job_id(),
        )
        return self.submit(submission)

    def submit(self, submission: Submission) -> tuple[dict[str, Any], bool]:
        result = self._submit(keys=submission.keys(), args=submission.args())
        return submission.outcome(result)

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The job, or None when there is none (never was, or it ended and expired)."""
        raw = self.redis.hgetall(job_key(job_id))
        return JobRecord.from_redis(raw).as_dict() if raw else None

    def existing(self, job_ids: list[str]) -> set[str]:
        """The ids of these jobs that still have a record (not expired)."""
        return {job_id for job_id, owner in self.file_owners(job_ids).items() if owner}

    def list_for_account(self, account: str, offset: int, limit: int) -> tuple[list[dict], int]:
        self.prune_expired()
        key = account_jobs_key(account)
        ids = self.redis.zrevrange(key, offset, offset + limit - 1)
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(job_key(_text(job_id)))
        jobs = [JobRecord.from_redis(raw).as_dict() for raw in pipe.execute() if raw]
        return jobs, self.redis.zcard(key)

    def prune_expired(self) -> int:
        """Remove every expired job from its account's list; returns how many."""
        total = 0
        while True:
            pruned = int(self._prune(keys=[EXPIRING], args=[PRUNE_BATCH]))
            total += pruned
            if pruned < PRUNE_BATCH:
                return total

    def cancel(self, job_id: str, account: str, token: str | None = None) -> str:
        """'canceled' (was queued), 'canceling' (running; stops at its next step), 'missing',
        or 'already-<state>' for a job that had ended. A repeat with the same token answers
        as the first call did."""
        keys = [job_key(job_id), QUEUE, QUEUED_PER_ACCOUNT, EXPIRING]
        args = [job_id, account, token or new_token(), self._result_ttl_ms]
        return _text(self._cancel(keys=keys, args=args))

    def queue_length(self) -> int:
        return self.redis.llen(QUEUE)

    # --- worker side ----------------------------------------------------------------------

    def claim(self, worker: str, token: str | None = None) -> Claim | None:
        """The next queued job, now this worker's, or None. A repeat with the same token
        returns the same job (while this worker still holds it) and takes no other."""
        keys = [QUEUE, LEASES, QUEUED_PER_ACCOUNT, last_claim_key(worker)]
        args = [worker, self.lease_seconds, token or new_token(), LAST_CLAIM_TTL_SECONDS]
        claimed = self._claim(keys=keys, args=args)
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
        """Record the outcome; False when the lease was lost (a late write, rejected). The
        same result recorded again answers True. `video` is the file name inside the shared
        output directory."""
        if outcome not in TERMINAL_STATES:
            ended = ", ".join(TERMINAL_STATES)
            raise ValueError(f"outcome must be one of {ended}, not {outcome!r}")
        keys = [job_key(claim.job_id), LEASES, EXPIRING]
        args = [claim.job_id, worker, claim.attempt, outcome, error, video]
        args += [encode_json(metrics or {}), self._result_ttl_ms]
        return _text(self._finish(keys=keys, args=args)) == "ok"

    # --- supervisor side ------------------------------------------------------------------

    def reap_expired(self, batch: int = 100) -> list[tuple[str, str]]:
        """Requeue or fail every job whose lease expired; returns (job id, action) pairs.
        Also removes up to PRUNE_BATCH expired jobs from their accounts' lists."""
        keys = [LEASES, QUEUE, QUEUED_PER_ACCOUNT, WAKE, EXPIRING]
        args = [batch, self._result_ttl_ms, PRUNE_BATCH]
        reaped = self._reap(keys=keys, args=args)
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
        """The registrations of the workers seen within ttl_seconds (worker_ttl_seconds)."""
        cutoff = seen_cutoff(self.server_time(), ttl_seconds)
        alive = self.redis.zrangebyscore(WORKERS_SEEN, cutoff, "+inf")
        if not alive:
            return {}
        infos = self.redis.hmget(WORKERS, alive)
        return {_text(worker): worker_info(info) for worker, info in zip(alive, infos, strict=True)}

    # --- watchdog and sweeper

    # Requeue a claimed job with a reason, fenced like finish; 'cancel' (the client asked) and
    # 'last' (no attempt left) are left to finish, which records terminal states.
    # KEYS: job, leases, queue, queued-per-account, wake; ARGV: id, worker, attempt, reason
    _GIVE_UP_LUA = (
        _FENCE
        + """
local job = fenced(KEYS[1], ARGV[2], ARGV[3])
if not job then return {'lost'} end
if job[4] == '1' then return {'cancel'} end
local info = redis.call('HMGET', KEYS[1], 'max_attempts', 'account')
local which = ' (attempt ' .. job[3] .. ' of ' .. info[1] .. ')'
if tonumber(job[3]) >= tonumber(info[1]) then return {'last', which} end
redis.call('HSET', KEYS[1], 'status', 'queued', 'worker', '', 'error', ARGV[4] .. which)
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('LPUSH', KEYS[3], ARGV[1])
redis.call('HINCRBY', KEYS[4], info[2], 1)
redis.call('LPUSH', KEYS[5], 1)
redis.call('LTRIM', KEYS[5], 0, 63)
return {'requeued'}
"""
    )

    def give_up(self, claim: Claim, worker: str, reason: str) -> str:
        """Stop a claimed job for `reason`: 'requeued' while attempts remain, else 'failed'
        with the reason ('canceled' when the client had asked); 'lost' when the claim is no
        longer this worker's."""
        script = self.redis.register_script(self._GIVE_UP_LUA)
        keys = [job_key(claim.job_id), LEASES, QUEUE, QUEUED_PER_ACCOUNT, WAKE]
        args = [claim.job_id, worker, claim.attempt, reason]
        answer = [_text(part) for part in script(keys=keys, args=args)]
        if answer[0] == "cancel":
            done = self.finish(claim, worker, "canceled", "canceled by the client")
            return "canceled" if done else "lost"
        if answer[0] == "last":
            return "failed" if self.finish(claim, worker, "failed", reason + answer[1]) else "lost"
        return answer[0]

    def file_owners(self, job_ids: list[str]) -> dict[str, dict[str, Any] | None]:
        """Per job id, what the sweeper needs to know of its files: status, attempts and the
        video its record names; None for a job whose record is gone (expired)."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(job_key(job_id), "status", "attempts", "video")
        owners = {}
        for job_id, (status, attempts, video) in zip(job_ids, pipe.execute(), strict=True):
            if status is None:
                owners[job_id] = None
                continue
            owners[job_id] = {
                "status": _text(status),
                "attempts": int(attempts or 0),
                "video": _text(video) if video else "",
            }
        return owners

    def count_swept(self, counts: dict[str, int]) -> None:
        """Add to the SWEPT counters (jobs, videos, partials, attempts)."""
        pipe = self.redis.pipeline(transaction=False)
        for kind, count in counts.items():
            if count:
                pipe.hincrby(SWEPT, kind, count)
        pipe.execute()

    def swept_counts(self) -> dict[str, int]:
        """The SWEPT counters, every kind of SWEPT_KINDS present (0 before any sweep)."""
        counts = {_text(kind): int(value) for kind, value in self.redis.hgetall(SWEPT).items()}
        return {**dict.fromkeys(SWEPT_KINDS, 0), **counts}

    def server_time(self) -> float:
        seconds, micros = self.redis.time()
        return seconds + micros / 1e6

    # --- a read-only view of everything (the doctor) ----------------------------------------

    def snapshot(
        self,
        worker_ttl_seconds: float,
        *,
        limit: int,
        finished_within: float | None = None,
        stop: Callable[[], bool] = lambda: False,
    ) -> StoreSnapshot:
        """Queue, leases, workers, the pool and up to `limit` job records, changing nothing.
        Jobs that ended more than `finished_within` seconds ago are read but not kept; `stop`
        (asked between batches) ends the job scan early. A record this version cannot read is
        counted and described, never raised."""
        now = self.server_time()
        scan = self._scan_jobs(now, limit, finished_within, stop)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(WORKERS).zrange(WORKERS_SEEN, 0, -1, withscores=True)
        pipe.get(POOL_HEARTBEAT).get(POOL_SUBMISSION).llen(QUEUE).zcard(LEASES)
        workers, seen, heartbeat, submission, queue_length, leases = pipe.execute()
        return StoreSnapshot(
            server_time=now,
            jobs=tuple(scan.jobs),
            jobs_scanned=scan.scanned,
            unreadable=tuple(scan.unreadable[:SNAPSHOT_UNREADABLE_SHOWN]),
            unreadable_count=len(scan.unreadable),
            queue_length=queue_length,
            leases=leases,
            workers={_text(worker): worker_info(info) for worker, info in workers.items()},
            workers_seen={_text(worker): float(at) for worker, at in seen},
            worker_ttl_seconds=worker_ttl_seconds,
            pool_heartbeat=_number(heartbeat),
            pool_submission=_text(submission) if submission else None,
        )

    def _scan_jobs(
        self, now: float, limit: int, finished_within: float | None, stop: Callable[[], bool]
    ) -> _JobScan:
        job_keys = []
        for key in self.redis.scan_iter(match=job_key("*"), count=1000):
            job_keys.append(_text(key))
            if len(job_keys) >= limit or stop():
                break
        scan = _JobScan([], [], len(job_keys))
        for start in range(0, len(job_keys), SNAPSHOT_BATCH):
            batch = job_keys[start : start + SNAPSHOT_BATCH]
            pipe = self.redis.pipeline(transaction=False)
            for key in batch:
                pipe.hgetall(key)
            for key, raw in zip(batch, pipe.execute(), strict=True):
                if raw:  # else expired since the scan
                    scan.add(key, raw, now, finished_within)
            if stop():
                break
        return scan


@dataclass
class _JobScan:
    jobs: list[JobRecord]
    unreadable: list[UnreadableJob]
    scanned: int

    def add(self, key: str, raw: dict, now: float, finished_within: float | None) -> None:
        try:
            record = JobRecord.from_redis(raw)
        except BadJobRecord as error:
            self.unreadable.append(UnreadableJob(key, str(error)))
            return
        if _kept(record, now, finished_within):
            self.jobs.append(record)


def _kept(record: JobRecord, now: float, finished_within: float | None) -> bool:
    if finished_within is None or not record.status.ended:
        return True
    return record.finished_at is not None and now - record.finished_at <= finished_within


def _number(value: bytes | None) -> float | None:
    """A number another process stored, or None (not set, or not a number)."""
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
