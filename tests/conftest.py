"""Fixtures shared by every test folder: real Redis servers, started and stopped by pid."""

from __future__ import annotations

import pytest
import redis

from service.processes import RedisServer, free_port


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis", free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()
