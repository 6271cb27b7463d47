"""Every Redis key of the service, each spelled once. Every module that reads or writes Redis
(the job store and its scripts, auth, the pool, the supervisor, readiness, the doctor) takes
its key names from here."""

from __future__ import annotations

import json

PREFIX = "mochi:"

# --- the job store ---------------------------------------------------------------------------
# Hash per job: its record (service.records.JobRecord), `mochi:job:<id>`.
JOB_PREFIX = PREFIX + "job:"
# List of job ids waiting to be claimed, oldest first.
QUEUE = PREFIX + "queue"
# Zset: the ids of claimed jobs, scored by the server time their lease expires.
LEASES = PREFIX + "leases"
# List a submission pushes to, so idle workers (BLPOP) wake; trimmed to a few entries.
WAKE = PREFIX + "wake"
# Hash: account -> how many of its jobs are queued (the per-account cap).
QUEUED_PER_ACCOUNT = PREFIX + "queued-per-account"
# Zset per account, `mochi:account:<account>:jobs`: its job ids scored by creation time.
ACCOUNT_PREFIX = PREFIX + "account:"
ACCOUNT_JOBS_SUFFIX = ":jobs"
# String per (account, Idempotency-Key), `mochi:idempotency:<account>:<key>`: "<id>:<body hash>".
IDEMPOTENCY_PREFIX = PREFIX + "idempotency:"
# Zset of ended jobs by expiry time, members "<job id> <account>": what to remove from account
# lists once the records expired.
EXPIRING = PREFIX + "expiring"
# String per worker, `mochi:last-claim:<worker>`: its last claim, "<token> <job id>", so a
# repeat of that claim answers the same job.
LAST_CLAIM_PREFIX = PREFIX + "last-claim:"
# Hash: what the sweeper removed, by kind (shared by every sweeper and API replica).
SWEPT = PREFIX + "swept"

# --- workers and the pool --------------------------------------------------------------------
# Hash: worker id -> its registration (JSON: model, device memory, current job, group error...).
WORKERS = PREFIX + "workers"
# Zset: worker id scored by the server time it was last seen; live means seen within the
# service's worker_ttl_seconds.
WORKERS_SEEN = PREFIX + "workers-seen"
# String: server time of the pool driver's last tick (expires after a minute without one).
POOL_HEARTBEAT = PREFIX + "pool-heartbeat"
# String: the Ray job submission id of the pool driver the supervisor submitted last.
POOL_SUBMISSION = PREFIX + "pool-submission"

# --- API keys --------------------------------------------------------------------------------
# Hash: SHA-256 digest of an API key -> its account.
API_KEYS = PREFIX + "api-keys"
# Hash: digest -> {"created_at": unix seconds, "source": "created" | "bootstrap"}; never read
# to authenticate, so a key stored before this existed still works and lists with no time.
API_KEY_INFO = PREFIX + "api-key-info"
# Hash per account, `mochi:rate:<account>`: its submission rate's leaky bucket (level, at).
RATE_PREFIX = PREFIX + "rate:"


def job_key(job_id: str) -> str:
    return JOB_PREFIX + job_id


def account_jobs_key(account: str) -> str:
    return ACCOUNT_PREFIX + account + ACCOUNT_JOBS_SUFFIX


def idempotency_key(account: str, key: str) -> str:
    return f"{IDEMPOTENCY_PREFIX}{account}:{key}"


def last_claim_key(worker: str) -> str:
    return LAST_CLAIM_PREFIX + worker


def lua_literal(name: str) -> str:
    """A name above as a Lua string literal, for the scripts that derive keys (a JSON string
    of these plain characters is one)."""
    return json.dumps(name)
