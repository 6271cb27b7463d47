"""`mochi submit|status|list|cancel|download` against the real API, Redis and a real worker."""

from __future__ import annotations

import json
import re
import threading
import time

import redis

from service.client import (
    EXIT_AUTH,
    EXIT_CONFLICT,
    EXIT_INVALID,
    EXIT_JOB_FAILED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_RATE_LIMITED,
    EXIT_UNAVAILABLE,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    EXIT_WAIT_TIMEOUT,
)
from service.jobstore import JobStore
from service.polling import wait_until
from service.processes import free_port
from service.video import count_frames

SMALL = ["--frames", "13", "--height", "64", "--width", "64", "--steps", "3"]
# Seconds long, so the progress shown between polls has values between 0 and 100%.
FOLLOWED = ["--frames", "31", "--height", "256", "--width", "256", "--steps", "120"]
LONG = ["--frames", "31", "--height", "256", "--width", "256", "--steps", "200"]


def flags(service):
    return ["--url", service.url, "--key", service.key]


def job_status(mochi, service, job_id):
    return json.loads(mochi("status", job_id, "--json", *flags(service)).out)


def test_submit_wait_reports_progress_and_saves_the_video(mochi, service, tmp_path):
    target = tmp_path / "fox.mp4"
    run = mochi(
        "submit", "a fox in the snow", *FOLLOWED, "--wait", "--out", target, *flags(service)
    )
    assert run.code == EXIT_OK, run.err
    job_id, saved = run.out.split()
    assert saved == str(target) and count_frames(target) == 31
    steps = [int(step) for step in re.findall(r"running (\d+)/120 steps", run.err)]
    assert any(0 < step < 120 for step in steps), run.err
    assert steps == sorted(steps)
    assert f"job {job_id}: succeeded 120/120 steps (100%)" in run.err


def test_status_list_and_download(mochi, service, tmp_path):
    job_id = mochi("submit", "a heron", *SMALL, "--wait", *flags(service)).out.strip()
    status = mochi("status", job_id, *flags(service))
    assert status.code == EXIT_OK
    assert re.search(rf"^id: +{job_id}$", status.out, re.M)
    assert re.search(r"^status: +succeeded$", status.out, re.M)
    assert "3/3 steps (100%)" in status.out and "13 frames, 64x64, 3 steps" in status.out

    listing = mochi("list", "--limit", "1", *flags(service))
    assert listing.code == EXIT_OK
    assert job_id in listing.out and "a heron" in listing.out and "next: --offset 1" in listing.out
    page = json.loads(mochi("list", "--json", *flags(service)).out)
    assert job_id in [job["id"] for job in page["jobs"]]

    download = mochi("download", job_id, *flags(service))
    assert download.code == EXIT_OK and download.out.strip() == f"{job_id}.mp4"
    assert count_frames(tmp_path / f"{job_id}.mp4") == 13
    assert not list(tmp_path.glob("*.partial"))


def test_cancel_a_running_job_then_cancel_again_is_a_conflict(mochi, service):
    job_id = mochi("submit", "a long one", *LONG, *flags(service)).out.strip()
    assert wait_until(lambda: job_status(mochi, service, job_id)["progress"]["step"] >= 1, 30)
    cancel = mochi("cancel", job_id, *flags(service))
    assert cancel.code == EXIT_OK, cancel.err
    assert f"job {job_id} is running; it stops at its next step" in cancel.out
    assert wait_until(lambda: job_status(mochi, service, job_id)["status"] == "canceled", 30)
    assert job_status(mochi, service, job_id)["progress"]["step"] < 200

    again = mochi("cancel", job_id, *flags(service))
    assert again.code == EXIT_CONFLICT
    assert f"job {job_id} is already canceled; nothing to cancel (HTTP 409)" in again.err


def test_connection_from_environment_then_address_file(mochi, service, monkeypatch, tmp_path):
    monkeypatch.setenv("MOCHI_API_URL", service.url)
    monkeypatch.setenv("MOCHI_API_KEY", service.key)
    assert mochi("list").code == EXIT_OK
    monkeypatch.delenv("MOCHI_API_URL")
    monkeypatch.delenv("MOCHI_API_KEY")

    state = tmp_path / "state"
    state.mkdir()
    (state / "local.json").write_text(json.dumps({"api_url": service.url, "api_key": service.key}))
    assert mochi("list", "--dir", state).code == EXIT_OK
    # The address file's key goes only to the address file's API.
    elsewhere = mochi("list", "--dir", state, "--url", "http://127.0.0.1:9")
    assert elsewhere.code == EXIT_USAGE and "no API key for http://127.0.0.1:9" in elsewhere.err


def test_no_configuration_is_a_usage_error(mochi):
    run = mochi("list")
    assert run.code == EXIT_USAGE
    assert "no API URL: pass --url, set MOCHI_API_URL, or start `mochi local`" in run.err


def test_a_failed_job_exits_1_with_its_reason(mochi, idle_service):
    store = JobStore(redis.Redis.from_url(idle_service.redis_url))

    def fail_the_job_when_queued():
        claim = None
        for _ in range(600):
            claim = store.claim("test-worker")
            if claim is not None:
                break
            time.sleep(0.05)
        store.finish(claim, "test-worker", "failed", "output volume full: no space left")

    failing = threading.Thread(target=fail_the_job_when_queued)
    failing.start()
    run = mochi("submit", "doomed", *SMALL, "--wait", *flags(idle_service))
    failing.join(timeout=60)
    assert run.code == EXIT_JOB_FAILED, run.err
    assert "output volume full: no space left" in run.out + run.err


def test_unknown_key_is_401(mochi, service):
    run = mochi("list", "--url", service.url, "--key", "wrong")
    assert run.code == EXIT_AUTH
    assert "mochi list: unknown API key (HTTP 401)" in run.err and "MOCHI_API_KEY" in run.err


def test_unknown_job_is_404(mochi, service):
    for command in ("status", "cancel", "download"):
        run = mochi(command, "0" * 32, *flags(service))
        assert run.code == EXIT_NOT_FOUND, command
        assert f"mochi {command}: no job '{'0' * 32}': it never existed or expired" in run.err


def test_invalid_parameters_are_refused_before_sending_with_each_field(mochi, service):
    run = mochi("submit", "x", "--frames", "8", "--width", "65", *flags(service))
    assert run.code == EXIT_INVALID and run.out == ""
    assert "invalid parameters, nothing was sent" in run.err
    assert re.search(r"^  --frames \(num_frames\): .*6k\+1", run.err, re.M)
    assert re.search(r"^  --width: .*multiple of 16", run.err, re.M)


def test_queue_full_is_429_with_retry_after_and_wait_timeout_is_10(mochi, idle_service):
    first = mochi("submit", "one", *SMALL, "--wait", "--timeout", "0.5", *flags(idle_service))
    assert first.code == EXIT_WAIT_TIMEOUT
    assert "still queued after 0.5s" in first.err
    second = mochi("submit", "two", *SMALL, *flags(idle_service))
    assert second.code == EXIT_RATE_LIMITED
    assert "already has 1 queued jobs (HTTP 429)" in second.err and "retry after 10 s" in second.err


def test_download_before_success_is_409(mochi, idle_service):
    job_id = mochi("submit", "one", *SMALL, *flags(idle_service)).out.strip()
    run = mochi("download", job_id, *flags(idle_service))
    assert run.code == EXIT_CONFLICT and "is queued" in run.err


def test_redis_down_is_503_with_retry_after(mochi, idle_service, redis_server):
    redis_server.stop()
    run = mochi("list", *flags(idle_service))
    assert run.code == EXIT_UNAVAILABLE
    assert "job store unavailable, retry shortly (HTTP 503)" in run.err
    assert "retry after 2 s" in run.err


def test_connection_refused(mochi):
    url = f"http://127.0.0.1:{free_port()}"
    run = mochi("status", "0" * 32, "--url", url, "--key", "k")
    assert run.code == EXIT_UNREACHABLE
    assert f"mochi status: cannot reach the API at {url}" in run.err
    assert "is `mochi local` running" in run.err
