"""The supervisor: keeps the pool driver running on the Ray cluster and reaps expired leases.

It talks to the Ray Jobs REST API with plain HTTP, so it needs neither Ray nor Ray Client
(whose version pinning and port 10001 caused half the field report's pain).
"""

from __future__ import annotations

import logging
import os
import threading
import time

import httpx
import redis

from service.config import Settings
from service.jobstore import JobStore, connect

log = logging.getLogger(__name__)
POOL_ENTRYPOINT = "python -m service.cli pool"
POOL_SUBMISSION = "mochi:pool-submission"
ALIVE_STATES = ("PENDING", "RUNNING")


class RayJobs:
    """The few calls of the Ray Jobs API the supervisor needs."""

    def __init__(self, dashboard_url: str, timeout: float = 10.0):
        headers = {}
        token = os.environ.get("RAY_AUTH_TOKEN")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(
            base_url=dashboard_url.rstrip("/"), timeout=timeout, headers=headers
        )

    def status(self, submission_id: str) -> str | None:
        response = self.http.get(f"/api/jobs/{submission_id}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json().get("status")

    def submit(self, entrypoint: str, submission_id: str) -> str:
        body = {"entrypoint": entrypoint, "submission_id": submission_id}
        response = self.http.post("/api/jobs/", json=body)
        response.raise_for_status()
        return response.json()["submission_id"]

    def stop(self, submission_id: str) -> None:
        self.http.post(f"/api/jobs/{submission_id}/stop")


class Supervisor:
    def __init__(self, settings: Settings, entrypoint: str = POOL_ENTRYPOINT):
        self.settings = settings
        self.entrypoint = entrypoint
        self.store = JobStore(connect(settings), settings.lease_seconds, settings.max_attempts)
        self.jobs = RayJobs(settings.ray_dashboard_url)
        self.restarts = 0
        self._stopping = threading.Event()

    def ensure_pool(self) -> str:
        """Submit the pool driver unless the one on record is pending or running."""
        current = self.store.redis.get(POOL_SUBMISSION)
        current = current.decode() if current else None
        if current and self.jobs.status(current) in ALIVE_STATES:
            return current
        submission = f"mochi-pool-{int(time.time() * 1000)}"
        self.jobs.submit(self.entrypoint, submission)
        self.store.redis.set(POOL_SUBMISSION, submission)
        if current:
            self.restarts += 1
            log.warning("pool driver %s was not running; submitted %s", current, submission)
        else:
            log.info("pool driver submitted as %s", submission)
        return submission

    def tick(self) -> None:
        try:
            self.ensure_pool()
            if self.settings.reaper_enabled:
                self.store.reap_expired()
        except (httpx.HTTPError, redis.RedisError) as error:
            log.warning("supervisor: %s; retrying", error)

    def run(self, interval: float = 2.0) -> None:
        while not self._stopping.is_set():
            self.tick()
            self._stopping.wait(interval)

    def stop_pool(self) -> None:
        current = self.store.redis.get(POOL_SUBMISSION)
        if current:
            self.jobs.stop(current.decode())

    def stop(self) -> None:
        self._stopping.set()
