"""Every refusal is one JSON shape, `{"error": ..., "fields": [...]}`, whatever raised it: a
route, FastAPI's validation, Starlette's routing, or Redis. Also their OpenAPI documentation."""

from __future__ import annotations

from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.metrics import Metrics

REDIS_RETRY_AFTER_SECONDS = "2"
# Pydantic's error types whose limit is named in the message: "(limit 2000)".
_LIMIT_TYPES = ("greater_than_equal", "less_than_equal", "string_too_short", "string_too_long")


class ErrorField(BaseModel):
    field: str = Field(description="The refused input: a body field, `limit`, `offset`, ...")
    message: str


class ErrorBody(BaseModel):
    """Every error answer: `{"error": ..., "fields": [...]}` (fields only for invalid input)."""

    model_config = ConfigDict(extra="allow")
    error: str
    fields: list[ErrorField] | None = Field(
        default=None, description="Invalid input only: each problem, by field"
    )
    field: str | None = Field(
        default=None, description="The header a refusal is about (`Idempotency-Key`)"
    )
    job_id: str | None = Field(
        default=None, description="The job an Idempotency-Key reused with another body names"
    )
    estimate_gib: float | None = Field(
        default=None, description="A job no worker can run: the memory it needs"
    )
    worker_memory_gib: float | None = Field(
        default=None, description="A job no worker can run: the memory a worker has"
    )


class RequestRefused(Exception):
    """A refusal a route raises; extra keywords become fields of the error body."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.headers, self.extra = status, message, headers, extra


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
_ERRORS: dict[int, tuple[str, dict[str, Any] | None]] = {
    400: ("Body is not parseable JSON (invalid UTF-8, nested too deep)", None),
    401: (
        "Missing or unknown API key (answered before the body is judged)",
        {"WWW-Authenticate": _header("Always `Bearer`")},
    ),
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


def error_response(status: int, message: str, headers=None, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def validation_problems(error: RequestValidationError) -> list[dict[str, str]]:
    """Each problem as `{"field": "num_frames", "message": "... (limit 163)"}`."""
    problems = []
    for item in error.errors():
        location = [str(part) for part in item.get("loc", ()) if part != "body"]
        message = item.get("msg", "invalid")
        limit = item.get("ctx", {})
        if limit and item.get("type") in _LIMIT_TYPES:
            message = f"{message} (limit {next(iter(limit.values()))})"
        problems.append({"field": ".".join(location) or "body", "message": message})
    return problems


def install_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    @app.exception_handler(RequestRefused)
    async def _refused(request: Request, error: RequestRefused) -> JSONResponse:
        metrics.rejected.labels(str(error.status)).inc()
        return error_response(error.status, error.message, error.headers, **error.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        metrics.rejected.labels(str(error.status_code)).inc()
        return error_response(error.status_code, str(error.detail), error.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        metrics.rejected.labels("422").inc()
        return error_response(422, "invalid request", fields=validation_problems(error))

    @app.exception_handler(redis.RedisError)
    async def _redis_down(request: Request, error: redis.RedisError) -> JSONResponse:
        metrics.rejected.labels("503").inc()
        return error_response(
            503,
            "job store unavailable, retry shortly",
            {"Retry-After": REDIS_RETRY_AFTER_SECONDS},
        )
