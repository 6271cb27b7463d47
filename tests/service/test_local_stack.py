"""The whole embedded stack: real Redis, a real local Ray cluster, 2 tiny-model actors, HTTP."""

import os
import signal
from pathlib import Path

import httpx
import pytest

from service.polling import wait_until
from service.video import count_frames

SMALL = {"prompt": "a boat", "num_frames": 7, "height": 64, "width": 64, "num_inference_steps": 2}


@pytest.fixture(scope="module")
def http(stack):
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30) as client:
        yield client


def wait_done(http, job_id, timeout=120):
    def done():
        return http.get(f"/v1/jobs/{job_id}").json()["status"] in (
            "succeeded",
            "failed",
            "canceled",
        )

    assert wait_until(done, timeout, interval=0.1), http.get(f"/v1/jobs/{job_id}").json()
    return http.get(f"/v1/jobs/{job_id}").json()


def test_address_file_names_every_component(stack):
    import json

    addresses = json.loads(stack.address_file.read_text())
    assert set(addresses) == {
        "api_url",
        "api_key",
        "redis_url",
        "redis_password",
        "ray_address",
        "ray_auth_token",
        "dashboard_url",
        "output_dir",
    }
    assert httpx.get(addresses["api_url"] + "/readyz").json()["workers"] == 2


def test_job_runs_to_succeeded_and_serves_an_mp4_with_the_asked_frames(http, tmp_path):
    job = http.post("/v1/jobs", json={**SMALL, "num_frames": 19}).json()
    job = wait_done(http, job["id"])
    assert job["status"] == "succeeded", job
    video = tmp_path / "out.mp4"
    response = http.get(job["video_url"])
    assert response.headers["content-type"] == "video/mp4"
    video.write_bytes(response.content)
    assert count_frames(video) == 19


def test_100_jobs_on_2_actors_each_run_exactly_once(http, stack):
    ids = [http.post("/v1/jobs", json=SMALL).json()["id"] for _ in range(100)]
    jobs = [wait_done(http, job_id) for job_id in ids]
    assert [job["status"] for job in jobs] == ["succeeded"] * 100
    assert all(job["attempts"] == 1 for job in jobs)
    assert len({job["worker"] for job in jobs}) == 2
    output = Path(stack.settings.output_dir)
    for job_id in ids:
        assert [p.name for p in output.glob(f"{job_id}*")] == [f"{job_id}-a1.mp4"]


def test_actor_killed_mid_job_the_job_still_succeeds_on_attempt_2(http):
    long_job = {**SMALL, "num_frames": 31, "height": 256, "width": 256, "num_inference_steps": 120}
    job_id = http.post("/v1/jobs", json=long_job).json()["id"]
    assert wait_until(
        lambda: http.get(f"/v1/jobs/{job_id}").json()["progress"]["step"] >= 3, 60, 0.02
    )
    worker = http.get(f"/v1/jobs/{job_id}").json()["worker"]
    os.kill(int(worker.split(":")[1]), signal.SIGKILL)
    job = wait_done(http, job_id, timeout=180)
    assert job["status"] == "succeeded" and job["attempts"] == 2, job
    assert job["worker"] != worker


def test_cancel_a_running_job_over_http(http):
    job_id = http.post("/v1/jobs", json={**SMALL, "num_inference_steps": 200}).json()["id"]
    assert wait_until(
        lambda: http.get(f"/v1/jobs/{job_id}").json()["status"] == "running", 60, 0.02
    )
    assert http.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
    job = wait_done(http, job_id)
    assert job["status"] == "canceled" and job["progress"]["step"] < 200
