"""The HTTP API, assembled: its state, middleware, error handlers, routers and lifespan. No Ray
here. The routes are in service/routes/: jobs, health and the web page, one router each."""

from __future__ import annotations

import contextlib
from contextlib import asynccontextmanager

import redis
from fastapi import FastAPI
from starlette.routing import BaseRoute

from service import __version__, auth
from service.auth_failures import FailedAuthLimiter
from service.body_limit import BodySizeLimit
from service.config import Settings
from service.jobstore import SUBMIT_LUA, JobStore, connect, connect_async
from service.metrics import Metrics
from service.readiness import READY_TIMEOUT_SECONDS
from service.redis_memory import MemoryGuard
from service.routes import health, jobs, web
from service.routes.errors import install_error_handlers

MAX_BODY_BYTES = 64 * 1024


def create_app(settings: Settings, client: redis.Redis | None = None) -> FastAPI:
    client = client or connect(settings, socket_timeout=5.0)

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
        routes=_routes(),
    )
    store = JobStore.from_settings(client, settings)
    app.state.settings, app.state.store, app.state.redis = settings, store, client
    app.state.metrics = Metrics(store)
    app.state.failures = FailedAuthLimiter(settings.auth_failures_per_minute)

    install_error_handlers(app, app.state.metrics)
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    return app


def _routes() -> list[BaseRoute]:
    """The routers' routes, as the app's own. FastAPI's `include_router` keeps each router a
    level down and matches it twice at every request (about 90 more calls a request on the
    submit path); a router's tags and responses are already in its routes. The jobs router
    first: the submit route is the first a request is matched against."""
    return [route for router in (jobs.router, health.router, web.router) for route in router.routes]


def app_from_env() -> FastAPI:
    """For `uvicorn --factory service.api:app_from_env`."""
    return create_app(Settings.from_env())
