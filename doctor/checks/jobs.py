"""Jobs, live (the job store in Redis): leases that expired with nobody reaping them, jobs
queued while no worker can take them, jobs no live worker can run, jobs running on a worker
that no longer exists, and a spike of failed jobs."""

from __future__ import annotations

from collections import Counter

from doctor.finding import Category, Severity
from doctor.inventory import Inventory
from doctor.live_state import WORKER_CLASS, live_workers, worker_ttl
from doctor.memory_inputs import plan_parallelism
from doctor.registry import Hit, check
from doctor.state import JobsState
from service.memory_model import plan_generation, profile_for
from service.params import DEFAULTS
from service.records import ACTIVE_STATES

FIRST_FEW = 5
QUEUED_TOO_LONG_SECONDS = 120.0
FAILED_WINDOW_SECONDS = 900.0
FAILED_SPIKE_COUNT = 3
FAILED_SPIKE_SHARE = 0.2


def _timed_jobs(inventory: Inventory) -> JobsState | None:
    """The job store as read, when the read has Redis's clock to judge its times by."""
    jobs = inventory.live.jobs
    return jobs if jobs is not None and jobs.server_time else None


def _ids(jobs: list[dict]) -> str:
    shown = ", ".join(str(j.get("id")) for j in jobs[:FIRST_FEW])
    more = f" and {len(jobs) - FIRST_FEW} more" if len(jobs) > FIRST_FEW else ""
    return shown + more


def _resource(jobs: list[dict]) -> str:
    return f"job/{jobs[0].get('id')}" if len(jobs) == 1 else "job/*"


@check(
    code="JOB001",
    severity=Severity.ERROR,
    category=Category.JOBS,
    summary="Jobs in starting/running whose lease expired: the reaper is not doing its work",
    fix="Enable the reaper (MOCHI_REAPER_ENABLED=true) and keep the supervisor and the pool "
    "running; the reaper requeues or fails these jobs.",
    needs_live=True,
)
def expired_leases(inventory: Inventory):
    state = _timed_jobs(inventory)
    if state is None:
        return
    now = state.server_time
    expired = []
    for job in state.jobs:
        lease_end, beat = job.get("lease_expires"), job.get("heartbeat_at")
        if job.get("status") not in ACTIVE_STATES or not lease_end or not beat:
            continue
        grace = max(2.0, 0.2 * (lease_end - beat))
        if now - lease_end > grace:
            expired.append(job)
    if not expired:
        return
    oldest = min(expired, key=lambda j: j["lease_expires"])
    yield Hit(
        _resource(expired),
        f"{len(expired)} job(s) still {oldest.get('status')} although their lease expired "
        f"(oldest {now - oldest['lease_expires']:.0f}s ago, last heartbeat "
        f"{now - oldest['heartbeat_at']:.0f}s ago): their worker stopped and nothing reaps them, "
        f"so they stay RUNNING forever: {_ids(expired)}",
        f"job {oldest.get('id')}: status {oldest.get('status')}, worker {oldest.get('worker')}, "
        f"lease_expires {oldest['lease_expires']:.0f} < server time {now:.0f}",
    )


@check(
    code="JOB002",
    severity=Severity.ERROR,
    category=Category.JOBS,
    summary="Jobs queued for long while no worker is alive or free",
    fix=(
        "Bring the pool back (RAY008, RAY009) or add workers; the queue drains once a worker is "
        "free."
    ),
    needs_live=True,
)
def queued_without_workers(inventory: Inventory):
    state = _timed_jobs(inventory)
    if state is None:
        return
    now = state.server_time
    waiting = [
        j
        for j in state.jobs
        if j.get("status") == "queued"
        and now - (j.get("created_at") or now) > QUEUED_TOO_LONG_SECONDS
    ]
    if not waiting:
        return
    ttl = worker_ttl(inventory)
    alive = live_workers(inventory, ttl)
    busy = {j.get("worker") for j in state.jobs if j.get("status") in ACTIVE_STATES}
    # A group leader whose ranks have not joined claims nothing.
    unformed = {worker for worker, info in alive.items() if info.get("group_error")}
    free = set(alive) - busy - unformed
    if free:
        return
    oldest = min(waiting, key=lambda j: j.get("created_at") or now)
    why = "no worker is alive" if not alive else f"all {len(alive)} live worker(s) are busy"
    if unformed:
        why += f" or cannot form their group of ranks (RAY014/RAY015: {len(unformed)})"
    yield Hit(
        _resource(waiting),
        f"{len(waiting)} job(s) queued for more than {QUEUED_TOO_LONG_SECONDS:g}s and {why}: "
        f"{_ids(waiting)}",
        f"oldest job {oldest.get('id')} queued {now - (oldest.get('created_at') or now):.0f}s; "
        f"queue length {state.queue_length}; live workers {len(alive)}, seen within the worker "
        f"TTL of {ttl}",
        severity=None if not alive else "warning",
    )


def _params(job: dict) -> dict:
    """What the job runs with: its parameters over the service's defaults."""
    return {**DEFAULTS, **(job.get("params") or {})}


def _fits(job: dict, worker: dict) -> bool | None:
    params = _params(job)
    memory = worker.get("device_memory_gib")
    if not memory:
        return None
    plan = plan_generation(
        profile_for(str(worker.get("model") or "")),
        int(params["num_frames"]),
        int(params["height"]),
        int(params["width"]),
        float(params["guidance_scale"]),
        float(memory),
        **plan_parallelism(worker.get("gpus_per_job"), worker.get("dit_precision")),
    )
    return plan.fits


@check(
    code="JOB003",
    severity=Severity.ERROR,
    category=Category.JOBS,
    summary="Queued jobs whose parameters no live worker can run",
    fix="Add workers with more GPU memory, or lower the admission limits so the API refuses such "
    "jobs (the memory model decides).",
    needs_live=True,
)
def jobs_nobody_can_run(inventory: Inventory):
    state = inventory.live.jobs
    if state is None:
        return
    ttl = worker_ttl(inventory)
    workers = live_workers(inventory, ttl)
    if not workers:
        return
    hopeless = []
    for job in state.jobs:
        if job.get("status") != "queued":
            continue
        answers = [_fits(job, info) for info in workers.values()]
        if answers and all(a is False for a in answers):
            hopeless.append(job)
    if hopeless:
        params = _params(hopeless[0])
        memories = sorted({w.get("device_memory_gib") for w in workers.values()})
        yield Hit(
            _resource(hopeless),
            f"{len(hopeless)} queued job(s) do not fit any live worker by the memory model: "
            f"{_ids(hopeless)}",
            f"job {hopeless[0].get('id')}: {params['num_frames']} frames "
            f"{params['height']}x{params['width']}; worker device memory GiB: {memories}; live "
            f"workers: those seen within the worker TTL of {ttl}",
        )


@check(
    code="JOB004",
    severity=Severity.ERROR,
    category=Category.JOBS,
    summary="Jobs marked running on a worker or actor that no longer exists",
    fix="Enable the reaper so their leases expire into the queue; find why the worker died "
    "(RAY009, MEM005).",
    needs_live=True,
)
def jobs_on_missing_workers(inventory: Inventory):
    state = _timed_jobs(inventory)
    if state is None:
        return
    ray = inventory.live.ray
    actors = ray.actors if ray is not None else None
    alive_pids = None
    if actors is not None:
        alive_pids = {
            str(a.get("pid"))
            for a in actors
            if a.get("class_name") == WORKER_CLASS and a.get("state") == "ALIVE"
        }
    ttl = worker_ttl(inventory)
    seen = live_workers(inventory, ttl)
    orphans = []
    for job in state.jobs:
        worker = str(job.get("worker") or "")
        if job.get("status") not in ACTIVE_STATES or not worker:
            continue
        pid = worker.split(":")[1] if worker.count(":") >= 2 else ""
        gone = pid not in alive_pids if alive_pids is not None else worker not in seen
        if gone:
            orphans.append(job)
    if orphans:
        yield Hit(
            _resource(orphans),
            f"{len(orphans)} job(s) are marked {orphans[0].get('status')} on a worker that no "
            f"longer exists: {_ids(orphans)}",
            f"job {orphans[0].get('id')}: worker {orphans[0].get('worker')} is "
            + (
                "not a live worker actor (by pid)"
                if alive_pids is not None
                else f"not heartbeating within the worker TTL of {ttl}"
            ),
        )


@check(
    code="JOB005",
    severity=Severity.WARNING,
    category=Category.JOBS,
    summary="A spike of failed jobs",
    fix="Read the most common error in the evidence and its runbook (output volume: PERM005; "
    "memory: MEM004/MEM005); fix it, then resubmit the failed jobs.",
    needs_live=True,
)
def failed_spike(inventory: Inventory):
    state = _timed_jobs(inventory)
    if state is None:
        return
    now = state.server_time
    recent = [
        j
        for j in state.jobs
        if j.get("finished_at") and now - j["finished_at"] <= FAILED_WINDOW_SECONDS
    ]
    failed = [j for j in recent if j.get("status") == "failed"]
    if len(failed) < FAILED_SPIKE_COUNT or len(failed) < FAILED_SPIKE_SHARE * len(recent):
        return
    error, count = Counter((j.get("error") or "?") for j in failed).most_common(1)[0]
    yield Hit(
        "job/*",
        f"{len(failed)} of {len(recent)} jobs finished in the last {FAILED_WINDOW_SECONDS / 60:g}"
        f" minutes failed: {_ids(failed)}",
        f"most common error ({count}x): {error}"[:400],
    )
