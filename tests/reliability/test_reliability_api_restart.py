"""The API restarted during a burst of submissions with Idempotency-Key: the API runs as its own
`uvicorn --factory service.api:app_from_env` process on the stack's Redis, and is killed
(SIGKILL, then SIGTERM) and started again while clients retry: every key maps to exactly one
job, and the account holds exactly one job per key."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from service import auth
from service.polling import wait_until
from service.processes import free_port, stop_process_group

REPO = Path(__file__).resolve().parents[2]
KEYS = 120
CLIENTS = 8


def start_api(stack, port: int) -> subprocess.Popen:
    env = {**os.environ, **stack.settings.to_env(), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "uvicorn", "--factory", "service.api:app_from_env"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "info"]
    # Its log sits in the stack's folder, which the security tests scan for API keys.
    with open(stack.base_dir / "api-process.log", "ab") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def answers() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    assert wait_until(answers, 60, 0.05), "the API process did not start"
    return process


class Client(threading.Thread):
    """Sends each of its idempotency keys until a 202 comes back, then once more; records
    every job id any answer named."""

    def __init__(self, url: str, api_key: str, idempotency_keys: list[str], body: dict):
        super().__init__(daemon=True)
        self.url, self.api_key, self.body = url, api_key, body
        self.todo = idempotency_keys
        self.ids: dict[str, set[str]] = {key: set() for key in idempotency_keys}
        self.failures: list[str] = []
        self.statuses: dict[int, int] = {}

    def send(self, client: httpx.Client, key: str) -> bool:
        headers = {"Authorization": f"Bearer {self.api_key}", "Idempotency-Key": key}
        try:
            response = client.post(f"{self.url}/v1/jobs", json=self.body, headers=headers)
        except httpx.HTTPError as error:  # the API died under us: retry, same key
            self.failures.append(type(error).__name__)
            time.sleep(0.05)
            return False
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        if response.status_code != 202:
            time.sleep(0.05)
            return False
        self.ids[key].add(response.json()["id"])
        return True

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            for key in self.todo:
                for _repeat in range(2):
                    deadline = time.monotonic() + 90
                    while not self.send(client, key):
                        assert time.monotonic() < deadline, f"{key} never accepted"
                    time.sleep(0.01)


def test_api_restarted_during_a_burst_every_key_maps_to_exactly_one_job(healthy_stack, store, kit):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    account = "idempotent"
    api_key = auth.add_key(store.redis, account)
    keys = [f"burst-{index:03d}" for index in range(KEYS)]
    clients = [Client(url, api_key, keys[index::CLIENTS], kit.QUICK) for index in range(CLIENTS)]
    api = start_api(healthy_stack, port)
    try:
        for client in clients:
            client.start()

        def accepted() -> int:
            return sum(1 for c in clients for ids in c.ids.values() if ids)

        for fraction, how in ((0.25, "SIGKILL"), (0.6, "SIGTERM")):
            assert wait_until(lambda f=fraction: accepted() >= f * KEYS, 120, 0.01)
            if how == "SIGKILL":
                os.killpg(api.pid, 9)
                api.wait()
            else:
                stop_process_group(api)
            assert kit.wait_port_closed(f"{url}/healthz")
            api = start_api(healthy_stack, port)
        for client in clients:
            client.join(timeout=180)
            assert not client.is_alive()
    finally:
        stop_process_group(api)

    ids = {key: ids for client in clients for key, ids in client.ids.items()}
    assert len(ids) == KEYS
    assert {key: len(found) for key, found in ids.items()} == dict.fromkeys(keys, 1)
    job_ids = {next(iter(found)) for found in ids.values()}
    assert len(job_ids) == KEYS, "two keys mapped to one job"
    recorded = {
        job_id.decode() for job_id in store.redis.zrange(f"mochi:account:{account}:jobs", 0, -1)
    }
    assert recorded == job_ids, "the account holds a job no key maps to, or lacks one"
    for key, found in ids.items():
        held = store.redis.get(f"mochi:idempotency:{account}:{key}").decode()
        assert held.split(":")[0] == next(iter(found))  # "<job id>:<body hash>"
    assert sum(len(c.failures) for c in clients) > 0, "the restarts never hit a request"
    # Leave the shared stack idle: these jobs proved their point once recorded.
    for job_id in job_ids:
        store.cancel(job_id, account)
