"""/v1/jobs: submit (and the field report's /generate), list, read, cancel, download.

An unknown key is answered 401 before anything about the request body is said; a client address
with too many 401s is answered 429 before its key is looked up (service/auth_failures.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import ConfigDict, Field

from service.config import Settings
from service.jobstore import JobStore, is_valid_job_id
from service.params import GenerationParams
from service.routes.deps import Account, SettingsDep, StoreDep, api_key, known_account
from service.routes.errors import RequestRefused, error_responses
from service.routes.schemas import Job, JobPage, LegacyJob, public_job
from service.routes.submission import (
    body_openapi,
    key_checked_first,
    parse_body,
    submission,
    submitted,
)

MAX_PAGE = 100
# Every route may be refused for its size (413) or find Redis down (503); job routes need a key.
_ANY = (413, 503)
_JOB = (401, 404, 422, 429, *_ANY)
_SUBMIT = (400, 401, 422, 429, *_ANY)

router = APIRouter(tags=["jobs"])


class LegacyGenerateRequest(GenerationParams):
    """The field report's body, `{"prompt": ..., "account_id": ...}`, kept for old clients."""

    model_config = ConfigDict(extra="forbid")
    account_id: str | None = Field(default=None, max_length=63)


# The hot path reads its headers and body itself: FastAPI's dependency and body machinery
# cost as much as the rest of the request. The OpenAPI document still describes both, and the
# answer is sent as built, without a validation pass against its response model.
@router.post(
    "/v1/jobs",
    status_code=202,
    response_model=Job,
    responses=error_responses(*_SUBMIT),
    openapi_extra=body_openapi(GenerationParams),
)
async def create_job(request: Request) -> JSONResponse:
    key = await api_key(request, request.headers.get("authorization"))
    async with key_checked_first(request, key):
        params = parse_body(GenerationParams, await request.body())
        job = await submission(request, params, key)
    return JSONResponse(await submitted(request, job), status_code=202)


@router.post(
    "/generate",
    status_code=202,
    response_model=LegacyJob,
    responses=error_responses(*_SUBMIT),
    openapi_extra=body_openapi(LegacyGenerateRequest),
)
async def legacy_generate(request: Request) -> dict[str, Any]:
    key = await api_key(request, request.headers.get("authorization"))
    account = await known_account(request, key)
    body = parse_body(LegacyGenerateRequest, await request.body())
    if body.account_id is not None and body.account_id != account:
        raise RequestRefused(
            422, f"account_id {body.account_id!r} is not the account of this API key"
        )
    params = GenerationParams(**body.model_dump(exclude={"account_id"}))
    created = await submitted(request, await submission(request, params, key))
    return {**created, "job_id": created["id"]}


@router.get("/v1/jobs", response_model=JobPage, responses=error_responses(*_JOB))
def list_jobs(
    account: Account,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    jobs, total = store.list_for_account(account, offset, limit)
    next_offset = offset + limit if offset + limit < total else None
    return {"jobs": [public_job(j) for j in jobs], "total": total, "next_offset": next_offset}


def human_duration(seconds: float) -> str:
    """7 days, 1 hour, 90 minutes, 45 seconds: the largest unit that says it exactly."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds:g} second{'s' if seconds != 1 else ''}"


def find_owned_job(
    store: JobStore, settings: Settings, job_id: str, account: str
) -> dict[str, Any]:
    """The job record, or a 404 that says how long finished jobs are kept."""
    job = store.get(job_id) if is_valid_job_id(job_id) else None
    if job is None or job["account"] != account:
        raise RequestRefused(
            404,
            f"no job {job_id[:64]!r}: it never existed or expired "
            f"(finished jobs are kept {human_duration(settings.result_ttl_seconds)})",
        )
    return job


def owned_job(
    job_id: str, account: Account, store: StoreDep, settings: SettingsDep
) -> dict[str, Any]:
    return find_owned_job(store, settings, job_id, account)


OwnedJob = Annotated[dict[str, Any], Depends(owned_job)]


@router.get("/v1/jobs/{job_id}", response_model=Job, responses=error_responses(*_JOB))
async def get_job(job: OwnedJob) -> dict[str, Any]:
    return public_job(job)


@router.post(
    "/v1/jobs/{job_id}/cancel",
    status_code=202,
    response_model=Job,
    responses=error_responses(409, *_JOB),
)
def cancel_job(job: OwnedJob, store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
    job_id, account = job["id"], job["account"]
    outcome = store.cancel(job_id, account)
    if outcome not in ("canceled", "canceling"):
        state = outcome.removeprefix("already-")
        raise RequestRefused(409, f"job {job_id} is already {state}; nothing to cancel")
    return public_job(find_owned_job(store, settings, job_id, account))


@router.get(
    "/v1/jobs/{job_id}/video",
    response_class=FileResponse,
    responses={
        200: {"content": {"video/mp4": {}}, "description": "The job's MP4"},
        **error_responses(409, *_JOB),
    },
)
def get_video(job: OwnedJob, settings: SettingsDep):
    job_id = job["id"]
    if job["status"] != "succeeded":
        raise RequestRefused(
            409, f"job {job_id} is {job['status']}; the video exists once succeeded"
        )
    output_dir = Path(settings.output_dir).resolve()
    path = (output_dir / job["video"]).resolve()
    if path.parent != output_dir or not path.is_file():
        raise RequestRefused(
            503, f"video of job {job_id} is missing from the output volume {output_dir}"
        )
    return FileResponse(path, media_type="video/mp4", filename=f"{job_id}.mp4")
