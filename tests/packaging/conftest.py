"""The project as the images ship it: the wheel built from what the Dockerfiles COPY, installed
into fresh virtual environments by the Dockerfiles' own pip commands, and the commands of those
installs run as processes (never this checkout's code).

What differs from `docker build`, and why:
- pip installs offline, from the wheelhouse `make wheelhouse` fills (tests download nothing);
  the wheel is built without build isolation, with this environment's setuptools.
- `--user` is dropped: a virtual environment stands for the image's user site.
- the worker's base image brings Ray; here it comes from the wheelhouse, at the pinned version.
- an image path (/wheels/...) is a folder of this session; the build context skips __pycache__.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from service.processes import free_port, spawn_in_own_session, stop_process_group
from tests.packaging.dockerfiles import Copy, Stage, parse

REPO = Path(__file__).resolve().parents[2]
IMAGES = {"api": REPO / "images" / "api.Dockerfile", "worker": REPO / "images" / "worker.Dockerfile"}
WHEELHOUSE = Path(os.environ.get("MOCHI_WHEELHOUSE", REPO / ".venv" / "wheelhouse"))
CONTEXT_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")
STACK_READY_SECONDS = 180


def pytest_configure(config):
    config.addinivalue_line("markers", "packaging: builds the wheel and installs it as shipped")


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.packaging)


def clean_env(**extra: str) -> dict[str, str]:
    """This machine's environment without pip's settings or a PYTHONPATH into the checkout."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PIP_", "VIRTUAL_ENV")) and key != "PYTHONPATH"
    }
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


def run(command: list[str], cwd: Path, **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(word) for word in command],
        cwd=cwd,
        env=clean_env(**extra_env),
        capture_output=True,
        text=True,
        timeout=300,
    )


@dataclass
class StageFiles:
    """A stage's filesystem as a folder: an image path /x/y is root/x/y."""

    root: Path

    def local(self, image_path: str) -> Path:
        return self.root / image_path.lstrip("/")

    def arguments(self, word: str) -> list[str]:
        """A pip argument with an image path made local (a glob expanded, as the shell does)."""
        if not word.startswith("/"):
            return [word]
        return [str(m) for m in sorted(self.root.glob(word.lstrip("/")))] or [str(self.local(word))]


def copy_in(copy: Copy, files: StageFiles, built: dict[str, StageFiles]) -> None:
    source_files = built[copy.from_stage] if copy.from_stage else None
    for source in copy.sources:
        origin = source_files.local(source) if source_files else REPO / source
        target = files.local(copy.dest)
        if origin.is_dir():
            shutil.copytree(origin, target, symlinks=True, ignore=CONTEXT_IGNORED, dirs_exist_ok=True)
        else:
            target = target / origin.name if copy.into_folder else target
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)


def pip_command(arguments: list[str], files: StageFiles, python: Path | None) -> list[str]:
    """The pip command as this machine runs it offline (see the module's docstring)."""
    words = [local for word in arguments if word != "--user" for local in files.arguments(word)]
    target = ["--python", str(python)] if python else []
    if words[0] == "install":
        offline = ["--no-index", "--find-links", str(WHEELHOUSE)]
    else:
        offline = ["--no-build-isolation"]
    return [sys.executable, "-m", "pip", *target, words[0], *offline, *words[1:]]


def build_stage(stage: Stage, root: Path, built: dict[str, StageFiles], python: Path | None):
    """COPY the stage's files into root, then run its pip commands there (with `python`'s pip
    target, or this interpreter for a build stage). Returns the stage's files."""
    files = StageFiles(root)
    for copy in stage.copies:
        copy_in(copy, files, built)
    workdir = files.local(stage.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for arguments in stage.pip_commands:
        done = run(pip_command(arguments, files, python), cwd=workdir)
        assert done.returncode == 0, (
            f"pip {' '.join(arguments)} failed (is the wheelhouse {WHEELHOUSE} up to date? "
            f"`make wheelhouse`):\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return files


@dataclass(frozen=True)
class Install:
    """One image's install: its venv and the wheel it installed."""

    venv: Path
    wheel: Path

    def bin(self, command: str) -> Path:
        return self.venv / "bin" / command


def install_image(dockerfile: Path, root: Path) -> Install:
    if not WHEELHOUSE.is_dir():
        pytest.fail(f"no wheelhouse at {WHEELHOUSE}: `make wheelhouse` downloads what the images install")
    *build_stages, final = parse(dockerfile)
    built: dict[str, StageFiles] = {}
    for stage in build_stages:
        built[stage.name] = build_stage(stage, root / stage.name, built, python=None)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    files = build_stage(final, root / "image", built, python=venv / "bin" / "python")
    wheels = sorted(files.root.rglob("*.whl"))
    assert len(wheels) == 1, f"{dockerfile.name}: expected one wheel in the image, found {wheels}"
    return Install(venv, wheels[0])


@pytest.fixture(scope="session")
def api_install(tmp_path_factory) -> Install:
    return install_image(IMAGES["api"], tmp_path_factory.mktemp("api-image"))


@pytest.fixture(scope="session")
def worker_install(tmp_path_factory) -> Install:
    return install_image(IMAGES["worker"], tmp_path_factory.mktemp("worker-image"))


@dataclass(frozen=True)
class Stack:
    """What `mochi local` (worker install) wrote to its address file."""

    addresses: dict
    dir: Path


def _wait_for_file(path: Path, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.stat().st_size):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"no {path.name} from {process.args[:2]}; log:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


@pytest.fixture(scope="session")
def worker_stack(worker_install, tmp_path_factory):
    """`mochi local` of the worker install: its Redis, Ray head and tiny-model pool."""
    state = tmp_path_factory.mktemp("stack")
    log = state / "mochi-local.log"
    command = [str(worker_install.bin("mochi")), "local", "--dir", str(state)]
    process = spawn_in_own_session([*command, "--port", str(free_port())], log, clean_env())
    try:
        _wait_for_file(state / "local.json", process, log, STACK_READY_SECONDS)
        yield Stack(json.loads((state / "local.json").read_text()), state)
    finally:
        stop_process_group(process, timeout=60)


@pytest.fixture(scope="session")
def api_server(api_install, worker_stack, tmp_path_factory):
    """`mochi api` of the API install, on the worker stack's Redis and video folder."""
    log = tmp_path_factory.mktemp("api") / "mochi-api.log"
    port = free_port()
    command = [str(api_install.bin("mochi")), "api", "--host", "127.0.0.1", "--port", str(port)]
    env = clean_env(
        MOCHI_REDIS_URL=worker_stack.addresses["redis_url"],
        MOCHI_OUTPUT_DIR=worker_stack.addresses["output_dir"],
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
