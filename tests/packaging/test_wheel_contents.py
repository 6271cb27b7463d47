"""The wheel the images install carries every file the code reads at run time."""

from __future__ import annotations

import zipfile
from importlib.metadata import version

from doctor.registry import all_checks
from tests.packaging.installs import REPO

PACKAGES = ("service", "doctor", "infra")


def wheel_files(install) -> set[str]:
    with zipfile.ZipFile(install.wheel) as wheel:
        return {name for name in wheel.namelist() if not name.endswith("/")}


def test_wheel_has_the_web_page_and_every_runbook(api_install):
    files = wheel_files(api_install)
    page = {f"service/static/{p.name}" for p in (REPO / "service" / "static").iterdir()}
    runbooks = {f"doctor/runbooks/{check.code}.md" for check in all_checks()}
    assert {"service/static/index.html", "service/static/app.js"} <= page
    assert page - files == set(), "web page files missing from the wheel"
    assert runbooks - files == set(), "runbooks missing from the wheel"


def test_wheel_has_every_module_of_the_packages(api_install):
    files = wheel_files(api_install)
    modules = {
        path.relative_to(REPO).as_posix()
        for package in PACKAGES
        for path in (REPO / package).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert modules - files == set(), "modules missing (a folder without __init__.py?)"


def test_wheel_has_only_the_packages(api_install):
    tops = {name.split("/", 1)[0] for name in wheel_files(api_install)}
    assert tops == {*PACKAGES, f"mochi_k8s-{version('mochi-k8s')}.dist-info"}


def test_both_images_install_the_same_wheel(api_install, worker_install):
    assert wheel_files(api_install) == wheel_files(worker_install)
