"""The submit path's steps, in order: parse and validate the body, check the Idempotency-Key,
admit with the memory model, check Redis has room, then one round trip to Redis (the submit
script authenticates, rate limits, deduplicates and enqueues). Nothing here goes through
FastAPI's dependency or body machinery: see the submit routes in service/routes/jobs.py."""

from __future__ import annotations

import contextlib
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from service import auth, memory_model
from service.config import Settings
from service.jobstore import (
    IdempotencyConflict,
    QueueFull,
    RateLimited,
    Submission,
    UnknownKey,
    params_hash,
)
from service.params import GenerationParams
from service.redis_memory import RETRY_AFTER_SECONDS as MEMORY_RETRY_AFTER_SECONDS
from service.routes.deps import known_account, unauthenticated
from service.routes.errors import RequestRefused
from service.routes.schemas import public_job

MAX_IDEMPOTENCY_KEY_CHARS = 200
ParsedBody = TypeVar("ParsedBody", bound=BaseModel)


def parse_body(model: type[ParsedBody], body: bytes) -> ParsedBody:
    """pydantic parses and validates the JSON in one pass; errors read as FastAPI's would."""
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise RequestValidationError(
            [{**problem, "loc": ("body", *problem["loc"])} for problem in error.errors()]
        ) from None


def body_openapi(model: type[BaseModel]) -> dict[str, Any]:
    """What FastAPI would document for a route whose headers and body it parsed itself."""
    return {
        "parameters": [
            {
                "name": name,
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
            }
            for name in ("authorization", "idempotency-key")
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": model.model_json_schema(ref_template="#/components/schemas/{model}")
                }
            },
        },
    }


@contextlib.asynccontextmanager
async def key_checked_first(request: Request, key: str):
    """Refusals made before the submit script (which authenticates) are told only to a
    known key: an unknown one hears 401, never what was wrong with its body. The extra
    lookup is spent on refused requests only, so the accepted path stays one round trip."""
    try:
        yield
    except (RequestRefused, RequestValidationError):
        await known_account(request, key)
        raise


async def submission(request: Request, params: GenerationParams, key: str) -> Submission:
    """The submit script's call for valid parameters, once Redis has room for it."""
    settings: Settings = request.app.state.settings
    idempotency_key = request.headers.get("idempotency-key")
    if idempotency_key is not None:
        _check_idempotency_key(idempotency_key)
    admit(settings, params)
    refusal = await request.app.state.memory.refusal()
    if refusal is not None:
        raise RequestRefused(503, refusal, {"Retry-After": str(MEMORY_RETRY_AFTER_SECONDS)})
    values = params.model_dump()
    return Submission(
        "key",
        auth.digest(key),
        values,
        settings.max_attempts,
        settings.max_queued_per_account,
        idempotency_key,
        settings.rate_limit_per_minute,
        body_hash=params_hash(values) if idempotency_key else "",
    )


async def submitted(request: Request, job: Submission) -> dict[str, Any]:
    """The job the submit script made (or found for its Idempotency-Key), as a `Job`."""
    state = request.app.state
    with _submission_errors(state.settings, request):
        job_record, created = job.outcome(await state.submit_script(job.keys(), job.args()))
    if created:
        state.metrics.submitted.inc()
    return public_job(job_record)


def admission_device_gib(settings: Settings) -> float:
    """Memory a job may use on one worker: its GPU, or host RAM for CPU workers."""
    return settings.worker_gpu_memory_gib or settings.worker_host_memory_gib


def admit(settings: Settings, params: GenerationParams) -> None:
    plan = memory_model.plan_generation(
        memory_model.profile_for(settings.model),
        params.num_frames,
        params.height,
        params.width,
        params.guidance_scale,
        admission_device_gib(settings),
        settings.gpus_per_job,
        settings.dit_precision,
    )
    if not plan.fits:
        raise RequestRefused(
            422,
            "no configured worker can run this job: " + plan.describe(),
            estimate_gib=round(plan.peak_gib, 2),
            worker_memory_gib=admission_device_gib(settings),
        )


@contextlib.contextmanager
def _submission_errors(settings: Settings, request: Request):
    """The submit script's refusals as HTTP answers."""
    try:
        yield
    except UnknownKey:
        raise unauthenticated(request, "unknown API key") from None
    except RateLimited as limited:
        raise RequestRefused(
            429,
            f"rate limit of {settings.rate_limit_per_minute} job submissions per minute exceeded",
            {"Retry-After": str(limited.retry_after_seconds)},
        ) from None
    except IdempotencyConflict as conflict:
        raise RequestRefused(
            422,
            f"Idempotency-Key {conflict.idempotency_key!r} was used with a different body "
            f"(job {conflict.job_id}); send the same body to get that job again, or a new key "
            "for a new job",
            field="Idempotency-Key",
            job_id=conflict.job_id,
        ) from None
    except QueueFull:
        raise RequestRefused(
            429,
            f"the account already has {settings.max_queued_per_account} queued jobs",
            {"Retry-After": "10"},
        ) from None


def _check_idempotency_key(key: str) -> None:
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_CHARS or not key.isprintable():
        raise RequestRefused(
            422,
            f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} printable characters",
            field="Idempotency-Key",
        )
