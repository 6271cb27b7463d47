"""gpusPerJob (one job across N ranks of one pod) and ditPrecision: rendered into the settings
ConfigMap as the service reads them, and every rule they must pass, naming the key and the limit."""

from __future__ import annotations

from collections import defaultdict

import pytest

from infra import config, naming, render
from infra.manifests import one
from service.config import Settings

from .conftest import SETTINGS


def settings_data(stack: str, **overrides: object) -> dict[str, str]:
    registrations = render.run_stack(stack, **{**SETTINGS[stack], **overrides})
    return one(render.kubernetes_objects(registrations), "ConfigMap", naming.SETTINGS_CONFIG_MAP)[
        "data"
    ]


def service_settings(data: dict[str, str]) -> Settings:
    return Settings.from_env(
        {key: value for key, value in data.items() if key.startswith("MOCHI_")}
    )


def load(stack: str, **overrides: object) -> config.StackConfig:
    values = render.with_overrides(render.stack_config(stack), {**SETTINGS[stack], **overrides})
    return config.load(values.get, values)


def messages(stack: str, **overrides: object) -> dict[str, list[str]]:
    """Every problem's message, by key (a key may break several rules at once)."""
    with pytest.raises(config.InvalidConfig) as raised:
        load(stack, **overrides)
    found = defaultdict(list)
    for problem in raised.value.problems:
        found[problem.key].append(str(problem))
    return found


def test_shipped_stacks_run_one_rank_per_job_in_bf16():
    for stack in render.STACKS:
        settings = service_settings(settings_data(stack))
        assert (settings.gpus_per_job, settings.dit_precision) == (1, "bf16")


def test_prod_with_two_ranks_per_job_halves_the_groups_and_keeps_each_actor_on_one_gpu():
    data = settings_data("prod", **{"mochi:gpusPerJob": 2})
    assert data["MOCHI_GPUS_PER_JOB"] == "2"
    # 2 pods x 2 actors = 4 actors, in groups of 2: 2 workers, each actor on one GPU.
    assert (data["MOCHI_WORKERS"], data["MOCHI_GPUS_PER_WORKER"]) == ("2", "1")
    assert data["MOCHI_WORKER_HOST_MEMORY_GIB"] == "40"  # still one actor's share of 80 Gi
    settings = service_settings(data)
    assert (settings.workers, settings.gpus_per_job) == (2, 2)


def test_fp8_reaches_the_configmap():
    data = settings_data("prod", **{"mochi:ditPrecision": "fp8"})
    assert data["MOCHI_DIT_PRECISION"] == "fp8"
    assert service_settings(data).dit_precision == "fp8"


def test_tiny_model_runs_a_jobs_ranks_on_the_actors_of_one_cpu_pod():
    data = settings_data("dev", **{"mochi:gpusPerJob": 2})
    assert (data["MOCHI_WORKERS"], data["MOCHI_GPUS_PER_JOB"]) == ("1", "2")
    assert data["MOCHI_WORKER_HOST_MEMORY_GIB"] == "2"  # 4 Gi between the pod's 2 ranks


def test_ranks_per_job_must_be_at_least_one():
    (message,) = messages("prod", **{"mochi:gpusPerJob": 0})["mochi:gpusPerJob"]
    assert message.startswith("mochi:gpusPerJob = 0: must be at least 1")


def test_ranks_per_job_must_divide_the_attention_heads():
    found = messages("prod", **{"mochi:gpusPerJob": 5, "mochi:gpusPerWorker": 5})
    (message,) = found["mochi:gpusPerJob"]
    assert "does not divide the 24 attention heads of genmo/mochi-1-preview's" in message
    assert "use one of 1, 2, 3, 4, 6, 8, 12, 24" in message
    # The tiny model's own transformer has 2 heads.
    (message,) = messages("dev", **{"mochi:gpusPerJob": 3, "mochi:rayWorkerCpu": "4"})[
        "mochi:gpusPerJob"
    ]
    assert "does not divide the 2 attention heads of tiny's transformer" in message


def test_ranks_per_job_must_divide_the_actors_of_a_pod():
    (message,) = messages("prod", **{"mochi:gpusPerJob": 4})["mochi:gpusPerJob"]
    assert message.startswith("mochi:gpusPerJob = 4: does not divide the 2 actors of a worker pod")
    assert "(mochi:gpusPerWorker = 2 / mochi:gpusPerPipeline = 1)" in message
    assert "2 actor(s) per pod would sit idle" in message


def test_a_jobs_ranks_must_fit_one_node():
    found = messages(
        "prod",
        **{
            "mochi:gpusPerWorker": 16,
            "mochi:gpusPerPipeline": 2,
            "mochi:gpusPerJob": 8,
            "mochi:quotaGpus": 64,
        },
    )
    (message,) = found["mochi:gpusPerJob"]
    assert "places 8 ranks x mochi:gpusPerPipeline = 2 = 16 GPUs on one node" in message
    assert "above mochi:gpusPerNode = 8" in message


def test_several_ranks_need_gpu_workers_unless_the_model_is_tiny():
    found = messages("dev", **{"mochi:model": "genmo/mochi-1-preview", "mochi:gpusPerJob": 2})
    (message,) = found["mochi:gpusPerJob"]
    assert "needs GPU workers (mochi:gpusPerWorker = 0) for model 'genmo/mochi-1-preview'" in (
        message
    )
    assert load("dev", **{"mochi:gpusPerJob": 2}).pool_workers == 1


def test_each_rank_of_a_pod_needs_a_cpu():
    found = messages("dev", **{"mochi:gpusPerJob": 2, "mochi:rayWorkerCpu": "1"})
    (message,) = found["mochi:rayWorkerCpu"]
    assert "gives Ray 1 CPU(s) (ray start --num-cpus), fewer than the pod's 2 actors" in message
    (message,) = messages("prod", **{"mochi:rayWorkerCpu": "1500m"})["mochi:rayWorkerCpu"]
    assert "fewer than the pod's 2 actors" in message


def test_dit_precision_is_bf16_or_fp8_and_fp8_needs_gpu_workers():
    (message,) = messages("prod", **{"mochi:ditPrecision": "int8"})["mochi:ditPrecision"]
    assert message == "mochi:ditPrecision = 'int8': must be one of bf16, fp8"
    (message,) = messages("dev", **{"mochi:ditPrecision": "fp8"})["mochi:ditPrecision"]
    assert "fp8 needs GPU workers (mochi:gpusPerWorker = 0)" in message
    assert load("prod", **{"mochi:ditPrecision": "fp8"}).dit_precision == "fp8"


def test_largest_job_is_checked_per_rank_with_rank_0_decoding():
    found = messages("prod", **{"mochi:gpuMemoryGib": 24, "mochi:gpusPerJob": 2})
    (message,) = found["mochi:gpuMemoryGib"]
    assert "does not fit one GPU per rank (mochi:gpusPerJob = 2)" in message
    assert "per GPU of 2 (rank 0 decodes)" in message


def test_fp8_fits_the_largest_job_on_a_gpu_where_bf16_does_not():
    # Offloaded, the DiT forward sets the peak: 18.7 GiB of bf16 weights, 9.3 GiB in fp8.
    (message,) = messages("prod", **{"mochi:gpuMemoryGib": 36})["mochi:gpuMemoryGib"]
    assert "cpu offload, tiled VAE decode: predicted peak 33.7 GiB, does not fit in 33.4" in message
    assert load("prod", **{"mochi:gpuMemoryGib": 36, "mochi:ditPrecision": "fp8"})


def test_host_memory_counts_every_rank_as_a_pipeline():
    found = messages("prod", **{"mochi:gpusPerJob": 2, "mochi:rayWorkerMemory": "48Gi"})
    (message,) = found["mochi:rayWorkerMemory"]
    assert "host footprint 70.0 GiB" in message and "2 pipeline(s)" in message
