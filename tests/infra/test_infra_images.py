"""The two Dockerfiles: pinned bases, non-root uid 1000, the right contents."""

from __future__ import annotations

import re
from pathlib import Path

IMAGES = Path(__file__).resolve().parents[2] / "images"


def _from(dockerfile: str) -> str:
    """The base of the image's final stage (earlier stages build the wheel)."""
    return re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)[-1]


def test_api_image_is_slim_python_without_ray_or_torch():
    text = (IMAGES / "api.Dockerfile").read_text()
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", _from(text))
    install = " ".join(line for line in text.splitlines() if "pip install" in line)
    assert "ray" not in install.replace("pip install", "") and "torch" not in install
    assert 'CMD ["api", "--host", "0.0.0.0", "--port", "8000"]' in text


def test_worker_image_is_the_pinned_ray_release_with_torch():
    text = (IMAGES / "worker.Dockerfile").read_text()
    assert _from(text) == "rayproject/ray:2.60.0-py311-gpu"
    assert "torch==2.13.0" in text and "-c constraints.txt" in text


def test_both_images_run_as_uid_1000_and_never_use_latest():
    for name in ("api.Dockerfile", "worker.Dockerfile"):
        text = (IMAGES / name).read_text()
        users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
        assert users[-1] == "1000:1000", name
        assert ":latest" not in text and ":" in _from(text)
