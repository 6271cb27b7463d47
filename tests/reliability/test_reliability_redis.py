"""Redis killed with SIGKILL (AOF on, appendfsync always: the default) and restarted on the same
port and data directory while clients submit and workers run jobs: every job the API acknowledged
with a 202 is still there and runs to its end; while Redis is down the API answers 503 with
Retry-After; afterwards it, the workers and the pool recover by themselves."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from service.polling import wait_until

LONG = {"prompt": "running through", "num_frames": 7, "height": 64, "width": 64}


class Submitter(threading.Thread):
    """A client that keeps submitting, recording every answer."""

    def __init__(self, stack, body):
        super().__init__(daemon=True)
        self.stack, self.body = stack, body
        self.answers: list[tuple[int, str, str | None]] = []  # status, job id, Retry-After
        self.stopping = threading.Event()

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.stack.api_key}"}
        with httpx.Client(base_url=self.stack.api_url, headers=headers, timeout=30) as client:
            while not self.stopping.is_set():
                response = client.post("/v1/jobs", json=self.body)
                job_id = response.json().get("id", "") if response.status_code == 202 else ""
                self.answers.append(
                    (response.status_code, job_id, response.headers.get("retry-after"))
                )
                time.sleep(0.05)

    def accepted(self) -> list[str]:
        return [job_id for status, job_id, _ in self.answers if status == 202]


def test_redis_killed_and_restarted_loses_no_accepted_job(healthy_stack, http, store, kit):
    output = Path(healthy_stack.settings.output_dir)
    running = [
        http.post("/v1/jobs", json={**LONG, "num_inference_steps": steps}).json()["id"]
        for steps in (150, 150)
    ]
    assert wait_until(lambda: store.get(running[0])["status"] == "running", 60, 0.02)
    submitters = [Submitter(healthy_stack, kit.QUICK) for _ in range(3)]
    for submitter in submitters:
        submitter.start()
    assert wait_until(lambda: sum(len(s.accepted()) for s in submitters) >= 20, 30, 0.05)
    pool_restarts = healthy_stack.supervisor.restarts

    healthy_stack.redis.kill()
    down_since = time.monotonic()
    answers_while_down = []
    while time.monotonic() - down_since < 4.0:  # longer than a lease: running jobs expire
        for method, path in [
            ("POST", "/v1/jobs"),
            ("GET", "/v1/jobs"),
            ("GET", f"/v1/jobs/{running[0]}"),
            ("POST", f"/v1/jobs/{running[1]}/cancel"),
        ]:
            response = http.request(method, path, json=kit.QUICK if method == "POST" else None)
            answers_while_down.append((method, path, response))
        time.sleep(0.2)
    ready_while_down = httpx.get(f"{healthy_stack.api_url}/readyz", timeout=10)
    healthy_stack.redis.start()  # the same port and AOF directory, as a restarted pod

    def accepting_again() -> bool:
        return any(s.answers and s.answers[-1][0] == 202 for s in submitters)

    recovered_in = time.monotonic()
    assert wait_until(accepting_again, 30, 0.05), "the API did not recover by itself"
    recovered_in = time.monotonic() - recovered_in
    time.sleep(1.0)
    for submitter in submitters:
        submitter.stopping.set()
        submitter.join(timeout=30)

    for method, path, response in answers_while_down:
        assert response.status_code == 503, (method, path, response.status_code, response.text)
        assert response.json()["error"] == "job store unavailable, retry shortly"
        assert int(response.headers["retry-after"]) > 0
    assert ready_while_down.status_code == 503
    assert "redis unreachable" in ready_while_down.json()["reason"]
    answers = [answer for s in submitters for answer in s.answers]
    assert {status for status, _, _ in answers} <= {202, 503}, answers
    refused = [answer for answer in answers if answer[0] == 503]
    assert refused and all(retry_after for _, _, retry_after in refused)
    accepted = [job_id for s in submitters for job_id in s.accepted()]
    assert len(set(accepted)) == len(accepted)

    missing = [job_id for job_id in [*running, *accepted] if store.get(job_id) is None]
    assert not missing, f"accepted jobs lost: {missing}"
    jobs = kit.wait_finished(store, [*running, *accepted], timeout=240)
    for job in jobs:
        kit.assert_ran_exactly_once_or_failed_with_reason(job, output)
    assert [job["status"] for job in jobs] == ["succeeded"] * len(jobs), [
        (job["id"], job["status"], job["error"]) for job in jobs if job["status"] != "succeeded"
    ]
    assert recovered_in < 30
    # The pool rode the outage out: its driver was never replaced.
    assert healthy_stack.supervisor.restarts == pool_restarts
