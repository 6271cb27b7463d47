"""The API and the supervisor run without Ray and torch (the API image has neither)."""

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement


@pytest.mark.parametrize("module", ["service.api", "service.supervisor", "service.client"])
def test_module_imports_neither_ray_nor_torch(module):
    probe = (
        f"import sys, {module}; "
        "print(sorted(m for m in ('ray', 'torch', 'diffusers') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert loaded == "[]"


API_DOCKERFILE = Path(__file__).resolve().parents[2] / "images" / "api.Dockerfile"
# `mochi api` started with every third-party package the API image lacks made unimportable, as
# in the image: optional imports fall back, a hard dependency fails with ModuleNotFoundError.
START_API_WITH_ONLY = """
import json, re, sys
from importlib import metadata
allowed = set(json.loads(sys.argv[1]))
owners = metadata.packages_distributions()

def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()

class NotInImage:
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        dists = owners.get(top)
        if top != "service" and dists and not {canonical(d) for d in dists} & allowed:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInImage())
import service.cli, service.api
from service.config import Settings
service.cli.build_parser()
service.api.create_app(Settings())
"""


def _installed_by_api_image() -> set[str]:
    text = API_DOCKERFILE.read_text().replace("\\\n", " ")
    command = next(line for line in text.splitlines() if "pip install -c constraints.txt" in line)
    packages = command.split("constraints.txt", 1)[1].split("&&")[0].split()
    return _with_requirements({_canonical(name) for name in packages})


def _with_requirements(names: set[str]) -> set[str]:
    closure, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in closure:
            continue
        closure.add(name)
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(_canonical(requirement.name))
    return closure


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_mochi_api_starts_with_only_what_the_api_image_installs():
    allowed = json.dumps(sorted(_installed_by_api_image()))
    started = subprocess.run(
        [sys.executable, "-c", START_API_WITH_ONLY, allowed], capture_output=True, text=True
    )
    assert started.returncode == 0, started.stderr[-2000:]


def test_the_image_check_does_catch_a_missing_dependency():
    allowed = json.dumps(sorted(_installed_by_api_image() - {"httpx"}))
    started = subprocess.run(
        [sys.executable, "-c", START_API_WITH_ONLY, allowed], capture_output=True, text=True
    )
    assert started.returncode != 0 and "httpx" in started.stderr
