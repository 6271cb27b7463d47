"""One job across N ranks: N pipelines packed on one node, joined by torch.distributed.

Each rank loads the whole pipeline (GenerationEngine, as a one-GPU worker does) and splits the
transformer with `enable_context_parallel`. Per job, rank 0 is handed the parameters and
broadcasts them; every rank runs the service's own `GenerationEngine.generate` on them, so each
starts from the same seeded noise and runs the denoising loop on its share. After every step rank 0
broadcasts whether to go on (its step hook may stop the job: cancel, lost lease), so all ranks
leave together. Followers leave after the last step; rank 0 alone decodes and returns the frames.

Two shapes: `GroupLeader` keeps rank 0 in the caller's process (a pool worker, whose step hook,
lease and fencing stay local) with ranks 1..N-1 as actors; `WorkerGroup` has every rank an actor
(tests and benches drive it from outside). Either way rank 0's process makes the group's
rendezvous (service.parallel.rendezvous: a private FileStore, no listening socket) and closing
the group removes it.

A rank that dies fails the call at once: the caller waits on all ranks together and raises on the
first failure, then ends the group (survivors may be blocked in a collective). Collectives and
every wait carry timeouts, so no failure hangs the caller. GroupFailed's message starts with
what failed: `placement:`, `rendezvous:` or `generate:` (the doctor reads it from the registry).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from datetime import timedelta

import numpy as np
import ray
import torch
import torch.distributed as dist
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from service import memory_model
from service.generation import GenerationEngine, JobStopped
from service.parallel.cfg_split import CFG_RANKS, disable_cfg_split, enable_cfg_split
from service.parallel.mochi_plan import (
    check_world_size,
    disable_context_parallel,
    enable_context_parallel,
)
from service.parallel.rendezvous import Rendezvous, bind_to_loopback
from service.params import MAX_SEED, GenerationParams

# genmo/mochi-1-preview's transformer config; the tiny model reads its own.
MOCHI_1_ATTENTION_HEADS = 24
DEFAULT_TIMEOUT_SECONDS = 600.0
SEQUENCE_SPLIT, CFG_SPLIT = "sequence", "cfg"


class GroupFailed(RuntimeError):
    """A rank died or raised, or the group missed its deadline; the group is closed."""


class _ShareDone(Exception):
    """Raised on a follower after the last step: the frames are decoded on rank 0 only."""


def attention_heads(model: str) -> int:
    if model == "tiny":
        from service.tiny_model import build_transformer

        return build_transformer().config.num_attention_heads
    return MOCHI_1_ATTENTION_HEADS


def join_process_group(rank: int, world_size: int, rendezvous: Rendezvous, timeout_s: float) -> str:
    """NCCL for CUDA tensors where there is a GPU; gloo for CPU tensors always (the per-job
    broadcasts and step flags are small CPU tensors). Both on loopback: all ranks share a node."""
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    bind_to_loopback()
    dist.init_process_group(
        backend,
        init_method=rendezvous.init_method,
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=timeout_s),
    )
    return backend


@ray.remote(max_restarts=0, max_task_retries=0)
class ContextParallelRank:
    def __init__(self, rank: int, world_size: int, model: str, engine_options: dict | None = None):
        """engine_options: GenerationEngine.load's keywords (a pool worker's settings)."""
        self.rank, self.world_size, self.model = rank, world_size, model
        self.engine_options = engine_options or {}
        self.engine: GenerationEngine | None = None

    def rendezvous(self) -> Rendezvous:
        """Made by rank 0, on the group's node."""
        return Rendezvous.create()

    def join(self, rendezvous: Rendezvous, timeout_s: float) -> str:
        backend = join_process_group(self.rank, self.world_size, rendezvous, timeout_s)
        self.engine = GenerationEngine.load(self.model, **self.engine_options)
        if self.world_size > 1:
            split_engine(self.engine, self.world_size)
        return backend

    def run(
        self, params: dict | None, on_step: Callable[[int, int], None] | None = None
    ) -> tuple[np.ndarray, dict[str, float]] | None:
        """Rank 0: `params` and the job's step hook; followers: None, and they return None."""
        if self.rank == 0:
            return lead(self.engine, GenerationParams(**params), on_step)
        follow(self.engine)
        return None


def split_engine(engine: GenerationEngine, world_size: int) -> None:
    """Ready the engine for jobs across the (new) process group: each job then picks its split
    (use_split); its memory plans per rank."""
    use_split(engine, None)
    engine.gpus_per_job = world_size


def split_for(params: GenerationParams, world_size: int) -> str | None:
    """Two ranks with guidance on split the CFG batch; every other job on more than one rank
    splits the sequence."""
    if world_size == 1:
        return None
    if world_size == CFG_RANKS and memory_model.cfg_batch(params.guidance_scale) == CFG_RANKS:
        return CFG_SPLIT
    return SEQUENCE_SPLIT


def use_split(engine: GenerationEngine, split: str | None) -> None:
    """Switch the transformer's hooks to `split` (None: none), on every rank alike."""
    transformer = getattr(engine.pipeline.transformer, "_orig_mod", engine.pipeline.transformer)
    current = getattr(transformer, "_mochi_split", None)
    if current == split:
        return
    if current == SEQUENCE_SPLIT:
        disable_context_parallel(transformer)
    elif current == CFG_SPLIT:
        disable_cfg_split(transformer)
    if split == SEQUENCE_SPLIT:
        enable_context_parallel(transformer, torch.device(engine.device))
    elif split == CFG_SPLIT:
        enable_cfg_split(transformer)
    transformer._mochi_split = split


def lead(
    engine: GenerationEngine,
    params: GenerationParams,
    on_step: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """Rank 0's part of one job: share the parameters, run its share, decode."""
    job = GenerationParams(**_broadcast_params(params.model_dump()))
    use_split(engine, split_for(job, dist.get_world_size()))
    return engine.generate(job, on_step=lambda step, total: _lead_step(on_step, step, total))


def follow(engine: GenerationEngine) -> None:
    """A follower's part of one job: rank 0's parameters, its share of every step."""
    job = GenerationParams(**_broadcast_params(None))
    use_split(engine, split_for(job, dist.get_world_size()))
    with contextlib.suppress(_ShareDone):
        engine.generate(job, on_step=_follow_step)


def _broadcast_params(params: dict | None) -> dict:
    """Rank 0 fixes the seed when the job has none: every rank must draw the same noise."""
    if params is not None and params.get("seed") is None:
        params = {**params, "seed": random.randrange(MAX_SEED)}
    message = [params]
    dist.broadcast_object_list(message, src=0, device=torch.device("cpu"))
    return message[0]


def _broadcast_stop(stop: bool) -> bool:
    flag = torch.tensor([int(stop)])
    dist.broadcast(flag, src=0)
    return bool(flag.item())


def _lead_step(on_step: Callable[[int, int], None] | None, step: int, total: int) -> None:
    try:
        if on_step is not None:
            on_step(step, total)
    except JobStopped:
        _broadcast_stop(True)
        raise
    _broadcast_stop(False)


def _follow_step(step: int, total: int) -> None:
    if _broadcast_stop(False):
        raise JobStopped("stopped by rank 0")
    if step == total:
        raise _ShareDone()


def rank_bundle(cpus_per_rank: float, gpus_per_rank: float) -> dict[str, float]:
    return {"CPU": cpus_per_rank, **({"GPU": gpus_per_rank} if gpus_per_rank else {})}


def reserve_placement(
    world_size: int, bundle: dict[str, float], timeout_s: float, name: str = ""
) -> PlacementGroup:
    """One bundle per rank, all on one node; GroupFailed ('placement: ...') when Ray cannot
    place them within timeout_s."""
    placement = placement_group([bundle] * world_size, strategy="STRICT_PACK", name=name)
    try:
        ray.get(placement.ready(), timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        remove_placement_group(placement)
        raise GroupFailed(placement_refusal(world_size, bundle, timeout_s)) from None
    return placement


def placement_refusal(world_size: int, bundle: dict[str, float], timeout_s: float) -> str:
    return (
        f"placement: {world_size} ranks of {bundle} each cannot be placed together on one node "
        f"within {timeout_s:g} s"
    )


def start_ranks(
    placement: PlacementGroup,
    indices: range,
    world_size: int,
    model: str,
    bundle: dict,
    engine_options: dict | None = None,
) -> list:
    return [
        ContextParallelRank.options(
            num_cpus=bundle["CPU"],
            num_gpus=bundle.get("GPU", 0),
            scheduling_strategy=PlacementGroupSchedulingStrategy(placement, index),
        ).remote(index, world_size, model, engine_options)
        for index in indices
    ]


def wait_all(
    calls: list, what: str, timeout_s: float, on_failure: Callable[[], None], leader_call=None
) -> list:
    """The results of calls on ranks; on the first failure or at the deadline, on_failure()
    (which ends the group: survivors may be blocked in a collective) and GroupFailed. A
    follower's JobStopped is rank 0's stop obeyed; rank 0's own (`leader_call`) is re-raised
    once every rank is back."""
    deadline = time.monotonic() + timeout_s
    pending, stopped = list(calls), None
    while pending:
        ready, pending = ray.wait(pending, timeout=max(0.0, deadline - time.monotonic()))
        if not ready:
            on_failure()
            raise GroupFailed(f"{what}: ranks did not finish within {timeout_s:g} s")
        for call in ready:
            try:
                ray.get(call)
            except JobStopped as error:
                if call is leader_call:
                    stopped = error
            except Exception as error:
                on_failure()
                raise GroupFailed(f"{what}: rank {calls.index(call)} failed: {error}") from error
    if stopped is not None:
        raise stopped
    return ray.get(calls)


class _RankActors:
    """What both shapes share: rank actors in a placement group, the rendezvous they met
    through, and how the group ends, after a failure too (`close`)."""

    def __init__(self, actors: list, placement, owns_placement: bool, timeout_s: float):
        self.actors, self.placement, self.owns_placement = actors, placement, owns_placement
        self.timeout_s = timeout_s
        self.rendezvous: Rendezvous | None = None

    def _wait(self, calls: list, what: str, leader_call=None) -> list:
        return wait_all(calls, what, self.timeout_s, self.close, leader_call)

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
        self._leave_process_group()
        if self.rendezvous is not None:
            self.rendezvous.remove()
            self.rendezvous = None
        if self.owns_placement and self.placement is not None:
            remove_placement_group(self.placement)
        self.placement = None

    def _leave_process_group(self) -> None:
        """This process's own rank, where it has one."""


class WorkerGroup(_RankActors):
    """N ranks, all actors, for one job at a time (tests and benches drive it from outside).
    Built by `start`; unusable (closed) after a failure."""

    def __init__(self, ranks: list, placement, timeout_s: float):
        super().__init__(ranks, placement, True, timeout_s)

    @property
    def ranks(self) -> list:
        return self.actors

    @classmethod
    def start(
        cls,
        world_size: int,
        model: str = "tiny",
        cpus_per_rank: float = 1,
        gpus_per_rank: float = 0,
        timeout_s: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> WorkerGroup:
        check_world_size(world_size, attention_heads(model))
        bundle = rank_bundle(cpus_per_rank, gpus_per_rank)
        placement = reserve_placement(world_size, bundle, timeout_s)
        ranks = start_ranks(placement, range(world_size), world_size, model, bundle)
        group = cls(ranks, placement, timeout_s)
        group.rendezvous = group._wait([ranks[0].rendezvous.remote()], "rendezvous")[0]
        joins = [rank.join.remote(group.rendezvous, timeout_s) for rank in ranks]
        group._wait(joins, "rendezvous")
        return group

    def generate(
        self, params: GenerationParams, on_step: Callable[[int, int], None] | None = None
    ) -> tuple[np.ndarray, dict[str, float]]:
        """The job's frames and rank 0's metrics. `on_step` runs on rank 0 after every step and
        may raise JobStopped, which every rank obeys; the group stays usable after that."""
        lead_call = self.ranks[0].run.remote(params.model_dump(), on_step)
        calls = [lead_call] + [rank.run.remote(None) for rank in self.ranks[1:]]
        return self._wait(calls, "generate", lead_call)[0]


class GroupLeader(_RankActors):
    """Rank 0 in this process, on the caller's engine (a pool worker keeps its step hook, lease
    and fencing local); ranks 1..N-1 are actors in bundles 1..N-1 of the placement group.
    `generate` keeps WorkerGroup.generate's contract; after a GroupFailed the leader is closed."""

    def __init__(self, engine, followers: list, placement, owns_placement: bool, timeout_s):
        super().__init__(followers, placement, owns_placement, timeout_s)
        self.engine = engine

    @property
    def followers(self) -> list:
        return self.actors

    @property
    def world_size(self) -> int:
        return len(self.followers) + 1

    @classmethod
    def start(
        cls,
        engine: GenerationEngine,
        world_size: int,
        placement: PlacementGroup | None = None,
        cpus_per_rank: float = 1,
        gpus_per_rank: float = 0,
        timeout_s: float = DEFAULT_TIMEOUT_SECONDS,
        engine_options: dict | None = None,
    ) -> GroupLeader:
        """`placement`: world_size bundles, bundle 0 this process's (a pool actor runs in it);
        None reserves one here (bundle 0 then stands unused: in-process leaders are tests).
        `engine_options`: how the followers load their pipelines, as the caller's engine was."""
        check_world_size(world_size, engine.pipeline.transformer.config.num_attention_heads)
        bundle = rank_bundle(cpus_per_rank, gpus_per_rank)
        owns = placement is None
        if owns:
            placement = reserve_placement(world_size, bundle, timeout_s)
        followers = start_ranks(
            placement, range(1, world_size), world_size, engine.model, bundle, engine_options
        )
        leader = cls(engine, followers, placement, owns, timeout_s)
        leader.rendezvous = Rendezvous.create()
        joins = [follower.join.remote(leader.rendezvous, timeout_s) for follower in followers]
        try:
            join_process_group(0, world_size, leader.rendezvous, timeout_s)
        except Exception as error:  # a follower never came: the store's wait timed out
            leader.close()
            raise GroupFailed(f"rendezvous: rank 0 could not join the group: {error}") from error
        leader._wait(joins, "rendezvous")
        split_engine(engine, world_size)
        return leader

    def generate(
        self, params: GenerationParams, on_step: Callable[[int, int], None] | None = None
    ) -> tuple[np.ndarray, dict[str, float]]:
        calls = [follower.run.remote(None) for follower in self.followers]
        try:
            result = lead(self.engine, params, on_step)
        except JobStopped:
            self._wait(calls, "generate")
            raise
        except Exception as error:  # followers may wait in a collective that will not finish
            self.close()
            raise GroupFailed(f"generate: rank 0 failed: {error}") from error
        self._wait(calls, "generate")
        return result

    def _leave_process_group(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()
