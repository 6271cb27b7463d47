"""Service fixtures: the API over a real Redis, and the whole embedded stack with real Ray."""

from __future__ import annotations

from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from service import auth
from service.api import create_app
from service.config import Settings
from service.local_stack import LocalStack
from service.processes import free_port

TINY_JOB = {"prompt": "a tiny test", "num_frames": 7, "height": 64, "width": 64}


@pytest.fixture
def settings(redis_server, tmp_path):
    output = tmp_path / "videos"
    output.mkdir()
    return Settings(redis_url=redis_server.url, output_dir=str(output), lease_seconds=2.0)


@pytest.fixture
def api(settings, redis_client):
    """A TestClient over the real app and Redis, with two accounts' keys."""
    with TestClient(create_app(settings)) as client:
        client.keys = {
            "alice": auth.add_key(redis_client, "alice"),
            "bob": auth.add_key(redis_client, "bob"),
        }
        client.as_user = lambda name: {"Authorization": f"Bearer {client.keys[name]}"}
        yield client


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """The real embedded stack: Redis, a local Ray head, 2 tiny-model actors, the API."""
    base = tmp_path_factory.mktemp("stack")
    settings = replace(Settings(), workers=2, lease_seconds=3.0, reaper_interval_seconds=0.5)
    local = LocalStack(base_dir=base, api_port=free_port(), settings=settings)
    local.start(progress=lambda line: None)
    yield local
    local.stop()
