"""The two images' installs working together, as on Kubernetes: `mochi api` of the API install
serves the page and readiness on the Redis of the worker install's `mochi local`, whose pool
makes a tiny video submitted through that API."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.packaging.installs import REPO

TINY_JOB = {"prompt": "packaged", "num_frames": 7, "height": 64, "width": 64}
JOB_SECONDS = 120
MP4_BRAND = b"ftyp"


def test_api_install_serves_the_web_page(api_server):
    page = httpx.get(f"{api_server}/web/", timeout=10)
    assert page.status_code == 200, page.text
    assert page.text == (REPO / "service" / "static" / "index.html").read_text()
    for asset in ("app.js", "style.css"):
        assert httpx.get(f"{api_server}/web/{asset}", timeout=10).status_code == 200, asset


def test_api_install_is_ready_with_the_worker_installs_pool(api_server):
    ready = httpx.get(f"{api_server}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["workers"] >= 1


def wait_done(http: httpx.Client, job_id: str) -> dict:
    deadline = time.monotonic() + JOB_SECONDS
    job = http.get(f"/v1/jobs/{job_id}").json()
    while job["status"] not in ("succeeded", "failed", "canceled"):
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} still {job['status']} after {JOB_SECONDS}s")
        time.sleep(0.2)
        job = http.get(f"/v1/jobs/{job_id}").json()
    return job


def test_a_tiny_job_runs_through_the_worker_install(api_server, worker_stack):
    headers = {"Authorization": f"Bearer {worker_stack['api_key']}"}
    with httpx.Client(base_url=api_server, headers=headers, timeout=30) as http:
        submitted = http.post("/v1/jobs", json=TINY_JOB)
        assert submitted.status_code == 202, submitted.text
        job = wait_done(http, submitted.json()["id"])
        assert job["status"] == "succeeded", job
        video = http.get(job["video_url"])
    assert video.status_code == 200
    assert video.content[4:8] == MP4_BRAND
