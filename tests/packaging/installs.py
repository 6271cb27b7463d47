"""The project as the images ship it: the wheel built from what a Dockerfile COPYs, installed
into a fresh virtual environment by the Dockerfile's own pip commands.

What differs from `docker build`, and why:
- pip installs offline, from the wheelhouse `make wheelhouse` fills (tests download nothing);
  the wheel is built without build isolation, with this environment's setuptools.
- `--user` is dropped: a virtual environment stands for the image's user site.
- the worker's base image brings Ray; here it comes from the wheelhouse, at the pinned version.
- an image path (/wheels/...) is a folder of this session; the build context skips __pycache__.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.packaging.dockerfiles import Copy, Stage, parse

REPO = Path(__file__).resolve().parents[2]
IMAGES = {
    "api": REPO / "images" / "api.Dockerfile",
    "worker": REPO / "images" / "worker.Dockerfile",
}
WHEELHOUSE = Path(os.environ.get("MOCHI_WHEELHOUSE", REPO / ".venv" / "wheelhouse"))
CONTEXT_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")


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
            shutil.copytree(
                origin, target, symlinks=True, ignore=CONTEXT_IGNORED, dirs_exist_ok=True
            )
        else:
            target = target / origin.name if copy.into_folder else target
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)


def pip_command(arguments: list[str], files: StageFiles, python: Path | None) -> list[str]:
    """The pip command as this machine runs it offline (see the module's docstring)."""
    words = [local for word in arguments if word != "--user" for local in files.arguments(word)]
    target = ["--python", str(python)] if python else []
    offline = {
        "install": ["--no-index", "--find-links", str(WHEELHOUSE)],
        "wheel": ["--no-build-isolation"],
    }
    assert words[0] in offline, f"pip {words[0]}: the packaging tests run pip install and wheel"
    return [sys.executable, "-m", "pip", *target, words[0], *offline[words[0]], *words[1:]]


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
        pytest.fail(
            f"no wheelhouse at {WHEELHOUSE}: `make wheelhouse` downloads what the images install"
        )
    *build_stages, final = parse(dockerfile)
    assert final.pip_commands, f"{dockerfile.name}: no pip command in its last stage"
    built: dict[str, StageFiles] = {}
    for stage in build_stages:
        built[stage.name] = build_stage(stage, root / stage.name, built, python=None)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    files = build_stage(final, root / "image", built, python=venv / "bin" / "python")
    wheels = sorted(files.root.rglob("*.whl"))
    assert len(wheels) == 1, f"{dockerfile.name}: expected one wheel in the image, found {wheels}"
    return Install(venv, wheels[0])
