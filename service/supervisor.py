"""The supervisor: keeps the pool driver running on the Ray cluster, reaps expired leases and
sweeps the output directory of files no job owns (service.sweeper).

It talks to the Ray Jobs REST API with plain HTTP, so it needs neither Ray nor Ray Client
(whose version pinning and port 10001 caused half the field report's pain).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import redis

from service import sweeper
from service.config import Settings
from service.jobstore import JobStore, connect
from service.keys import POOL_SUBMISSION

log = logging.getLogger(__name__)
POOL_ENTRYPOINT = "python -m service.cli pool"
ALIVE_STATES = ("PENDING", "RUNNING")
# Sweeps read the whole output directory: at most this often, and a few times per grace period.
SWEEP_INTERVAL_SECONDS = 60.0


class RayJobs:
    """The few calls of the Ray Jobs API the supervisor needs."""

    def __init__(self, dashboard_url: str, timeout: float = 10.0, token: str | None = None):
        headers = {}
        token = token or os.environ.get("RAY_AUTH_TOKEN")
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


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        entrypoint: str = POOL_ENTRYPOINT,
        ray_auth_token: str | None = None,
    ):
        self.settings = settings
        self.entrypoint = entrypoint
        self.store = JobStore.from_settings(connect(settings), settings)
        self.jobs = RayJobs(settings.ray_dashboard_url, token=ray_auth_token)
        self.restarts = 0
        self.last_tick = self.last_success = time.monotonic()
        self.last_error = "not started"
        self.last_sweep: float | None = None
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

    def sweep_due(self) -> bool:
        interval = min(SWEEP_INTERVAL_SECONDS, self.settings.orphan_grace_seconds / 4)
        return self.last_sweep is None or time.monotonic() - self.last_sweep >= interval

    def sweep_files(self) -> dict[str, int]:
        """Remove orphaned files now (see service.sweeper); an unreadable output directory is
        logged, not fatal: the supervisor's other duties go on."""
        self.last_sweep = time.monotonic()
        output_dir = Path(self.settings.output_dir)
        try:
            return sweeper.sweep(self.store, output_dir, self.settings.orphan_grace_seconds)
        except OSError as error:
            log.warning("supervisor: cannot sweep %s: %s", output_dir, error)
            return {}

    def tick(self) -> None:
        """One round of every duty; each is tried even when another failed (reaping and
        sweeping need only Redis, not Ray)."""
        self.last_tick = time.monotonic()
        errors = []
        for duty in (self.ensure_pool, self._reap, self._sweep_if_due):
            try:
                duty()
            except (httpx.HTTPError, redis.RedisError) as error:
                errors.append(f"{type(error).__name__}: {error}")
                log.warning("supervisor: %s; retrying", error)
        if errors:
            self.last_error = "; ".join(errors)
        else:
            self.last_success, self.last_error = time.monotonic(), ""

    def _reap(self) -> None:
        if self.settings.reaper_enabled:
            self.store.reap_expired()

    def _sweep_if_due(self) -> None:
        if self.sweep_due():
            self.sweep_files()

    def health(self, stale_after: float = 30.0) -> tuple[bool, bool, str]:
        """(alive: the loop is ticking, ready: a tick succeeded lately, the last error)."""
        now = time.monotonic()
        alive = now - self.last_tick < stale_after
        return alive, alive and now - self.last_success < stale_after, self.last_error

    def serve_health(self, port: int) -> ThreadingHTTPServer:
        """/healthz and /readyz for the Deployment's probes, on a daemon thread."""
        server = ThreadingHTTPServer(("0.0.0.0", port), _health_handler(self))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def run(self, interval: float = 2.0) -> None:
        while not self._stopping.is_set():
            self.tick()
            self._stopping.wait(interval)

    def stop(self) -> None:
        self._stopping.set()


def _health_handler(supervisor: Supervisor):
    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            alive, ready, error = supervisor.health()
            ok = {"/healthz": alive, "/readyz": ready}.get(self.path)
            if ok is None:
                self.send_error(404)
                return
            body = json.dumps({"ok": ok, "last_error": error}).encode()
            self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # probes every few seconds: keep the log for real news
            pass

    return Health
