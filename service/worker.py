"""A generation worker: loads one pipeline once, then claims, runs and finishes jobs forever.

Plain Python so it runs (and is tested) both as a Ray actor and in-process. Every write to a job
is fenced by the claim's attempt number; a worker that lost its lease stops at its next step and
its late result is refused, never overwriting another worker's video.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
from pathlib import Path

import redis

from service import generation
from service.config import Settings
from service.generation import GenerationEngine, JobStopped
from service.jobstore import Claim, JobStore, connect
from service.params import GenerationParams
from service.video import write_mp4_atomically

log = logging.getLogger(__name__)
IDLE_WAIT_SECONDS = 1.0
# How long a finished job's outcome is retried while Redis is unreachable (a restart); past it
# the video is dropped and the job comes back through its lease.
FINISH_RETRY_SECONDS = 60.0


class GenerationWorker:
    def __init__(self, settings: Settings, index: int = 0):
        self.settings = settings
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{index}"
        self.store = JobStore(connect(settings), settings.lease_seconds, settings.max_attempts)
        self.output_dir = Path(settings.output_dir)
        import torch

        torch.set_num_threads(settings.torch_threads)
        self.engine = GenerationEngine.load(
            settings.model,
            settings.model_cache_dir,
            settings.worker_host_memory_gib,
            settings.torch_compile,
            settings.worker_gpu_memory_gib,
        )
        if self.engine.compiled:
            self.engine.warm_up(GenerationParams(prompt="warm-up"))
        self.jobs_done = 0
        self._current: Claim | None = None
        self._stop_reason: str | None = None
        self._closing = threading.Event()
        self._register()
        self._heartbeat = threading.Thread(target=self._heartbeat_loop, daemon=True)
        self._heartbeat.start()

    def info(self) -> dict:
        return {
            "worker": self.worker_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "model": self.engine.model,
            "device": self.engine.device,
            "device_memory_gib": round(self.engine.device_memory_gib, 2),
            "load_seconds": round(self.engine.load_seconds, 3),
            "pipeline_loads": generation.pipeline_loads,
            "compiled": self.engine.compiled,
            "jobs_done": self.jobs_done,
        }

    def _register(self) -> None:
        self.store.register_worker(self.worker_id, self.info())

    def _heartbeat_loop(self) -> None:
        """Keeps the worker visible and the current job's lease alive between steps (model
        offload moves and VAE decode can outlast a step)."""
        interval = min(self.settings.lease_seconds / 3, self.settings.worker_ttl_seconds / 3)
        while not self._closing.wait(interval):
            try:
                self.store.worker_seen(self.worker_id)
                claim = self._current
                if claim is not None:
                    self._note(self.store.heartbeat(claim, self.worker_id))
            except redis.RedisError as error:
                log.warning("heartbeat failed: %s", error)

    def _note(self, answer: str) -> None:
        if answer == "cancel":
            self._stop_reason = "canceled by the client"
        elif answer == "lost":
            self._stop_reason = "lease lost"

    def serve(self, max_jobs: int | None = None) -> int:
        """Run jobs until max_jobs are done (forever when None); returns the count."""
        done = 0
        while max_jobs is None or done < max_jobs:
            try:
                claim = self.store.claim(self.worker_id)
                if claim is None:
                    self.store.wait_for_work(IDLE_WAIT_SECONDS)
                    continue
                self.run(claim)
            except redis.RedisError as error:
                # Redis down: whatever job was claimed comes back through its lease.
                log.warning("job store unreachable, retrying: %s", error)
                time.sleep(IDLE_WAIT_SECONDS)
                continue
            done += 1
        return done

    def run(self, claim: Claim) -> str:
        """Run one claimed job to an outcome; returns it ('lost' when the lease was lost)."""
        self._current, self._stop_reason = claim, None
        try:
            outcome, error, video, metrics = self._generate(claim)
        finally:
            self._current = None
        if outcome == "lost":
            return outcome
        if not self._finish(claim, outcome, error, video, metrics):
            log.warning("job %s: result refused, lease lost meanwhile", claim.job_id)
            if video:
                (self.output_dir / video).unlink(missing_ok=True)
            return "lost"
        self.jobs_done += 1
        self._register()
        return outcome

    def _finish(self, claim: Claim, outcome: str, error: str, video: str, metrics: dict) -> bool:
        """Record the outcome, retrying while Redis is unreachable; the fence decides. A refusal
        is checked against the record: a retried write whose first reply was lost reads as
        refused, and its video must not be deleted."""
        deadline = time.monotonic() + FINISH_RETRY_SECONDS
        while True:
            try:
                if self.store.finish(claim, self.worker_id, outcome, error, video, metrics):
                    return True
                job = self.store.get(claim.job_id) or {}
                recorded = [job.get(name) for name in ("worker", "attempts", "status", "video")]
                return recorded == [self.worker_id, claim.attempt, outcome, video]
            except redis.RedisError as failure:
                if time.monotonic() > deadline:
                    return False
                log.warning(
                    "job %s: recording the outcome failed, retrying: %s", claim.job_id, failure
                )
                time.sleep(IDLE_WAIT_SECONDS / 2)

    def _generate(self, claim: Claim) -> tuple[str, str, str, dict]:
        params = GenerationParams(**claim.params)

        def beat(step: int) -> None:
            try:
                self._note(self.store.heartbeat(claim, self.worker_id, step))
            except redis.RedisError as error:
                # A Redis blip must not fail the job: the lease and the fenced finish decide.
                log.warning("job %s: heartbeat failed: %s", claim.job_id, error)

        def on_step(step: int, total: int) -> None:
            beat(step)
            if self._stop_reason:
                raise JobStopped(self._stop_reason)

        beat(0)
        try:
            frames, metrics = self.engine.generate(params, on_step)
            name = f"{claim.job_id}-a{claim.attempt}.mp4"
            write_mp4_atomically(frames, self.output_dir / name)
        except JobStopped as stopped:
            if stopped.reason == "lease lost":
                return "lost", "", "", {}
            return "canceled", stopped.reason, "", {}
        except OSError as error:
            return "failed", _describe_os_error(error, self.output_dir), "", {}
        except Exception as error:  # the job fails with its reason; the worker takes the next
            log.exception("job %s failed", claim.job_id)
            return "failed", f"{type(error).__name__}: {error}", "", {}
        metrics["load_seconds"] = self.engine.load_seconds
        return "succeeded", "", name, metrics

    def close(self) -> None:
        self._closing.set()


def _describe_os_error(error: OSError, output_dir: Path) -> str:
    if error.errno == errno.ENOSPC:
        return f"output volume full: no space left in {output_dir}"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"output directory {output_dir} is not writable by uid {os.getuid()}: {error}"
    return f"writing the video to {output_dir} failed: {error}"
