"""The pool driver: runs ON the Ray cluster (submitted through the Ray Jobs API by the
supervisor), keeps `workers` GenerationWorker actors serving, and reaps expired leases.

A dead actor is restarted by Ray (max_restarts=-1) and served again; its job comes back
through the lease. An actor whose job hung in a call it cannot interrupt exits on purpose, after
giving the job back, and is replaced the same way. If this driver dies its actors die with it;
the supervisor resubmits it.
"""

from __future__ import annotations

import logging
import os
import time

import ray
from ray.util.placement_group import placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from service.config import Settings
from service.jobstore import JobStore, connect
from service.keys import POOL_HEARTBEAT
from service.parallel.group import rank_bundle
from service.worker import GenerationWorker

log = logging.getLogger(__name__)
RAY_NAMESPACE = "mochi"


# Exit status of an actor that replaced itself: a call it cannot interrupt holds its process.
STUCK_EXIT_CODE = 75


def _exit_for_replacement(reason: str) -> None:
    """The job was given back already (or its unrenewed lease expires); Ray restarts the actor
    and the pool serves the new one."""
    log.error("worker actor exits to be replaced: %s", reason)
    logging.shutdown()
    os._exit(STUCK_EXIT_CODE)


@ray.remote(max_restarts=-1, max_task_retries=0)
class _ActorWorker(GenerationWorker):
    def __init__(self, settings: Settings, index: int = 0, placement=None):
        super().__init__(settings, index, on_stuck=_exit_for_replacement, placement=placement)

    def pid(self) -> int:
        return os.getpid()


def start_actors(settings: Settings) -> list:
    """One actor per worker; with gpus_per_job > 1 each is a group's rank 0, in bundle 0 of
    its group's placement group (`mochi-group-<index>`), where it starts its followers."""
    options = {"num_gpus": settings.gpus_per_worker, "num_cpus": 1}
    actors = []
    for index in range(settings.workers):
        placement = None
        if settings.gpus_per_job > 1:
            placement = group_placement(settings, index)
            strategy = PlacementGroupSchedulingStrategy(placement, 0)
            options["scheduling_strategy"] = strategy
        actor = _ActorWorker.options(name=f"worker-{index}", **options)
        actors.append(actor.remote(settings, index, placement))
    return actors


def group_placement(settings: Settings, index: int):
    """Reserved, not awaited: the actor starts once Ray places every bundle on one node; until
    then Ray's state API lists the placement group as pending."""
    bundle = rank_bundle(cpus_per_rank=1, gpus_per_rank=settings.gpus_per_worker)
    return placement_group(
        [bundle] * settings.gpus_per_job, strategy="STRICT_PACK", name=f"mochi-group-{index}"
    )


def run_pool(settings: Settings, stop_after_seconds: float | None = None) -> None:
    ray.init(address="auto", namespace=RAY_NAMESPACE, log_to_driver=True)
    store = JobStore.from_settings(connect(settings), settings)
    actors = start_actors(settings)
    serving = {actor.serve.remote(): actor for actor in actors}
    started = time.monotonic()
    log.info("pool of %d workers started", len(actors))
    while stop_after_seconds is None or time.monotonic() - started < stop_after_seconds:
        ready, _ = ray.wait(list(serving), timeout=settings.reaper_interval_seconds)
        for ref in ready:
            actor = serving.pop(ref)
            try:
                ray.get(ref)
            except ray.exceptions.RayError as error:  # died (Ray restarts it) or serve raised
                log.warning("worker actor stopped serving (%s); serving again", error)
            serving[actor.serve.remote()] = actor
        _tick(store, settings)


def _tick(store: JobStore, settings: Settings) -> None:
    try:
        store.redis.set(POOL_HEARTBEAT, store.server_time(), ex=60)
        if settings.reaper_enabled:
            for job_id, action in store.reap_expired():
                log.warning("job %s: lease expired, %s", job_id, action)
    except Exception as error:  # Redis down: keep the pool alive and retry next tick
        log.warning("pool tick failed: %s", error)
