"""A generation worker: loads one pipeline once, then claims, runs and finishes jobs forever.

Plain Python so it runs (and is tested) both as a Ray actor and in-process. Every write to a job
is fenced by the claim's attempt number; a worker that lost its lease stops at its next step and
its late result is refused, never overwriting another worker's video.

Each claim is one Attempt: heartbeat answers and watchdog verdicts land on the attempt they were
about, so a late answer about a finished job cannot stop the next one. A watchdog on the
heartbeat thread stops an attempt that made no progress in time: it stops renewing the lease,
gives the job back with the reason, and, when the stuck call never comes back to a step,
calls on_stuck (the Ray actor exits there, and the pool serves its replacement).

With gpus_per_job N > 1 the worker is rank 0 of a group (service.parallel.group.GroupLeader):
it claims nothing until its N - 1 followers have joined, runs every job's step hook, lease and
fencing here as a one-GPU worker does, and when a rank dies the attempt is given back (so the job
is retried) and the group formed again.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from service import generation, watchdog
from service.config import STALL_FLOOR_SECONDS, Settings
from service.generation import GenerationEngine, JobStopped
from service.jobstore import Claim, JobStore, connect, video_name
from service.parallel.group import GroupFailed, GroupLeader
from service.params import GenerationParams
from service.video import write_mp4_atomically

log = logging.getLogger(__name__)
IDLE_WAIT_SECONDS = 1.0
# How long a finished job's outcome is retried while Redis is unreachable (a restart); past it
# the video is dropped and the job comes back through its lease.
FINISH_RETRY_SECONDS = 60.0
# The watchdog looks at the running attempt this often (no Redis call; heartbeats keep theirs).
WATCHDOG_TICK_SECONDS = 0.25
LEASE_LOST = "lease lost"
# A call stopped by the watchdog that has not returned this many stall periods later is stuck.
STUCK_AFTER_STALLS = 2.0
WARM_UP = GenerationParams(prompt="warm-up")
# A group that could not be formed is tried again this much later.
GROUP_RETRY_SECONDS = 10.0


@dataclass
class Attempt:
    """One claim being run, and what was decided about it."""

    claim: Claim
    watch: watchdog.Watch
    stop_reason: str | None = None
    by_watchdog: bool = False  # stopped for lack of progress: no more lease renewals
    stopped_at: float | None = None  # when the watchdog stopped it (monotonic)
    given_back: bool = False
    stuck_reported: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def stop(self, reason: str, by_watchdog: bool = False) -> bool:
        """The first reason wins, except that the watchdog's replaces a cancel or a lost lease
        (a call stuck after those must still be given up); True when this call set it."""
        with self._lock:
            if self.by_watchdog or (self.stop_reason is not None and not by_watchdog):
                return False
            self.stop_reason, self.by_watchdog = reason, by_watchdog
            if by_watchdog:
                self.stopped_at = time.monotonic()
            return True

    def stuck(self) -> bool:
        """Stopped by the watchdog and still not back at a step STUCK_AFTER_STALLS stall
        periods later: every step takes less than one, so this call will not come back."""
        if self.stopped_at is None:
            return False
        grace = STUCK_AFTER_STALLS * self.watch.limits.stall_after
        return time.monotonic() - self.stopped_at > grace

    def note(self, heartbeat_answer: str) -> None:
        if heartbeat_answer == "cancel":
            self.stop("canceled by the client")
        elif heartbeat_answer == "lost":
            self.stop(LEASE_LOST)


class GenerationWorker:
    def __init__(
        self,
        settings: Settings,
        index: int = 0,
        on_stuck: Callable[[str], None] | None = None,
        placement=None,
    ):
        """on_stuck(reason) runs on the heartbeat thread once the call of a job the watchdog
        stopped has not come back STUCK_AFTER_STALLS stall periods later; None logs only
        (in-process there is nothing to replace the worker). `placement`: the group's
        placement group when gpus_per_job > 1, this actor in its bundle 0 (None: reserve one)."""
        self.settings = settings
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{index}"
        self.store = JobStore.from_settings(connect(settings), settings)
        self.output_dir = Path(settings.output_dir)
        self.on_stuck = on_stuck
        import torch

        torch.set_num_threads(settings.torch_threads)
        self.engine = GenerationEngine.load(settings.model, **engine_options(settings))
        if self.engine.compiled and settings.gpus_per_job == 1:
            self.engine.warm_up(WARM_UP)
        self.placement = placement
        self.group: GroupLeader | None = None
        self.group_error = ""
        self.jobs_done = 0
        self._attempt: Attempt | None = None
        self._closing = threading.Event()
        self._register()
        self._heartbeat = threading.Thread(
            target=self._heartbeat_loop, name="heartbeat", daemon=True
        )
        self._heartbeat.start()

    def info(self, server_now: float | None = None) -> dict:
        attempt = self._attempt
        info = {
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
            "job": "",
            "progress_at": server_now,
            "stall_after": self.settings.stall_timeout_seconds or STALL_FLOOR_SECONDS,
            "gpus_per_job": self.settings.gpus_per_job,
            "dit_precision": self.settings.dit_precision,
            "group_error": self.group_error,
        }
        if attempt is not None and server_now is not None:
            info["job"] = attempt.claim.job_id
            info["progress_at"] = server_now - attempt.watch.seconds_since_progress()
            info["stall_after"] = attempt.watch.limits.stall_after
        return info

    def _register(self) -> None:
        self.store.register_worker(self.worker_id, self.info(self.store.server_time()))

    # --- the heartbeat thread: lease renewals, registry, watchdog ---------------------------

    def _heartbeat_loop(self) -> None:
        """Keeps the worker visible and the current job's lease alive between steps (model
        offload moves and VAE decode can outlast a step), and watches its progress. The
        registry's progress_at is refreshed with each beat: a few times per stall period, so
        that readers do not see a progressing worker as stalled."""
        periods = [self.settings.lease_seconds, self.settings.worker_ttl_seconds]
        periods.append(self.settings.stall_timeout_seconds or STALL_FLOOR_SECONDS)
        interval = min(periods) / 3
        next_beat = time.monotonic() + interval
        while not self._closing.wait(min(interval, WATCHDOG_TICK_SECONDS)):
            attempt = self._attempt
            if attempt is not None:
                self._watch(attempt)
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + interval
                self._beat(attempt)

    def _beat(self, attempt: Attempt | None) -> None:
        try:
            if attempt is not None and not attempt.by_watchdog:
                attempt.note(self.store.heartbeat(attempt.claim, self.worker_id))
            elif attempt is not None and not attempt.given_back:  # Redis was away at the stop
                self._give_back(attempt)
            self._register()
        except redis.RedisError as error:
            log.warning("heartbeat failed: %s", error)

    def _watch(self, attempt: Attempt) -> None:
        if not attempt.by_watchdog:
            reason = attempt.watch.overdue()
            if reason and attempt.stop(reason, by_watchdog=True):
                log.warning("job %s: stopping, %s", attempt.claim.job_id, reason)
                self._give_back(attempt)
            return
        if attempt.stuck() and not attempt.stuck_reported and self._attempt is attempt:
            attempt.stuck_reported = True
            self._report_stuck(attempt)

    def _give_back(self, attempt: Attempt) -> None:
        """Requeue the job (or fail it after its last attempt) with the watchdog's reason;
        fenced, so it is safe from either thread and against a finish that came first."""
        try:
            reason = f"worker {self.worker_id} stopped the job: {attempt.stop_reason}"
            action = self.store.give_up(attempt.claim, self.worker_id, reason)
            attempt.given_back = True
            log.warning("job %s: %s", attempt.claim.job_id, action)
        except redis.RedisError as error:  # the lease, no longer renewed, expires instead
            log.warning("job %s: giving it back failed: %s", attempt.claim.job_id, error)

    def _report_stuck(self, attempt: Attempt) -> None:
        reason = (
            f"job {attempt.claim.job_id}: the stopped call never returned ({attempt.stop_reason})"
        )
        log.error("worker %s is stuck: %s", self.worker_id, reason)
        if self.on_stuck is not None:
            self.on_stuck(reason)

    # --- the main thread: claim, run, finish -------------------------------------------------

    def serve(self, max_jobs: int | None = None) -> int:
        """Run jobs until max_jobs are done (forever when None); returns the count."""
        done = 0
        while max_jobs is None or done < max_jobs:
            try:
                if not self._group_ready():
                    continue
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

    def _group_ready(self) -> bool:
        """A one-GPU worker always is; a group's leader once its followers have joined. A
        group that cannot be formed is shown in the registry (group_error) and tried again
        GROUP_RETRY_SECONDS later; meanwhile this worker claims nothing."""
        if self.settings.gpus_per_job == 1 or self.group is not None:
            return True
        try:
            self.group = GroupLeader.start(
                self.engine,
                self.settings.gpus_per_job,
                self.placement,
                gpus_per_rank=self.settings.gpus_per_worker,
                engine_options=engine_options(self.settings),
            )
        except GroupFailed as error:
            self._group_failed(str(error))
            self._closing.wait(GROUP_RETRY_SECONDS)
            return False
        self.group_error = ""
        log.info("worker %s leads a group of %d ranks", self.worker_id, self.group.world_size)
        if self.engine.compiled:
            self.engine.warm_up(WARM_UP, self.group.generate)
        self._register_quietly()
        return True

    def _group_failed(self, reason: str) -> None:
        log.error("worker %s: its group failed: %s", self.worker_id, reason)
        self.group, self.group_error = None, reason
        self._register_quietly()

    def run(self, claim: Claim) -> str:
        """Run one claimed job to an outcome; returns it ('lost' when the lease was lost,
        'stopped' when the watchdog gave the job back)."""
        params = GenerationParams(**claim.params)
        limits = watchdog.limits_for(self.settings, self.engine.profile, params)
        attempt = Attempt(claim, watchdog.Watch(limits))
        self._attempt = attempt
        try:
            outcome, error, video, metrics = self._generate(attempt, params)
        finally:
            self._attempt = None
        if outcome == "stopped" and not attempt.given_back:
            self._give_back(attempt)
        if outcome in ("lost", "stopped"):
            self._register_quietly()
            return outcome
        if not self._finish(claim, outcome, error, video, metrics):
            log.warning("job %s: result refused, lease lost meanwhile", claim.job_id)
            if video:
                (self.output_dir / video).unlink(missing_ok=True)
            self._register_quietly()
            return "lost"
        self.jobs_done += 1
        self._register()
        return outcome

    def _register_quietly(self) -> None:
        try:
            self._register()
        except redis.RedisError as error:
            log.warning("updating the worker registry failed: %s", error)

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

    def _generate(self, attempt: Attempt, params: GenerationParams) -> tuple[str, str, str, dict]:
        claim = attempt.claim

        def beat(step: int) -> None:
            try:
                attempt.note(self.store.heartbeat(claim, self.worker_id, step))
            except redis.RedisError as error:
                # A Redis blip must not fail the job: the lease and the fenced finish decide.
                log.warning("job %s: heartbeat failed: %s", claim.job_id, error)

        def stop_if_asked() -> None:
            if attempt.stop_reason:
                raise JobStopped(attempt.stop_reason)

        def on_step(step: int, total: int) -> None:
            _test_hang(self.settings, params, step)
            stop_if_asked()
            attempt.watch.progressed()
            beat(step)
            stop_if_asked()

        beat(0)
        try:
            stop_if_asked()
            frames, metrics = (self.group or self.engine).generate(params, on_step)
            stop_if_asked()  # a stop decided during the decode: its video would be refused
            name = video_name(claim.job_id, claim.attempt)
            write_mp4_atomically(frames, self.output_dir / name)
        except JobStopped as stopped:
            if attempt.by_watchdog:
                return "stopped", stopped.reason, "", {}
            if stopped.reason == LEASE_LOST:
                return "lost", "", "", {}
            return "canceled", stopped.reason, "", {}
        except GroupFailed as error:  # a rank died: the job is given back, the group re-formed
            self._group_failed(str(error))
            attempt.stop(f"its group failed: {error}")
            return "stopped", attempt.stop_reason, "", {}
        except OSError as error:
            return "failed", _describe_os_error(error, self.output_dir), "", {}
        except Exception as error:  # the job fails with its reason; the worker takes the next
            log.exception("job %s failed", claim.job_id)
            return "failed", f"{type(error).__name__}: {error}", "", {}
        metrics["load_seconds"] = self.engine.load_seconds
        return "succeeded", "", name, metrics

    def close(self) -> None:
        self._closing.set()


def engine_options(settings: Settings) -> dict:
    """How every rank of a worker loads its pipeline (GenerationEngine.load's keywords)."""
    return {
        "cache_dir": settings.model_cache_dir,
        "host_memory_gib": settings.worker_host_memory_gib,
        "compile_transformer": settings.torch_compile,
        "gpu_memory_gib": settings.worker_gpu_memory_gib,
        "dit_precision": settings.dit_precision,
    }


def _test_hang(settings: Settings, params: GenerationParams, step: int) -> None:
    """The watchdog tests' hung call (settings.test_hang_prompt is empty in service)."""
    if step == 1 and settings.test_hang_prompt and params.prompt == settings.test_hang_prompt:
        time.sleep(settings.test_hang_seconds)


def _describe_os_error(error: OSError, output_dir: Path) -> str:
    if error.errno == errno.ENOSPC:
        return f"output volume full: no space left in {output_dir}"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"output directory {output_dir} is not writable by uid {os.getuid()}: {error}"
    return f"writing the video to {output_dir} failed: {error}"
