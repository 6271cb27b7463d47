"""Invalid configs: every rule reports the key, the value and the limit, all problems at once."""

from __future__ import annotations

import pytest

from infra import config, render
from infra.render import run_stack

from .conftest import SETTINGS


def problems(stack: str, **overrides: object) -> dict[str, config.ConfigProblem]:
    values = render.with_overrides(render.stack_config(stack), {**SETTINGS[stack], **overrides})
    with pytest.raises(config.InvalidConfig) as raised:
        config.load(values.get)
    return {problem.key: problem for problem in raised.value.problems}


def test_shipped_stacks_are_valid_once_their_required_values_are_set():
    for stack in ("dev", "prod"):
        values = render.with_overrides(render.stack_config(stack), SETTINGS[stack])
        config.load(values.get, values)


def test_invalid_config_fails_before_any_resource_is_registered():
    with pytest.raises(config.InvalidConfig):
        run_stack("dev", **{"mochi:namespace": "Bad_Name"})


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("mochi:namespace", "Mochi_Dev", "must be a DNS label"),
        ("mochi:apiImage", "mochi-api:latest", "must be pinned"),
        ("mochi:workerImage", "rayproject/ray", "must be pinned"),
        ("mochi:apiImage", "REGISTRY/mochi-api:0.1.0", "repository path 'REGISTRY/mochi-api'"),
        ("mochi:workerImage", "ghcr.io/acme/worker:v1 2", "tag 'v1 2' must be 1-128"),
        ("mochi:redisImage", "redis:7.2@sha256:xyz", "digest 'sha256:xyz' must be"),
        ("mochi:sharedStorageClass", "RWX_CLASS", "must be a StorageClass name"),
        ("mochi:storageClass", "Fast SSD", "must be a StorageClass name"),
        ("mochi:bootstrapAccount", "a:b", "must be a DNS label"),
        ("mochi:ingressHost", "Not A Host", "must be a DNS name"),
        ("mochi:rayMode", "operator", "must be one of kuberay, plain"),
        ("mochi:outputAccessMode", "ReadOnlyMany", "must be one of"),
        ("mochi:prefillModelCache", True, "needs mochi:modelCacheStorage"),
        ("mochi:apiReplicas", 0, "must be at least 1"),
        ("mochi:apiMemory", "lots", "is not a Kubernetes quantity"),
        ("mochi:apiCpu", "fast", "is not a CPU quantity"),
        ("mochi:apiReplicas", "two", "is not a valid int"),
    ],
)
def test_each_name_and_type_rule(key, value, expected):
    found = problems("dev", **{key: value})
    assert expected in found[key].message
    assert found[key].value in (value, str(value))


def test_worker_memory_below_the_memory_model_footprint_names_key_value_and_limit():
    # The field report's first worker (32 Gi limit, 16 GB object store), with prod's two
    # pipelines per pod (2 GPUs, 1 per pipeline).
    found = problems(
        "prod",
        **{
            "mochi:rayWorkerMemory": "32Gi",
            "mochi:rayObjectStoreMemory": "16G",
            "mochi:rayShmSize": "16G",
        },
    )
    problem = found["mochi:rayWorkerMemory"]
    assert problem.value == "32Gi"
    assert "host footprint 76.9 GiB" in problem.message and "OOM" in problem.message
    assert "2 pipeline(s) of genmo/mochi-1-preview" in problem.message
    assert str(problem).startswith("mochi:rayWorkerMemory = '32Gi': ")


def test_object_store_must_fit_shm_and_shm_the_limit():
    found = problems("dev", **{"mochi:rayObjectStoreMemory": "1Gi", "mochi:rayShmSize": "512Mi"})
    assert "exceeds /dev/shm" in found["mochi:rayObjectStoreMemory"].message
    found = problems("dev", **{"mochi:rayShmSize": "8Gi"})
    assert "exceeds the worker memory limit" in found["mochi:rayShmSize"].message


def test_head_memory_holds_its_object_store():
    found = problems("dev", **{"mochi:rayHeadMemory": "2Gi"})
    assert "object store + overhead (3.5 GiB)" in found["mochi:rayHeadMemory"].message


def test_gpus_per_worker_cannot_exceed_a_node():
    found = problems("prod", **{"mochi:gpusPerWorker": 10, "mochi:quotaGpus": 20})
    assert "exceeds the GPUs of one node (mochi:gpusPerNode = 8)" in (
        found["mochi:gpusPerWorker"].message
    )


def test_worker_memory_counts_every_pipeline_of_the_pod():
    # 48 Gi held one pipeline; with a pipeline on each of the pod's 2 GPUs it needs 70 GiB.
    found = problems("prod", **{"mochi:rayWorkerMemory": "48Gi"})
    assert "host footprint 70.0 GiB" in found["mochi:rayWorkerMemory"].message
    # One pipeline on both GPUs: 48 Gi is enough again (and the quota too).
    one_pipeline = {**SETTINGS["prod"], "mochi:rayWorkerMemory": "48Gi", "mochi:gpusPerPipeline": 2}
    config.load(render.with_overrides(render.stack_config("prod"), one_pipeline).get)


def test_gpus_per_pipeline_must_divide_gpus_per_worker():
    found = problems("prod", **{"mochi:gpusPerPipeline": 3})
    problem = found["mochi:gpusPerPipeline"]
    assert problem.value == 3
    assert "does not divide mochi:gpusPerWorker = 2" in problem.message
    assert "2 GPU(s) per pod would sit idle" in problem.message
    found = problems("prod", **{"mochi:gpusPerPipeline": 0})
    assert "must be at least 1" in found["mochi:gpusPerPipeline"].message


def test_largest_admitted_job_must_fit_the_gpu():
    found = problems("prod", **{"mochi:gpuMemoryGib": 24})
    message = found["mochi:gpuMemoryGib"].message
    assert "163 frames at 848x848" in message and "does not fit" in message
    assert found["mochi:gpuMemoryGib"].value == 24


def test_full_model_needs_gpus_and_gpu_workers_need_a_node_selector():
    found = problems("dev", **{"mochi:model": "genmo/mochi-1-preview"})
    assert "needs a GPU" in found["mochi:gpusPerWorker"].message
    found = problems("prod", **{"mochi:gpuNodeSelector": ""})
    assert "must select the GPU nodes" in found["mochi:gpuNodeSelector"].message


def test_quota_counts_every_pod_and_the_rollout_surge():
    # The field report's 128 Gi quota: prod needs 192.5 GiB at the worst moment of a rollout.
    found = problems("prod", **{"mochi:quotaRequestsMemory": "128Gi"})
    message = found["mochi:quotaRequestsMemory"].message
    assert "192.5 GiB" in message and "api 4x2Gi" in message and "surge" in message
    assert "ray-worker 2x80Gi" in message
    found = problems(
        "prod", **{"mochi:quotaGpus": 2, "mochi:quotaPods": 9, "mochi:quotaRequestsCpu": "40"}
    )
    assert "(4)" in found["mochi:quotaGpus"].message
    assert "number of pods (10)" in found["mochi:quotaPods"].message
    assert "CPU requests 42.25" in found["mochi:quotaRequestsCpu"].message
    found = problems("prod", **{"mochi:quotaStorage": "100Gi"})
    assert "620 GiB" in found["mochi:quotaStorage"].message


def test_all_problems_are_reported_at_once():
    found = problems(
        "dev",
        **{
            "mochi:namespace": "UPPER",
            "mochi:redisImage": "redis",
            "mochi:rayWorkerMemory": "1Gi",
            "mochi:quotaPods": 1,
        },
    )
    assert {
        "mochi:namespace",
        "mochi:redisImage",
        "mochi:rayWorkerMemory",
        "mochi:quotaPods",
    } <= set(found)


def test_pulumi_yaml_declares_every_config_field():
    values = render.stack_config("dev")
    for field_name in config.StackConfig.__dataclass_fields__:
        assert config.config_key(field_name) in values
