"""What the API answers, as pydantic models: the OpenAPI document's job, job page, readiness and
the rest. `public_job` turns a job record of the store into the job the API shows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, WithJsonSchema

from service.records import JobStatus

# ISO 8601 in UTC with a Z, as `iso` writes it; kept a string so the text stays exactly that.
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


class Progress(BaseModel):
    step: int = Field(description="Denoising steps done")
    total: int = Field(description="Denoising steps of the job (num_inference_steps)")


class Job(BaseModel):
    id: str
    status: JobStatus
    progress: Progress
    attempts: int = Field(description="Attempts started; a lost lease starts another")
    error: str | None = Field(description="Why it failed or was canceled, or why it was retried")
    parameters: dict[str, Any] = Field(description="The generation parameters, defaults filled")
    created_at: Timestamp | None
    started_at: Timestamp | None
    finished_at: Timestamp | None
    video_url: str | None = Field(description="Where the MP4 is, once the job succeeded")
    worker: str | None = Field(description="The worker that holds or held the job")
    metrics: dict[str, Any] = Field(description="What the worker measured (seconds, GiB)")


class JobPage(BaseModel):
    """An account's jobs, newest first."""

    jobs: list[Job]
    total: int = Field(description="Jobs of the account, on every page")
    next_offset: int | None = Field(description="The next page's offset; null on the last page")


class LegacyJob(Job):
    """The job, plus `job_id` (its id again) as the field report's clients read it."""

    job_id: str


class Health(BaseModel):
    status: Literal["ok"]


class VersionInfo(BaseModel):
    version: str
    model: str = Field(description="The model the workers run (MOCHI_MODEL)")


class NotProgressing(BaseModel):
    """A live worker holding a job with no progress for longer than its stall_after."""

    worker: str
    job: str
    seconds_since_progress: float
    stall_after: float


class Ready(BaseModel):
    ready: Literal[True]
    workers: int = Field(description="Workers with a heartbeat within MOCHI_WORKER_TTL_SECONDS")
    not_progressing: list[NotProgressing]


class NotReady(BaseModel):
    ready: Literal[False]
    reason: str
    not_progressing: list[NotProgressing] | None = Field(
        default=None, description="Present when every live worker stopped progressing"
    )


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def public_job(job: dict[str, Any]) -> dict[str, Any]:
    """A `Job`, built as a plain dict: the submit path sends it without a validation pass."""
    done = job["status"] == "succeeded" and job.get("video")
    return {
        "id": job["id"],
        "status": job["status"],
        "progress": {"step": job["step"], "total": job["total_steps"]},
        "attempts": job["attempts"],
        "error": job.get("error") or None,
        "parameters": job["params"],
        "created_at": iso(job["created_at"]),
        "started_at": iso(job["started_at"]),
        "finished_at": iso(job["finished_at"]),
        "video_url": f"/v1/jobs/{job['id']}/video" if done else None,
        "worker": job.get("worker") or None,
        "metrics": job.get("metrics") or {},
    }
