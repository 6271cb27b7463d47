"""What probes and operators read: /healthz, /readyz, /version, /metrics. No key needed."""

from __future__ import annotations

import redis
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from service import __version__
from service.config import Settings
from service.readiness import readiness
from service.routes.deps import MetricsDep, SettingsDep
from service.routes.errors import error_responses
from service.routes.schemas import Health, NotReady, Ready, VersionInfo

router = APIRouter(tags=["health"])


# async, and nothing but memory: liveness must not wait on Redis nor on the thread pool
# that Redis-bound requests fill during a Redis stall.
@router.get("/healthz", response_model=Health, responses=error_responses(413))
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


# Its status is the answer (200 or 503), so the body is sent as readiness() wrote it.
@router.get(
    "/readyz",
    response_model=Ready,
    responses={
        503: {
            "model": NotReady,
            "description": "Not ready: Redis unreachable or slow, no live worker, or no "
            "live worker progressing",
        }
    },
)
async def readyz(request: Request, settings: SettingsDep) -> JSONResponse:
    status, body = await readiness(
        request.app.state.ready_redis, _redis_address(settings), settings.worker_ttl_seconds
    )
    return JSONResponse(body, status_code=status)


@router.get("/version", response_model=VersionInfo, responses=error_responses(413))
async def version(settings: SettingsDep) -> dict[str, str]:
    return {"version": __version__, "model": settings.model}


@router.get(
    "/metrics",
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
        **error_responses(413),
    },
)
def prometheus(metrics: MetricsDep) -> Response:
    try:
        body = metrics.render()
    except redis.RedisError:
        body = b"# redis unreachable: queue length and sweep counts unavailable\n"
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _redis_address(settings: Settings) -> str:
    """host:port of Redis, never its credentials."""
    return settings.redis_url.split("@")[-1]
