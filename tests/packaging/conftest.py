"""Fixtures: each image's install (session-wide: building one takes up to a minute), the worker
install's `mochi local` stack, and the API install's `mochi api` on that stack's Redis. Every
command runs from an install, as a process: never this checkout's code."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from service.processes import free_port, spawn_in_own_session, stop_process_group
from tests.packaging.installs import IMAGES, Install, clean_env, install_image

STACK_READY_SECONDS = 180


def pytest_configure(config):
    config.addinivalue_line("markers", "packaging: builds the wheel and installs it as shipped")


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.packaging)


@pytest.fixture(scope="session")
def api_install(tmp_path_factory) -> Install:
    return install_image(IMAGES["api"], tmp_path_factory.mktemp("api-image"))


@pytest.fixture(scope="session")
def worker_install(tmp_path_factory) -> Install:
    return install_image(IMAGES["worker"], tmp_path_factory.mktemp("worker-image"))


def _wait_for_file(path: Path, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.stat().st_size):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"no {path.name} from {process.args[:2]}; log:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


@pytest.fixture(scope="session")
def worker_stack(worker_install, tmp_path_factory):
    """`mochi local` of the worker install (its Redis, Ray head and tiny-model pool): the
    addresses and API key it writes to local.json."""
    state = tmp_path_factory.mktemp("stack")
    log = state / "mochi-local.log"
    command = [str(worker_install.bin("mochi")), "local", "--dir", str(state)]
    process = spawn_in_own_session([*command, "--port", str(free_port())], log, clean_env())
    try:
        _wait_for_file(state / "local.json", process, log, STACK_READY_SECONDS)
        yield json.loads((state / "local.json").read_text())
    finally:
        stop_process_group(process, timeout=60)


@pytest.fixture(scope="session")
def api_server(api_install, worker_stack, tmp_path_factory):
    """`mochi api` of the API install, on the worker stack's Redis and video folder."""
    log = tmp_path_factory.mktemp("api") / "mochi-api.log"
    port = free_port()
    command = [str(api_install.bin("mochi")), "api", "--host", "127.0.0.1", "--port", str(port)]
    env = clean_env(
        MOCHI_REDIS_URL=worker_stack["redis_url"],
        MOCHI_REDIS_PASSWORD=worker_stack["redis_password"],
        MOCHI_OUTPUT_DIR=worker_stack["output_dir"],
    )
    process = spawn_in_own_session(command, log, env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mochi api did not start; log:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        stop_process_group(process, timeout=10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
