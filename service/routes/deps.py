"""What routes share, as FastAPI dependencies: the settings, the job store, the metrics, and the
caller's API key and account. `create_app` puts each on `app.state`.

Each is async where it touches no blocking call: a sync dependency costs a thread-pool hop on
every request. The account lookup is sync: it waits on the sync Redis client, in the pool."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from service import auth
from service.auth_failures import FailedAuthLimiter
from service.config import Settings
from service.jobstore import JobStore
from service.metrics import Metrics
from service.routes.errors import RequestRefused


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_store(request: Request) -> JobStore:
    return request.app.state.store


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[JobStore, Depends(get_store)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def unauthenticated(request: Request, message: str) -> RequestRefused:
    """The 401 answer, counted against the client's address (service/auth_failures.py)."""
    request.app.state.failures.failed(client_address(request))
    return RequestRefused(401, message, {"WWW-Authenticate": "Bearer"})


async def api_key(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    """The bearer token; an address with too many 401s is refused before its key is read."""
    failures: FailedAuthLimiter = request.app.state.failures
    address = client_address(request)
    retry_after = failures.retry_after(address)
    if retry_after is not None:
        raise RequestRefused(
            429,
            f"too many failed authentications from {address} (limit "
            f"{failures.per_minute} a minute, MOCHI_AUTH_FAILURES_PER_MINUTE)",
            {"Retry-After": str(retry_after)},
        )
    token = auth.bearer_token(authorization)
    if token is None:
        raise unauthenticated(request, "missing API key: send 'Authorization: Bearer <key>'")
    return token


ApiKey = Annotated[str, Depends(api_key)]


def current_account(request: Request, token: ApiKey) -> str:
    # Reads are not rate limited: only submissions spend GPU time.
    account = auth.account_for(request.app.state.redis, token)
    if account is None:
        raise unauthenticated(request, "unknown API key")
    return account


Account = Annotated[str, Depends(current_account)]


async def known_account(request: Request, token: str) -> str:
    """current_account() on the asyncio client, for the submit routes."""
    account = await auth.account_for_async(request.app.state.async_redis, token)
    if account is None:
        raise unauthenticated(request, "unknown API key")
    return account
