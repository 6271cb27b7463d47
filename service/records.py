"""What the job store holds, typed: a job's status, its record (decoded from its Redis hash here
and nowhere else), a worker's registration, and a read-only snapshot of the whole store.

Every reader shares these: the API (through JobStore.get), the workers, readiness and the
doctor, which may read the Redis of an older or newer service: a hash this version cannot read
raises BadJobRecord, naming the field, for the reader to report."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def active(self) -> bool:
        """Claimed: a worker holds its lease and heartbeats."""
        return self in ACTIVE_STATES

    @property
    def ended(self) -> bool:
        """Finished for good: its record expires result_ttl_seconds later."""
        return self in TERMINAL_STATES


ACTIVE_STATES = (JobStatus.STARTING, JobStatus.RUNNING)
TERMINAL_STATES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)

_TIME_FIELDS = (
    "created_at",
    "started_at",
    "claimed_at",
    "finished_at",
    "heartbeat_at",
    "lease_expires",
)
_COUNT_FIELDS = ("attempts", "max_attempts", "step", "total_steps")
# Stored only once something sets them; the dict shape leaves out those never set.
_TEXT_FIELDS = (
    "account",
    "worker",
    "error",
    "video",
    "idempotency",
    "cancel_token",
    "cancel_answer",
)
_JSON_FIELDS = ("params", "metrics")
_SHOWN_CHARS = 40


class BadJobRecord(ValueError):
    """A job hash this version cannot read; the message names the job and the field."""


@dataclass(frozen=True)
class JobRecord:
    """A job as its hash (service.keys.job_key) stores it; service.jobstore writes it."""

    id: str
    status: JobStatus
    account: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    max_attempts: int = 0
    step: int = 0
    total_steps: int = 0
    cancel_requested: bool = False
    created_at: float | None = None
    started_at: float | None = None
    claimed_at: float | None = None
    heartbeat_at: float | None = None
    lease_expires: float | None = None
    finished_at: float | None = None
    # The worker that holds (or last held) it; "" once the reaper requeued it.
    worker: str | None = None
    error: str | None = None
    # The file, in the shared output directory, of the attempt that succeeded.
    video: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    # The idempotency key (its Redis key) this job was submitted with.
    idempotency: str | None = None
    # The cancel that changed this job, for that call's repeats.
    cancel_token: str | None = None
    cancel_answer: str | None = None

    @classmethod
    def from_redis(cls, raw: Mapping[bytes | str, bytes | str]) -> JobRecord:
        """The record of an HGETALL answer; BadJobRecord for one this version cannot read."""
        stored = _texts(raw)
        job_id = stored.get("id")
        if not job_id:
            raise BadJobRecord("job record has no id")
        where = f"job {job_id[:64]}"
        status = stored.get("status")
        try:
            status = JobStatus(status)
        except ValueError:
            known = ", ".join(JobStatus)
            raise BadJobRecord(f"{where}: status {_shown(status)} is not one of {known}") from None
        values: dict[str, Any] = {name: stored.get(name) for name in _TEXT_FIELDS}
        values |= {name: _time(stored.get(name), where, name) for name in _TIME_FIELDS}
        values |= {name: _count(stored.get(name), where, name) for name in _COUNT_FIELDS}
        values |= {name: _object(stored.get(name), where, name) for name in _JSON_FIELDS}
        cancel = _count(stored.get("cancel_requested"), where, "cancel_requested")
        return cls(id=job_id, status=status, cancel_requested=bool(cancel), **values)

    def as_dict(self) -> dict[str, Any]:
        """The shape the API serves from (service.routes.schemas.public_job) and workers read:
        plain values, and no key for a text field the record never had."""
        job: dict[str, Any] = {"id": self.id, "status": self.status.value}
        job |= {name: value for name in _TEXT_FIELDS if (value := getattr(self, name)) is not None}
        job |= {name: getattr(self, name) for name in (*_TIME_FIELDS, *_COUNT_FIELDS)}
        job |= {name: getattr(self, name) for name in _JSON_FIELDS}
        job["cancel_requested"] = int(self.cancel_requested)
        return job


def _texts(raw: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    try:
        return {_text(name): _text(value) for name, value in raw.items()}
    except UnicodeDecodeError as error:
        raise BadJobRecord(f"job record is not UTF-8 text: {error}") from None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _shown(value: str | None) -> str:
    return repr(value[:_SHOWN_CHARS] if value is not None else value)


def _time(value: str | None, where: str, name: str) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise BadJobRecord(f"{where}: {name} {_shown(value)} is not a time") from None


def _count(value: str | None, where: str, name: str) -> int:
    try:
        return int(float(value or 0))
    except (ValueError, OverflowError):
        raise BadJobRecord(f"{where}: {name} {_shown(value)} is not a whole number") from None


def _object(value: str | None, where: str, name: str) -> dict[str, Any]:
    """A JSON object; what a bad one holds is not quoted (params carry the private prompt)."""
    try:
        decoded = json.loads(value or "{}")
    except ValueError:
        raise BadJobRecord(f"{where}: {name} is not JSON") from None
    if not isinstance(decoded, dict):
        raise BadJobRecord(f"{where}: {name} is a JSON {type(decoded).__name__}, not an object")
    return decoded


# --- workers -----------------------------------------------------------------------------------


def seen_cutoff(now: float, ttl_seconds: float) -> float:
    """The oldest sighting of a live worker: live means seen within the last ttl_seconds, the
    service's worker_ttl_seconds (readiness, the local stack and the doctor all ask this)."""
    return now - ttl_seconds


def live_workers(
    seen: Mapping[str, float], infos: Mapping[str, dict], now: float, ttl_seconds: float
) -> dict[str, dict[str, Any]]:
    """The registrations of the workers seen (worker -> server time) within ttl_seconds."""
    cutoff = seen_cutoff(now, ttl_seconds)
    return {worker: infos.get(worker) or {} for worker, at in seen.items() if float(at) >= cutoff}


def worker_info(raw: bytes | str | None) -> dict[str, Any]:
    """A worker's registration (JSON object); {} for none, or one this version cannot read."""
    try:
        info = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


# --- the whole store, read once ----------------------------------------------------------------


@dataclass(frozen=True)
class UnreadableJob:
    key: str
    error: str


@dataclass(frozen=True)
class StoreSnapshot:
    """What JobStore.snapshot read, for the doctor: never written back."""

    server_time: float
    jobs: tuple[JobRecord, ...]
    # Job hashes read; `jobs` holds those the snapshot was asked to keep.
    jobs_scanned: int
    # The first few job hashes that could not be read, and how many there were.
    unreadable: tuple[UnreadableJob, ...]
    unreadable_count: int
    queue_length: int
    leases: int
    workers: dict[str, dict[str, Any]]
    workers_seen: dict[str, float]
    worker_ttl_seconds: float
    pool_heartbeat: float | None
    pool_submission: str | None

    @property
    def live_workers(self) -> dict[str, dict[str, Any]]:
        return live_workers(
            self.workers_seen, self.workers, self.server_time, self.worker_ttl_seconds
        )
