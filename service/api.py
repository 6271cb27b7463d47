"""The HTTP API: authenticate, validate, admit with the memory model, enqueue. No Ray here.

An unknown key is answered 401 before anything about the request body is said; a client address
with too many 401s is answered 429 before its key is looked up (service/auth_failures.py)."""

from __future__ import annotations

import contextlib
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import redis
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from service import __version__, auth, memory_model
from service.auth_failures import FailedAuthLimiter
from service.body_limit import BodySizeLimit
from service.config import Settings
from service.jobstore import (
    SUBMIT_LUA,
    IdempotencyConflict,
    JobStore,
    QueueFull,
    RateLimited,
    Submission,
    UnknownKey,
    connect,
    connect_async,
    is_valid_job_id,
    params_hash,
)
from service.params import GenerationParams
from service.readiness import READY_TIMEOUT_SECONDS, readiness
from service.redis_memory import RETRY_AFTER_SECONDS as MEMORY_RETRY_AFTER_SECONDS
from service.redis_memory import MemoryGuard
from service.web import mount_web

MAX_BODY_BYTES = 64 * 1024
MAX_IDEMPOTENCY_KEY_CHARS = 200
MAX_PAGE = 100
REDIS_RETRY_AFTER_SECONDS = "2"
ParsedBody = TypeVar("ParsedBody", bound=BaseModel)


class ErrorField(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    """Every error answer: `{"error": ..., "fields": [...]}` (fields only for invalid input)."""

    model_config = ConfigDict(extra="allow")
    error: str
    fields: list[ErrorField] | None = None


_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
_ERRORS = {
    400: ("Body is not parseable JSON (invalid UTF-8, nested too deep)", None),
    401: ("Missing or unknown API key (answered before the body is judged)", None),
    404: (
        "No such job for this account: it never existed, belongs to another account, or "
        "finished longer ago than the retention (MOCHI_RESULT_TTL_SECONDS)",
        None,
    ),
    409: ("The job is not in a state that allows this", None),
    413: ("Request body over the size limit", None),
    422: (
        "Invalid input (`fields` names each problem), or an Idempotency-Key reused with "
        "another body",
        None,
    ),
    429: (
        "Rate limit, queued-job cap, or too many failed authentications from this address",
        _RETRY_AFTER,
    ),
    503: ("Job store (Redis) unavailable, or its memory at the high-water mark", _RETRY_AFTER),
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI documentation of the error answers a route can give."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description, headers = _ERRORS[status]
        documented[status] = {"model": ErrorBody, "description": description}
        if headers:
            documented[status]["headers"] = headers
    return documented


# Every route may be refused for its size (413) or find Redis down (503); job routes need a key.
_ANY = (413, 503)
_JOB = (401, 404, 422, 429, *_ANY)
_SUBMIT = (400, 401, 422, 429, *_ANY)


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.headers, self.extra = status, message, headers, extra


class LegacyGenerateRequest(GenerationParams):
    """The field report's body, `{"prompt": ..., "account_id": ...}`, kept for old clients."""

    model_config = ConfigDict(extra="forbid")
    account_id: str | None = Field(default=None, max_length=63)


class Metrics:
    def __init__(self, store: JobStore):
        self.registry = CollectorRegistry()
        self.submitted = Counter(
            "mochi_jobs_submitted", "Jobs accepted by this API process", registry=self.registry
        )
        self.rejected = Counter(
            "mochi_requests_rejected",
            "Requests refused, by HTTP status",
            ["status"],
            registry=self.registry,
        )
        queue = Gauge("mochi_queue_length", "Jobs waiting in the queue", registry=self.registry)
        queue.set_function(store.queue_length)
        self.registry.register(SweptCollector(store))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class SweptCollector:
    """`mochi_swept_total{kind=...}`: what the sweeper deleted, from its counters in Redis
    (shared by every API replica and the sweeper, so they survive restarts)."""

    def __init__(self, store: JobStore):
        self.store = store

    def describe(self):
        return []  # not read at registration: Redis may be down then

    def collect(self):
        family = CounterMetricFamily(
            "mochi_swept", "Expired jobs and orphaned files deleted, by kind", labels=["kind"]
        )
        for kind, count in sorted(self.store.swept_counts().items()):
            family.add_metric([kind], count)
        yield family


def human_duration(seconds: float) -> str:
    """7 days, 1 hour, 90 minutes, 45 seconds: the largest unit that says it exactly."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds:g} second{'s' if seconds != 1 else ''}"


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def public_job(job: dict[str, Any]) -> dict[str, Any]:
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
    )
    if not plan.fits:
        raise ApiError(
            422,
            "no configured worker can run this job: " + plan.describe(),
            estimate_gib=round(plan.peak_gib, 2),
            worker_memory_gib=admission_device_gib(settings),
        )


def create_app(settings: Settings, client: redis.Redis | None = None) -> FastAPI:
    client = client or connect(settings, socket_timeout=5.0)
    store = JobStore.from_settings(client, settings)
    metrics = Metrics(store)
    output_dir = Path(settings.output_dir).resolve()
    failures = FailedAuthLimiter(settings.auth_failures_per_minute)
    kept_for = human_duration(settings.result_ttl_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        with contextlib.suppress(redis.RedisError):
            # Redis down: /readyz says so, and the keys are reconciled at the next start.
            auth.reconcile_bootstrap_keys(client, settings.bootstrap_api_keys)
        # The hot path: async, and authentication, rate limit and enqueue in one round trip.
        # Its clients live on the server's event loop, so they are made here.
        async_client = connect_async(settings)
        # /readyz's own client: a Redis stall answers 503 in about a second, whatever the
        # submissions in flight on the other client wait for.
        ready_client = connect_async(settings, socket_timeout=READY_TIMEOUT_SECONDS)
        app.state.async_redis = async_client
        app.state.ready_redis = ready_client
        app.state.submit_script = async_client.register_script(SUBMIT_LUA)
        app.state.memory = MemoryGuard(async_client, settings.redis_high_water)
        yield
        await async_client.aclose()
        await ready_client.aclose()

    # Swagger UI and ReDoc load their assets from a CDN into the origin that holds the key:
    # off unless asked for. The OpenAPI document itself is always served.
    docs = "/docs" if settings.docs_enabled else None
    redoc = "/redoc" if settings.docs_enabled else None
    app = FastAPI(
        title="Mochi video generation",
        version=__version__,
        lifespan=lifespan,
        docs_url=docs,
        redoc_url=redoc,
    )
    app.state.store, app.state.settings = store, settings
    app.state.redis = client
    app.state.failures = failures

    _install_error_handlers(app, metrics)
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)

    def owned_job(job_id: str, account: str) -> dict[str, Any]:
        job = store.get(job_id) if is_valid_job_id(job_id) else None
        if job is None or job["account"] != account:
            raise ApiError(
                404,
                f"no job {job_id[:64]!r}: it never existed or expired "
                f"(finished jobs are kept {kept_for})",
            )
        return job

    async def submission(request: Request, params: GenerationParams, key: str) -> Submission:
        """The submit script's call for valid parameters, once Redis has room for it."""
        idempotency_key = request.headers.get("idempotency-key")
        if idempotency_key is not None:
            _check_idempotency_key(idempotency_key)
        admit(settings, params)
        refusal = await request.app.state.memory.refusal()
        if refusal is not None:
            raise ApiError(503, refusal, {"Retry-After": str(MEMORY_RETRY_AFTER_SECONDS)})
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
        submit_script = request.app.state.submit_script
        with _submission_errors(settings, request):
            job_record, created = job.outcome(await submit_script(job.keys(), job.args()))
        if created:
            metrics.submitted.inc()
        return public_job(job_record)

    @contextlib.asynccontextmanager
    async def key_checked_first(request: Request, key: str):
        """Refusals made before the submit script (which authenticates) are told only to a
        known key: an unknown one hears 401, never what was wrong with its body. The extra
        lookup is spent on refused requests only, so the accepted path stays one round trip."""
        try:
            yield
        except (ApiError, RequestValidationError):
            await known_account(request, key)
            raise

    # The hot path reads its headers and body itself: FastAPI's dependency and body machinery
    # cost as much as the rest of the request. The OpenAPI document still describes both.
    @app.post(
        "/v1/jobs",
        status_code=202,
        responses=error_responses(*_SUBMIT),
        openapi_extra=_submit_openapi(GenerationParams),
    )
    async def create_job(request: Request) -> JSONResponse:
        key = await api_key(request, request.headers.get("authorization"))
        async with key_checked_first(request, key):
            params = _parse_body(GenerationParams, await request.body())
            job = await submission(request, params, key)
        return JSONResponse(await submitted(request, job), status_code=202)

    @app.post(
        "/generate",
        status_code=202,
        responses=error_responses(*_SUBMIT),
        openapi_extra=_submit_openapi(LegacyGenerateRequest),
    )
    async def legacy_generate(request: Request) -> dict[str, Any]:
        key = await api_key(request, request.headers.get("authorization"))
        account = await known_account(request, key)
        body = _parse_body(LegacyGenerateRequest, await request.body())
        if body.account_id is not None and body.account_id != account:
            raise ApiError(
                422, f"account_id {body.account_id!r} is not the account of this API key"
            )
        params = GenerationParams(**body.model_dump(exclude={"account_id"}))
        created = await submitted(request, await submission(request, params, key))
        return {**created, "job_id": created["id"]}

    @app.get("/v1/jobs", responses=error_responses(*_JOB))
    def list_jobs(
        account: Account,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> dict[str, Any]:
        jobs, total = store.list_for_account(account, offset, limit)
        next_offset = offset + limit if offset + limit < total else None
        return {"jobs": [public_job(j) for j in jobs], "total": total, "next_offset": next_offset}

    @app.get("/v1/jobs/{job_id}", responses=error_responses(*_JOB))
    def get_job(job_id: str, account: Account) -> dict[str, Any]:
        return public_job(owned_job(job_id, account))

    @app.post("/v1/jobs/{job_id}/cancel", status_code=202, responses=error_responses(409, *_JOB))
    def cancel_job(job_id: str, account: Account) -> dict[str, Any]:
        owned_job(job_id, account)
        outcome = store.cancel(job_id, account)
        if outcome not in ("canceled", "canceling"):
            state = outcome.removeprefix("already-")
            raise ApiError(409, f"job {job_id} is already {state}; nothing to cancel")
        return public_job(owned_job(job_id, account))

    @app.get(
        "/v1/jobs/{job_id}/video",
        response_class=FileResponse,
        responses={
            200: {"content": {"video/mp4": {}}, "description": "The job's MP4"},
            **error_responses(409, *_JOB),
        },
    )
    def get_video(job_id: str, account: Account):
        job = owned_job(job_id, account)
        if job["status"] != "succeeded":
            raise ApiError(409, f"job {job_id} is {job['status']}; the video exists once succeeded")
        path = (output_dir / job["video"]).resolve()
        if path.parent != output_dir or not path.is_file():
            raise ApiError(
                503, f"video of job {job_id} is missing from the output volume {output_dir}"
            )
        return FileResponse(path, media_type="video/mp4", filename=f"{job_id}.mp4")

    # async, and nothing but memory: liveness must not wait on Redis nor on the thread pool
    # that Redis-bound requests fill during a Redis stall.
    @app.get("/healthz", responses=error_responses(413))
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        responses={
            503: {
                "description": "Not ready: Redis unreachable or slow, no live worker, or no "
                "live worker progressing"
            }
        },
    )
    async def readyz(request: Request) -> JSONResponse:
        status, body = await readiness(
            request.app.state.ready_redis, _redis_address(settings), settings.worker_ttl_seconds
        )
        return JSONResponse(body, status_code=status)

    @app.get("/version", responses=error_responses(413))
    async def version() -> dict[str, str]:
        return {"version": __version__, "model": settings.model}

    @app.get(
        "/metrics",
        responses={
            200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
            **error_responses(413),
        },
    )
    def prometheus() -> Response:
        try:
            body = metrics.render()
        except redis.RedisError:
            body = b"# redis unreachable: queue length and sweep counts unavailable\n"
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    mount_web(app)
    return app


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _unauthenticated(request: Request, message: str) -> ApiError:
    request.app.state.failures.failed(_client_address(request))
    return ApiError(401, message, _auth_headers())


async def api_key(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    # async: a sync dependency would cost a thread-pool hop on every request.
    failures: FailedAuthLimiter = request.app.state.failures
    address = _client_address(request)
    retry_after = failures.retry_after(address)
    if retry_after is not None:
        raise ApiError(
            429,
            f"too many failed authentications from {address} (limit "
            f"{failures.per_minute} a minute, MOCHI_AUTH_FAILURES_PER_MINUTE)",
            {"Retry-After": str(retry_after)},
        )
    token = auth.bearer_token(authorization)
    if token is None:
        raise _unauthenticated(request, "missing API key: send 'Authorization: Bearer <key>'")
    return token


ApiKey = Annotated[str, Depends(api_key)]


def current_account(request: Request, token: ApiKey) -> str:
    # Reads are not rate limited: only submissions spend GPU time.
    account = auth.account_for(request.app.state.redis, token)
    if account is None:
        raise _unauthenticated(request, "unknown API key")
    return account


async def known_account(request: Request, token: str) -> str:
    account = await auth.account_for_async(request.app.state.async_redis, token)
    if account is None:
        raise _unauthenticated(request, "unknown API key")
    return account


def _rate_limited(per_minute: int, seconds_left: int) -> ApiError:
    return ApiError(
        429,
        f"rate limit of {per_minute} job submissions per minute exceeded",
        {"Retry-After": str(seconds_left)},
    )


@contextlib.contextmanager
def _submission_errors(settings: Settings, request: Request):
    """The submit script's refusals as HTTP answers."""
    try:
        yield
    except UnknownKey:
        raise _unauthenticated(request, "unknown API key") from None
    except RateLimited as limited:
        raise _rate_limited(settings.rate_limit_per_minute, limited.retry_after_seconds) from None
    except IdempotencyConflict as conflict:
        raise ApiError(
            422,
            f"Idempotency-Key {conflict.idempotency_key!r} was used with a different body "
            f"(job {conflict.job_id}); send the same body to get that job again, or a new key "
            "for a new job",
            field="Idempotency-Key",
            job_id=conflict.job_id,
        ) from None
    except QueueFull:
        raise ApiError(
            429,
            f"the account already has {settings.max_queued_per_account} queued jobs",
            {"Retry-After": "10"},
        ) from None


Account = Annotated[str, Depends(current_account)]


def app_from_env() -> FastAPI:
    """For `uvicorn --factory service.api:app_from_env`."""
    return create_app(Settings.from_env())


def _auth_headers() -> dict[str, str]:
    return {"WWW-Authenticate": "Bearer"}


def _check_idempotency_key(key: str) -> None:
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_CHARS or not key.isprintable():
        raise ApiError(
            422,
            f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} printable characters",
            field="Idempotency-Key",
        )


def _redis_address(settings: Settings) -> str:
    return settings.redis_url.split("@")[-1]


def _error_response(status: int, message: str, headers=None, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def _submit_openapi(model: type[BaseModel]) -> dict[str, Any]:
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


def _parse_body(model: type[ParsedBody], body: bytes) -> ParsedBody:
    """pydantic parses and validates the JSON in one pass; errors read as FastAPI's would."""
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise RequestValidationError(
            [{**problem, "loc": ("body", *problem["loc"])} for problem in error.errors()]
        ) from None


def _validation_problems(error: RequestValidationError) -> list[dict[str, str]]:
    problems = []
    for item in error.errors():
        location = [str(part) for part in item.get("loc", ()) if part != "body"]
        message = item.get("msg", "invalid")
        limit = item.get("ctx", {})
        if limit and item.get("type") in (
            "greater_than_equal",
            "less_than_equal",
            "string_too_short",
            "string_too_long",
        ):
            message = f"{message} (limit {next(iter(limit.values()))})"
        problems.append({"field": ".".join(location) or "body", "message": message})
    return problems


def _install_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> JSONResponse:
        metrics.rejected.labels(str(error.status)).inc()
        return _error_response(error.status, error.message, error.headers, **error.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        metrics.rejected.labels(str(error.status_code)).inc()
        return _error_response(error.status_code, str(error.detail), error.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        metrics.rejected.labels("422").inc()
        return _error_response(422, "invalid request", fields=_validation_problems(error))

    @app.exception_handler(redis.RedisError)
    async def _redis_down(request: Request, error: redis.RedisError) -> JSONResponse:
        metrics.rejected.labels("503").inc()
        return _error_response(
            503,
            "job store unavailable, retry shortly",
            {"Retry-After": REDIS_RETRY_AFTER_SECONDS},
        )
