"""The embedded stack is local: what listens beyond loopback is Ray's, behind its token; Redis
and the API are on 127.0.0.1, Redis with a password; the state is readable by its owner only."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import psutil
import pytest
import redis

from service.config import Settings, SettingsError
from service.processes import RedisServer, free_port, session_members
from tests.service.listening import is_loopback, listeners

GCS_CALL = (
    "import sys; from ray._raylet import GcsClient; "
    "print(GcsClient(address=sys.argv[1]).internal_kv_keys(b'', None, timeout=10))"
)


def stack_pids(stack) -> set[int]:
    """The sessions of the servers the stack started. This process (the API and supervisor
    threads) is judged by in_process_listeners: other tests may have left servers in it."""
    pids = set()
    for process in (stack.redis.process, stack.ray.process):
        pids.update(session_members(process.pid))
        pids.update(child.pid for child in psutil.Process(process.pid).children(recursive=True))
    return pids


def ray_pids(stack) -> set[int]:
    return set(session_members(stack.ray.process.pid)) | {
        child.pid for child in psutil.Process(stack.ray.process.pid).children(recursive=True)
    }


def in_process_listeners(stack) -> list[tuple[int, str, str, int]]:
    """The stack's servers in this process: the API."""
    return [entry for entry in listeners({os.getpid()}) if entry[3] == stack.api_port]


def test_only_rays_token_guarded_servers_listen_beyond_loopback(stack):
    found = listeners(stack_pids(stack)) + in_process_listeners(stack)
    print("\n".join(f"{pid:>7} {name:<24} {ip}:{port}" for pid, name, ip, port in found))
    wide = [entry for entry in found if not is_loopback(entry[2])]
    not_ray = [entry for entry in wide if entry[0] not in ray_pids(stack)]
    assert not not_ray, f"non-loopback listeners outside Ray: {not_ray}"
    ports = {port for _, _, ip, port in found if is_loopback(ip)}
    assert {stack.redis.port, stack.api_port} <= ports
    assert all(port not in (stack.redis.port, stack.api_port) for *_, port in wide)


def test_ray_refuses_callers_without_the_token(stack):
    version = f"{stack.ray.dashboard_url}/api/version"
    assert httpx.get(version, timeout=10).status_code == 401
    assert httpx.get(version, headers=stack.ray.auth_headers(), timeout=10).status_code == 200
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_AUTH")}
    wrong = {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64}
    command = [sys.executable, "-c", GCS_CALL, stack.ray.address]
    refused = subprocess.run(command, env=wrong, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0, refused.stdout
    allowed = {**env, **stack.ray.auth_env()}
    answered = subprocess.run(command, env=allowed, capture_output=True, text=True, timeout=60)
    assert answered.returncode == 0, answered.stderr[-2000:]


def test_redis_refuses_a_client_without_the_password(stack):
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(stack.settings.redis_url).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(stack.settings.redis_url, password="wrong").ping()
    assert stack.redis.client().ping()
    assert stack.settings.redis_password not in " ".join(
        psutil.Process(stack.redis.process.pid).cmdline()
    )


def test_state_is_readable_by_its_owner_only(stack):
    assert stack.base_dir.stat().st_mode & 0o777 == 0o700
    assert stack.address_file.stat().st_mode & 0o777 == 0o600
    assert (stack.base_dir / "redis" / "redis.conf").stat().st_mode & 0o777 == 0o600
    addresses = json.loads(stack.address_file.read_text())
    assert addresses["redis_password"] == stack.settings.redis_password
    assert addresses["ray_auth_token"] == stack.ray.auth_token
    client = redis.Redis.from_url(addresses["redis_url"], password=addresses["redis_password"])
    assert client.ping()


def test_the_stack_redis_syncs_as_the_setting_says(stack, tmp_path):
    assert stack.redis.client().config_get("appendfsync") == {"appendfsync": "always"}
    server = RedisServer(tmp_path / "r", free_port(), password="p", appendfsync="everysec").start()
    try:
        assert server.client().config_get("appendfsync") == {"appendfsync": "everysec"}
    finally:
        server.stop()


def test_an_unknown_appendfsync_is_refused_naming_the_setting_and_choices():
    with pytest.raises(SettingsError, match="MOCHI_REDIS_APPENDFSYNC='no' must be one of"):
        Settings.from_env({"MOCHI_REDIS_APPENDFSYNC": "no"})
    everysec = Settings.from_env({"MOCHI_REDIS_APPENDFSYNC": "everysec"})
    assert everysec.redis_appendfsync == "everysec"
