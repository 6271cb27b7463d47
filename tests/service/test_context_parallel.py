"""One job across ranks: real Ray actors in a placement group, a real gloo process group.

Tolerance: float32 on the CPU. Splitting changes only the order in which attention sums over keys
(each rank's keys come back in rank order), so each layer differs by rounding, about 1e-7
relative. 1e-4 on frames in [0, 1] leaves room for that to grow over layers and steps and is
still 1/40 of one 8-bit level. The mistake this catches is gross: with the plan but Mochi's own
processor (attention confined to a rank's share) the layer test's outputs move by 9.2 of 20.7.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pytest
import ray
import torch
from ray._private import state as ray_state

from service.config import Settings
from service.generation import GenerationEngine, JobStopped
from service.jobstore import JobStore
from service.local_stack import LocalStack
from service.parallel.group import (
    CFG_SPLIT,
    SEQUENCE_SPLIT,
    GroupFailed,
    GroupLeader,
    WorkerGroup,
    join_process_group,
    split_for,
)
from service.parallel.mochi_plan import ParallelismRefused, enable_context_parallel
from service.parallel.rendezvous import (
    SOCKET_INTERFACE_VARIABLES,
    Rendezvous,
    bind_to_loopback,
    remove_on_node,
)
from service.polling import wait_until
from service.processes import free_port
from service.tiny_model import build_transformer
from service.video import count_frames
from service.worker import GenerationWorker
from tests.service.listening import ports, wide_ports
from tests.service.tiny_jobs import FOX_JOB as JOB

FRAME_TOLERANCE = 1e-4
ENDED = ("succeeded", "failed", "canceled")
WORKER_JOB = {
    "prompt": "a fox",
    "num_frames": 13,
    "height": 80,
    "width": 112,
    "num_inference_steps": 4,
}


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray cluster for this module, token-authenticated with a token of its own (so
    that nothing is written to ~/.ray), in its own short temp folder."""
    temp_dir = tempfile.mkdtemp(prefix="mochi-ray-", dir="/tmp")
    with pytest.MonkeyPatch.context() as env:
        env.delenv("RAY_AUTH_MODE", raising=False)
        env.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
        ray.init(
            address="local",
            num_cpus=4,
            include_dashboard=False,
            log_to_driver=False,
            _temp_dir=temp_dir,
        )
        yield
        ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def two_ranks(local_ray):
    """Shared by the tests below; the last one kills a rank, which closes it."""
    group = WorkerGroup.start(2, "tiny", timeout_s=120)
    yield group
    group.close()


@pytest.mark.parametrize("guidance_scale", [4.5, 0.0], ids=["cfg-split", "sequence-split"])
def test_two_ranks_give_the_frames_of_one(two_ranks, guidance_scale):
    """With guidance on, each rank runs one element of the CFG batch; with guidance off (a batch
    of one) the ranks split the sequence."""
    job = JOB.model_copy(update={"guidance_scale": guidance_scale})
    one_rank, _ = GenerationEngine.load("tiny").generate(job)
    split, metrics = two_ranks.generate(job)
    deviation = float(np.abs(split - one_rank).max())
    print(f"2 ranks vs 1: max abs frame deviation {deviation:.3e} (tolerance {FRAME_TOLERANCE})")
    assert split.shape == one_rank.shape == (13, 80, 112, 3)
    assert one_rank.std() > 0.01
    assert deviation <= FRAME_TOLERANCE
    assert metrics["mean_step_seconds"] > 0


def test_the_split_follows_the_job():
    cfg, plain = JOB, JOB.model_copy(update={"guidance_scale": 1.0})
    assert [split_for(cfg, 2), split_for(plain, 2)] == [CFG_SPLIT, SEQUENCE_SPLIT]
    assert [split_for(cfg, 4), split_for(cfg, 1)] == [SEQUENCE_SPLIT, None]


def _random_transformer() -> torch.nn.Module:
    """The tiny transformer with every weight drawn, RoPE frequencies included (zero when
    built), so that a wrong split of any input shows."""
    torch.manual_seed(0)
    transformer = build_transformer().eval()
    with torch.no_grad():
        for parameter in transformer.parameters():
            parameter.normal_(0, 0.3)
    return transformer


def _transformer_inputs():
    generator = torch.Generator().manual_seed(1)
    latents = torch.randn(2, 12, 3, 10, 14, generator=generator)
    text = torch.randn(2, 32, 32, generator=generator)
    mask = torch.zeros(2, 32, dtype=torch.long)
    mask[0, :20], mask[1, :1] = 1, 1  # the prompt spans both ranks' text shares
    return latents, text, torch.tensor([500, 500]), mask


@ray.remote(num_cpus=1)
class _TransformerRank:
    def rendezvous(self) -> Rendezvous:
        return Rendezvous.create()

    def forward(self, rank: int, world_size: int, rendezvous: Rendezvous) -> np.ndarray:
        join_process_group(rank, world_size, rendezvous, timeout_s=60)
        transformer = _random_transformer()
        enable_context_parallel(transformer, torch.device("cpu"))
        with torch.no_grad():
            return transformer(*_transformer_inputs(), return_dict=False)[0].numpy()


def test_the_plan_splits_every_input_of_the_transformer_right(local_ray):
    with torch.no_grad():
        whole = _random_transformer()(*_transformer_inputs(), return_dict=False)[0].numpy()
    ranks = [_TransformerRank.remote() for _ in range(2)]
    rendezvous = ray.get(ranks[0].rendezvous.remote(), timeout=60)
    calls = [r.forward.remote(i, 2, rendezvous) for i, r in enumerate(ranks)]
    outputs = ray.get(calls, timeout=120)
    scale = float(np.abs(whole).max())
    for rank, output in enumerate(outputs):
        deviation = float(np.abs(output - whole).max())
        print(f"rank {rank}: max abs deviation {deviation:.3e} of outputs up to {scale:.1f}")
        assert deviation <= 1e-5 * scale
    for rank in ranks:
        ray.kill(rank)
    rendezvous.remove()


def test_a_stop_on_rank_0_stops_every_rank_and_the_group_serves_on(two_ranks):
    def stop_at_second_step(step: int, total: int) -> None:
        if step == 2:
            raise JobStopped("canceled")

    with pytest.raises(JobStopped, match="canceled"):
        two_ranks.generate(JOB, on_step=stop_at_second_step)
    frames, _ = two_ranks.generate(JOB.model_copy(update={"num_inference_steps": 2}))
    assert frames.shape == (13, 80, 112, 3)


def test_a_world_size_not_dividing_the_heads_is_refused(local_ray):
    with pytest.raises(ParallelismRefused, match="gpus per job 3 .* 2 attention heads"):
        WorkerGroup.start(3, "tiny")


def test_the_ranks_meet_in_a_private_directory_and_listen_on_loopback_only(two_ranks):
    directory = Path(two_ranks.rendezvous.directory)
    assert directory.stat().st_mode & 0o777 == 0o700
    assert_only_ray_listens_beyond_loopback(two_ranks.ranks)


def test_a_killed_rank_fails_the_call_within_a_bound(two_ranks):
    group = two_ranks
    survivor, victim = group.ranks
    directory = Path(group.rendezvous.directory)

    def kill_rank_1(step: int, total: int) -> None:
        if step == 1:
            ray.kill(victim)

    started = time.monotonic()
    with pytest.raises(GroupFailed, match="generate: rank [01] failed"):
        group.generate(JOB.model_copy(update={"num_inference_steps": 50}), on_step=kill_rank_1)
    elapsed = time.monotonic() - started
    print(f"a killed rank failed the call after {elapsed:.1f} s")
    assert elapsed < group.timeout_s
    assert group.ranks == []
    assert not directory.exists()
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(survivor.rendezvous.remote(), timeout=30)


# --- the rendezvous: no socket beyond loopback, nothing left behind ---------------------------


def assert_only_ray_listens_beyond_loopback(ranks: list) -> None:
    """A rank actor's process listens beyond loopback on Ray's own port alone (its core
    worker's, which every actor has), and its interface variables name loopback."""
    for rank in ranks:
        actor = ray_state.actors(rank._actor_id.hex())
        assert wide_ports(actor["Pid"]) <= {actor["Address"]["Port"]}, actor["Pid"]
        environ = ray.get(rank.__ray_call__.remote(lambda _: dict(os.environ)), timeout=30)
        assert {name: environ.get(name) for name in SOCKET_INTERFACE_VARIABLES} == {
            name: os.environ.get(name, "lo") for name in SOCKET_INTERFACE_VARIABLES
        }


def test_a_leader_in_this_process_listens_on_loopback_only_and_leaves_nothing(local_ray):
    wide_before, before = wide_ports(os.getpid()), ports(os.getpid())
    leader = GroupLeader.start(GenerationEngine.load("tiny"), 2, timeout_s=120)
    try:
        directory = Path(leader.rendezvous.directory)
        assert directory.stat().st_mode & 0o777 == 0o700
        assert wide_ports(os.getpid()) <= wide_before
        assert_only_ray_listens_beyond_loopback(leader.followers)
    finally:
        leader.close()
    assert not directory.exists()
    assert ports(os.getpid()) <= before


def test_each_formation_has_a_directory_of_its_own(local_ray):
    first, second = Rendezvous.create(), Rendezvous.create()
    try:
        assert first.directory != second.directory
        assert first.init_method == f"file://{first.directory}/store"
    finally:
        first.remove()
        second.remove()
    assert not Path(first.directory).exists() and not Path(second.directory).exists()


def test_a_directory_is_removed_by_a_task_pinned_to_its_node(local_ray):
    directory = Path(tempfile.mkdtemp(prefix="mochi-rendezvous-"))
    (directory / "store").write_text("")
    remove_on_node(ray.get_runtime_context().get_node_id(), str(directory))
    assert not directory.exists()


def test_ranks_bind_to_loopback_unless_the_operator_named_an_interface():
    environ = {"NCCL_SOCKET_IFNAME": "ib0"}
    bind_to_loopback(environ)
    assert environ == {"GLOO_SOCKET_IFNAME": "lo", "NCCL_SOCKET_IFNAME": "ib0"}


# --- a pool worker leading a group: rank 0 in this process ------------------------------------


@pytest.fixture
def leader_settings(settings):
    return replace(settings, gpus_per_job=2, lease_seconds=5.0)


def test_a_leader_in_this_process_gives_the_frames_of_one_rank(local_ray):
    """Rank 0's second block (the first receives the whole and splits it) sees one CFG element
    (guidance on) or its share of the video tokens."""
    engine = GenerationEngine.load("tiny")
    seen = []
    engine.pipeline.transformer.transformer_blocks[1].register_forward_pre_hook(
        lambda block, args, kwargs: seen.append(tuple(kwargs["hidden_states"].shape[:2])),
        with_kwargs=True,
    )
    plain = JOB.model_copy(update={"guidance_scale": 0.0})
    one_rank = [engine.generate(job)[0] for job in (JOB, plain)]
    whole = seen[0]
    leader = GroupLeader.start(engine, 2, timeout_s=120)
    try:
        seen.clear()
        split = [leader.generate(job)[0] for job in (JOB, plain)]
    finally:
        leader.close()
    for frames, expected in zip(split, one_rank, strict=True):
        assert float(np.abs(frames - expected).max()) <= FRAME_TOLERANCE
    steps = JOB.num_inference_steps
    assert seen[:steps] == [(1, whole[1])] * steps  # one CFG element, every video token
    assert seen[steps:] == [(1, (whole[1] + 1) // 2)] * steps  # 105 video tokens: 53 on rank 0
    assert not torch.distributed.is_initialized()


def test_a_worker_leading_two_ranks_runs_jobs_and_shows_its_group(local_ray, leader_settings):
    worker = GenerationWorker(leader_settings)
    try:
        job_id = worker.store.create("acct", WORKER_JOB)[0]["id"]
        assert worker.serve(max_jobs=1) == 1
        job = worker.store.get(job_id)
        assert job["status"] == "succeeded" and job["attempts"] == 1
        assert count_frames(Path(leader_settings.output_dir) / job["video"]) == 13
        info = worker.store.live_workers(60)[worker.worker_id]
        assert (info["gpus_per_job"], info["group_error"]) == (2, "")
        assert worker.group is not None and worker.group.world_size == 2
    finally:
        worker.close()
        if worker.group is not None:
            worker.group.close()


def test_a_dead_rank_gives_the_job_back_and_the_group_forms_again(local_ray, leader_settings):
    worker = GenerationWorker(leader_settings)
    try:
        job_id = worker.store.create("acct", {**WORKER_JOB, "num_inference_steps": 40})[0]["id"]
        observer = JobStore(worker.store.redis)
        serving = threading.Thread(target=worker.serve, kwargs={"max_jobs": 2})
        serving.start()
        assert wait_until(lambda: (observer.get(job_id)["step"] or 0) >= 2, timeout=120)
        ray.kill(worker.group.followers[0])
        serving.join(timeout=300)
        job = observer.get(job_id)
        assert job["status"] == "succeeded" and job["attempts"] == 2, job
        assert worker.group is not None and worker.group_error == ""
    finally:
        worker.close()
        if worker.group is not None:
            worker.group.close()


def test_the_embedded_stack_runs_a_job_on_a_group_of_two(tmp_path):
    """The pool's path: a placement group per group, its actor in bundle 0 starting rank 1."""
    settings = replace(Settings(), workers=1, gpus_per_job=2, lease_seconds=5.0)
    local = LocalStack(base_dir=tmp_path / "stack", api_port=free_port(), settings=settings)
    local.start(progress=lambda line: None)
    try:
        headers = {"Authorization": f"Bearer {local.api_key}"}
        with httpx.Client(base_url=local.api_url, headers=headers, timeout=30) as http:
            job_id = http.post("/v1/jobs", json=WORKER_JOB).json()["id"]

            def ended() -> bool:
                return http.get(f"/v1/jobs/{job_id}").json()["status"] in ENDED

            assert wait_until(ended, timeout=180, interval=0.2)
            job = http.get(f"/v1/jobs/{job_id}").json()
            assert job["status"] == "succeeded", job
            [worker] = local.store().live_workers(60).values()
            assert (worker["gpus_per_job"], worker["group_error"]) == (2, "")
    finally:
        local.stop()
