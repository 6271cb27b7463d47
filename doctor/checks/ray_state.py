"""Ray, live: dead or missing nodes, the pool driver not running, fewer live worker actors than
configured or actors restarting, and work pending on resources no node has (the field report's
jobs stuck in RUNNING)."""

from __future__ import annotations

import re

from doctor.finding import Category, Severity
from doctor.inventory import Inventory
from doctor.live_state import WORKER_CLASS, component_resource
from doctor.registry import Hit, check
from doctor.state import RayState
from service.keys import POOL_SUBMISSION

POOL_NAMESPACE = "mochi"
WORKER_NAME = re.compile(r"^worker-(\d+)$")
ALIVE_JOB_STATES = ("PENDING", "RUNNING")
FIRST_FEW = 5


def _ray(inventory: Inventory) -> RayState:
    """Ray as read; with nothing read (no listing), when Ray was not."""
    return inventory.live.ray or RayState()


def _resource(inventory: Inventory) -> str:
    return component_resource("ray", _ray(inventory).address)


def configured_workers(inventory: Inventory) -> tuple[int, str] | None:
    """MOCHI_WORKERS from the deployment's ConfigMap or env, when the input has it."""
    for cm in inventory.of("ConfigMap"):
        value = str((cm.get("data") or {}).get("MOCHI_WORKERS", ""))
        if value.isdigit():
            return int(value), f"ConfigMap {cm['metadata'].get('name')} MOCHI_WORKERS={value}"
    for workload in inventory.workloads:
        for container in workload.containers:
            value = workload.env(container).get("MOCHI_WORKERS")
            if value and value.value and value.value.isdigit():
                return int(value.value), f"{workload.resource} env MOCHI_WORKERS={value.value}"
    return None


def expected_worker_nodes(inventory: Inventory) -> int:
    return sum(w.replicas for w in inventory.workloads if w.ray_role == "worker")


@check(
    code="RAY007",
    severity=Severity.ERROR,
    category=Category.AVAILABILITY,
    summary="Ray nodes are dead, or fewer worker nodes are alive than deployed",
    fix="Look at the dead node's pod (events, OOM kills, its raylet.out); make the worker pods "
    "reach the GCS and stay up.",
    needs_live=True,
)
def dead_nodes(inventory: Inventory):
    nodes = _ray(inventory).nodes
    if nodes is None:
        return
    alive_workers = [n for n in nodes if n.get("state") == "ALIVE" and not n.get("is_head_node")]
    alive_ids = {n.get("node_ip") for n in nodes if n.get("state") == "ALIVE"}
    dead = [n for n in nodes if n.get("state") == "DEAD" and n.get("node_ip") not in alive_ids]
    if dead:
        yield Hit(
            _resource(inventory),
            f"{len(dead)} Ray node(s) are dead and no live node took their address; their actors "
            "and tasks were lost",
            "; ".join(
                f"{n.get('node_ip')} ({'head' if n.get('is_head_node') else 'worker'}): "
                f"{n.get('state_message') or 'DEAD'}"
                for n in dead[:FIRST_FEW]
            ),
            severity=Severity.WARNING,
        )
    expected = expected_worker_nodes(inventory)
    if expected and len(alive_workers) < expected:
        yield Hit(
            _resource(inventory),
            f"{len(alive_workers)} Ray worker node(s) alive, {expected} deployed: the missing "
            "ones never joined or died",
            f"alive worker nodes: {len(alive_workers)}; worker replicas in the deployment: "
            f"{expected}",
        )


@check(
    code="RAY008",
    severity=Severity.ERROR,
    category=Category.AVAILABILITY,
    summary="The pool driver is not running on the Ray cluster",
    fix="Check the supervisor's logs (it resubmits the pool); read the driver's logs with "
    "`ray job logs <submission id>`.",
    needs_live=True,
)
def pool_not_running(inventory: Inventory):
    jobs_state = inventory.live.jobs
    ray_jobs = _ray(inventory).jobs
    if jobs_state is None or ray_jobs is None:
        return
    submission = jobs_state.pool_submission
    if not submission:
        yield Hit(
            _resource(inventory),
            f"no pool driver was ever submitted: Redis has no {POOL_SUBMISSION}, so no worker "
            "serves the queue",
            f"{POOL_SUBMISSION}: missing",
        )
        return
    job = next((j for j in ray_jobs if j.get("submission_id") == submission), None)
    status = (job or {}).get("status")
    if status in ALIVE_JOB_STATES:
        return
    yield Hit(
        _resource(inventory),
        f"the pool driver {submission} is {status or 'unknown to the cluster'}: its worker "
        "actors died with it and queued jobs wait",
        f"Ray job {submission}: status {status or 'not found in /api/jobs/'}",
    )


@check(
    code="RAY009",
    severity=Severity.ERROR,
    category=Category.AVAILABILITY,
    summary="Fewer live worker actors than configured, or worker actors restarting",
    fix="Read the dead actor's death cause (`ray list actors --detail`); fix what kills it (OOM, "
    "a crash loading the model), or lower MOCHI_WORKERS to what the cluster can hold.",
    needs_live=True,
)
def worker_actors(inventory: Inventory):
    actors = _ray(inventory).actors
    if actors is None:
        return
    workers = [
        a
        for a in actors
        if a.get("class_name") == WORKER_CLASS and a.get("ray_namespace") in (POOL_NAMESPACE, None)
    ]
    names = {a.get("name") for a in workers if a.get("name")}
    alive = {a.get("name") for a in workers if a.get("state") == "ALIVE"}
    configured = configured_workers(inventory)
    indexes = [int(m.group(1)) for n in names if (m := WORKER_NAME.match(str(n)))]
    wanted, why = configured or (
        (max(indexes) + 1, f"actors worker-0..worker-{max(indexes)} seen") if indexes else (0, "")
    )
    if wanted and len(alive) < wanted:
        missing = sorted(n for n in names - alive if n) or ["(never created)"]
        yield Hit(
            _resource(inventory),
            f"{len(alive)} of {wanted} worker actors alive: jobs run at a fraction of capacity "
            "or not at all",
            f"{why}; not alive: {', '.join(missing[:FIRST_FEW])}",
        )
    for actor in workers:
        restarts = int(actor.get("num_restarts") or 0)
        if actor.get("state") == "RESTARTING" or (actor.get("state") == "ALIVE" and restarts):
            yield Hit(
                _resource(inventory),
                f"worker actor {actor.get('name')} is {actor.get('state')} after {restarts} "
                "restart(s): something keeps killing it",
                f"actor {actor.get('actor_id')} {actor.get('name')}: state {actor.get('state')},"
                f" num_restarts {restarts}",
                severity=Severity.WARNING,
            )


def _capacity(nodes: list[dict]) -> dict[str, float]:
    """The most of each resource any live node has."""
    best: dict[str, float] = {}
    for node in nodes:
        if node.get("state") != "ALIVE":
            continue
        for name, amount in (node.get("resources_total") or {}).items():
            best[name] = max(best.get(name, 0.0), float(amount))
    return best


def _unmet(demand: dict, capacity: dict[str, float]) -> dict[str, tuple[float, float]]:
    return {
        name: (float(amount), capacity.get(name, 0.0))
        for name, amount in (demand or {}).items()
        if float(amount) > capacity.get(name, 0.0)
    }


@check(
    code="RAY010",
    severity=Severity.ERROR,
    category=Category.AVAILABILITY,
    summary="Tasks or actors wait for resources no node has (PENDING_NODE_ASSIGNMENT)",
    fix=(
        "Add nodes that have the resource (a GPU worker group with nvidia.com/gpu and "
        "num-gpus), or lower the demand (MOCHI_GPUS_PER_WORKER, memory)."
    ),
    needs_live=True,
)
def infeasible_work(inventory: Inventory):
    ray = _ray(inventory)
    nodes = ray.nodes
    if not nodes:
        return
    capacity = _capacity(nodes)
    stuck = []
    for task in ray.pending_tasks or ():
        if task.get("state") == "PENDING_NODE_ASSIGNMENT":
            unmet = _unmet(task.get("required_resources"), capacity)
            if unmet:
                stuck.append((f"task {task.get('name')}", task.get("task_id"), unmet))
    for actor in ray.actors or ():
        if actor.get("state") in ("PENDING_CREATION", "DEPENDENCIES_UNREADY"):
            unmet = _unmet(actor.get("required_resources"), capacity)
            if unmet:
                stuck.append(
                    (
                        f"actor {actor.get('name') or actor.get('class_name')}",
                        actor.get("actor_id"),
                        unmet,
                    )
                )
    if not stuck:
        return
    demands: dict[str, tuple[float, float]] = {}
    for _, _, unmet in stuck:
        for name, pair in unmet.items():
            demands[name] = max(demands.get(name, pair), pair)
    wanted = ", ".join(
        f"{n}={need:g} (largest node has {have:g})" for n, (need, have) in sorted(demands.items())
    )
    yield Hit(
        _resource(inventory),
        f"{len(stuck)} task(s)/actor(s) are PENDING_NODE_ASSIGNMENT on {wanted}: no node can "
        "ever run them, so jobs stay queued or RUNNING without progress",
        "; ".join(f"{what} {ident}" for what, ident, _ in stuck[:FIRST_FEW]),
    )
