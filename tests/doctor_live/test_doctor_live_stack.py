"""`doctor diagnose --local` against the real embedded stack (Redis, Ray, one tiny-model actor,
the API; reaper off): healthy first, then one fault at a time, each with the finding it must
produce. The tests run in file order on one stack; the last ones break it for good."""

from __future__ import annotations

import json
import os
import shutil
import signal

import httpx
import pytest

from doctor.cli import main
from service.polling import wait_until
from service.supervisor import POOL_SUBMISSION

SMALL = {"prompt": "a boat", "num_frames": 7, "height": 64, "width": 64, "num_inference_steps": 2}
LONG = {**SMALL, "num_frames": 19, "num_inference_steps": 200}
GPU_ENTRYPOINT = (
    'python -c "import ray; ray.init(); ray.get(ray.remote(num_gpus=1)(lambda: 1).remote())"'
)


@pytest.fixture(scope="module")
def http(stack):
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def dashboard(stack):
    headers = stack.ray.auth_headers()
    with httpx.Client(base_url=stack.ray.dashboard_url, headers=headers, timeout=30) as client:
        yield client


def diagnose(stack, capsys, *extra) -> tuple[int, list[dict]]:
    code = main(
        ["diagnose", "--local", str(stack.base_dir), "--fail-on", "warning", "--format", "json"]
        + list(extra)
    )
    out = capsys.readouterr()
    assert "Traceback" not in out.err, out.err
    return code, json.loads(out.out)["findings"]


def codes(findings: list[dict]) -> set[str]:
    return {f["code"] for f in findings}


def run_job(http, params, until=("succeeded", "failed", "canceled"), timeout=120) -> dict:
    job = http.post("/v1/jobs", json=params).json()
    assert wait_until(
        lambda: http.get(f"/v1/jobs/{job['id']}").json()["status"] in until, timeout, 0.05
    )
    return http.get(f"/v1/jobs/{job['id']}").json()


def test_healthy_stack_has_no_error_or_warning(stack, http, capsys):
    assert run_job(http, SMALL)["status"] == "succeeded"
    code, findings = diagnose(stack, capsys)
    assert code == 0, findings
    assert not [f for f in findings if f["severity"] in ("error", "warning")]


def test_a_gpu_task_on_a_cpu_only_cluster_is_pending(stack, dashboard, capsys):
    submission = "doctor-test-gpu-task"
    dashboard.post("/api/jobs/", json={"entrypoint": GPU_ENTRYPOINT, "submission_id": submission})
    query = (
        "/api/v0/tasks?detail=1&filter_keys=state&filter_predicates=%3D"
        "&filter_values=PENDING_NODE_ASSIGNMENT"
    )
    try:
        assert wait_until(lambda: dashboard.get(query).json()["data"]["result"]["result"], 60, 0.5)
        seen: dict = {}

        def doctor_sees_it() -> bool:
            # Ray's state API fills a task's resources in a moment after it lists the task.
            seen["code"], findings = diagnose(stack, capsys, "--timeout", "60")
            seen["hits"] = [f for f in findings if f["code"] == "RAY010"]
            return bool(seen["hits"])

        assert wait_until(doctor_sees_it, 90, 1.0), seen
        [pending] = seen["hits"]
        assert seen["code"] == 1 and "GPU=1" in pending["message"], pending
    finally:
        dashboard.post(f"/api/jobs/{submission}/stop")


def test_a_worker_stopped_mid_job_leaves_a_stuck_job(stack, http, capsys, tmp_path):
    job = http.post("/v1/jobs", json=LONG).json()
    store = stack.store()
    assert wait_until(lambda: (store.get(job["id"]) or {}).get("step", 0) >= 1, 60, 0.02)
    pid = int(store.get(job["id"])["worker"].split(":")[1])
    os.kill(pid, signal.SIGSTOP)
    try:
        lease_end = store.get(job["id"])["lease_expires"]
        assert wait_until(lambda: store.server_time() > lease_end + 2.5, 30, 0.2)
        code, findings = diagnose(stack, capsys)
        [stuck] = [f for f in findings if f["code"] == "JOB001"]
        assert code == 1 and job["id"] in stuck["message"], stuck
        assert store.get(job["id"])["status"] == "running"  # nothing reaps it

        # The same findings offline, from a snapshot of this state.
        snapshot = tmp_path / "snapshot"
        assert main(["snapshot", "--local", str(stack.base_dir), "--out", str(snapshot)]) == 0
        capsys.readouterr()
        assert main(["diagnose", "--snapshot", str(snapshot), "--format", "json"]) == 1
        offline = json.loads(capsys.readouterr().out)["findings"]
        assert "JOB001" in codes(offline)
        text = "".join(p.read_text() for p in snapshot.iterdir())
        assert stack.api_key not in text
    finally:
        os.kill(pid, signal.SIGCONT)
    assert wait_until(lambda: store.get(job["id"])["status"] == "succeeded", 60, 0.2)


def test_an_output_directory_that_is_not_a_directory(stack, capsys):
    # Tests run as root, which ignores permission bits; a file where the directory should be
    # is a fault root cannot write through either (ENOTDIR), like a mount that went missing.
    output = stack.base_dir / "videos"
    aside = stack.base_dir / "videos.aside"
    output.rename(aside)
    output.write_text("not a directory\n")
    try:
        code, findings = diagnose(stack, capsys)
        [probe] = [f for f in findings if f["code"] == "PERM005"]
        assert code == 1 and "NotADirectoryError" in probe["evidence"], probe
    finally:
        output.unlink()
        aside.rename(output)


def test_the_pool_driver_killed(stack, dashboard, capsys):
    stack.supervisor.stop()  # otherwise it resubmits the pool within seconds
    supervisor_thread = next(t for t in stack._threads if t.name == "supervisor")
    supervisor_thread.join(timeout=10)
    client = stack.redis.client()
    submission = client.get(POOL_SUBMISSION).decode()
    driver = dashboard.get(f"/api/jobs/{submission}").json()["driver_info"]
    os.kill(int(driver["pid"]), signal.SIGKILL)  # only the pool driver's own process
    assert wait_until(
        lambda: dashboard.get(f"/api/jobs/{submission}").json()["status"] not in ("RUNNING",),
        60,
        0.5,
    )
    code, findings = diagnose(stack, capsys)
    found = codes(findings)
    assert code == 1 and "RAY008" in found, findings
    [pool] = [f for f in findings if f["code"] == "RAY008"]
    assert submission in pool["message"]
    assert wait_until(lambda: "RAY009" in codes(diagnose(stack, capsys)[1]), 30, 1.0)


def test_redis_stopped(stack, capsys):
    stack.redis.kill()
    code, findings = diagnose(stack, capsys)
    [unreachable] = [f for f in findings if f["code"] == "NET006"]
    assert code == 1 and unreachable["resource"].startswith("redis://"), findings
    assert unreachable["evidence"].startswith("refused"), unreachable
    [not_ready] = [f for f in findings if f["code"] == "AVAIL007"]
    assert "redis unreachable" in not_ready["message"]


def test_the_stack_dir_must_exist(tmp_path, capsys):
    missing = tmp_path / "nothing-here"
    assert main(["diagnose", "--local", str(missing)]) == 2
    assert "is `mochi local` running?" in capsys.readouterr().err
    shutil.rmtree(tmp_path, ignore_errors=True)
