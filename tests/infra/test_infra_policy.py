"""The policy pack's validators, called directly on rendered and on broken objects."""

from __future__ import annotations

import copy

import pytest

from infra import naming
from infra.manifests import one
from infra.render import STACKS
from policy import rules


@pytest.mark.parametrize("stack", STACKS)
def test_rendered_stacks_pass_every_rule(objects, stack):
    for obj in objects[stack]:
        for name, (_, check) in rules.RULES.items():
            assert check(obj) == [], (name, obj["kind"], obj["metadata"]["name"])


@pytest.fixture()
def api(objects) -> dict:
    return copy.deepcopy(one(objects["dev"], "Deployment", naming.API))


@pytest.fixture()
def cluster(objects) -> dict:
    return copy.deepcopy(one(objects["prod"], "RayCluster", naming.RAY_CLUSTER))


def _container(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]["containers"][0]


def test_unpinned_image(api):
    _container(api)["image"] = "mochi-api:latest"
    assert "not pinned" in rules.image_pinned(api)[0]
    _container(api)["image"] = "mochi-api"
    assert rules.image_pinned(api)


def test_security_context(api):
    context = _container(api)["securityContext"]
    context["allowPrivilegeEscalation"] = True
    context["capabilities"] = {"drop": []}
    del context["seccompProfile"]
    api["spec"]["template"]["spec"]["securityContext"] = {}
    context["runAsNonRoot"] = False
    found = " ".join(rules.security_context(api))
    for expected in ("non-root", "allowPrivilegeEscalation", "drop ALL", "RuntimeDefault"):
        assert expected in found


def test_resources_must_be_set(api):
    del _container(api)["resources"]["limits"]
    assert len(rules.resources_set(api)) == 2


def test_gpu_limit_must_equal_request(cluster):
    worker = cluster["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    worker["resources"]["requests"]["nvidia.com/gpu"] = "1"
    assert "GPU request != limit" in rules.resources_set(cluster)[0]


def test_ip_literals_in_config_map_and_env(objects, api):
    settings = copy.deepcopy(one(objects["dev"], "ConfigMap", naming.SETTINGS_CONFIG_MAP))
    settings["data"]["MOCHI_RAY_DASHBOARD_URL"] = "http://192.168.0.35:8265"
    assert "192.168.0.35" in rules.no_ip_literals(settings)[0]
    _container(api)["env"].append({"name": "RAY_ADDRESS", "value": "ray://10.0.0.7:10001"})
    assert rules.no_ip_literals(api)
    _container(api)["env"][-1]["value"] = "0.0.0.0"
    assert rules.no_ip_literals(api) == []


def _plain_worker(command: list[str], memory: str, shm: str) -> dict:
    return {
        "kind": "Deployment",
        "metadata": {"name": "ray-worker"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "ray-worker",
                            "image": "rayproject/ray:2.60.0-py311-gpu",
                            "command": command,
                            "resources": {
                                "limits": {"memory": memory, "nvidia.com/gpu": "2"},
                            },
                            "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
                        }
                    ],
                    "volumes": [
                        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm}}
                    ],
                }
            }
        },
    }


def test_the_field_reports_ray_worker_fails_memory_and_flag_rules():
    worker = _plain_worker(
        [
            "ray",
            "start",
            "--address=ray-head-service:6380",
            "--ray-client-server-host=0.0.0.0",
            f"--object-store-memory={16 * 10**9}",
            "--block",
        ],
        memory="32Gi",
        shm="8Gi",
    )
    assert "is not a ray start option" in rules.ray_start_flags(worker)[0]
    found = " ".join(rules.ray_worker_memory(worker))
    assert "object store 14.9 GiB > /dev/shm 8.0 GiB" in found
    assert "memory limit 32Gi < host footprint 47.4 GiB" in found


def test_worker_memory_counts_the_pipelines_the_settings_give_each_pod(objects, cluster):
    config_maps = rules.config_map_data(objects["prod"])
    worker = cluster["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert rules.pipelines_per_pod(worker, config_maps) == 2  # 2 GPUs / MOCHI_GPUS_PER_WORKER=1
    assert rules.pipelines_per_pod(worker) == 1  # the setting out of sight
    assert rules.ray_worker_memory(cluster, config_maps) == []
    worker["resources"]["limits"]["memory"] = worker["resources"]["requests"]["memory"] = "48Gi"
    assert rules.ray_worker_memory(cluster) == []  # one pipeline would fit...
    (found,) = rules.ray_worker_memory(cluster, config_maps)  # ...two do not
    assert "memory limit 48Gi < host footprint 70.0 GiB (2 pipeline(s)" in found
    worker["env"] = [{"name": "MOCHI_GPUS_PER_WORKER", "value": "2"}]  # env wins over envFrom
    assert rules.ray_worker_memory(cluster, config_maps) == []


def test_object_store_must_be_explicit(cluster):
    del cluster["spec"]["workerGroupSpecs"][0]["rayStartParams"]["object-store-memory"]
    assert "--object-store-memory not set" in rules.ray_worker_memory(cluster)[0]


def test_ray_ports_stay_inside_the_cluster(objects):
    service = copy.deepcopy(one(objects["dev"], "Service", naming.RAY_HEAD))
    assert rules.ray_ports_internal(service) == []
    service["spec"]["type"] = "LoadBalancer"
    assert len(rules.ray_ports_internal(service)) == 3


def test_policy_pack_wraps_every_rule(monkeypatch):
    import pulumi_policy

    captured = {}
    monkeypatch.setattr(
        pulumi_policy, "PolicyPack", lambda **kwargs: captured.update(kwargs) or None
    )
    import importlib
    import sys

    sys.modules.pop("policy.__main__", None)
    importlib.import_module("policy.__main__")
    policies = {policy.name: policy for policy in captured["policies"]}
    assert set(policies) == set(rules.RULES)
    violations = []

    class Args:
        resource_type = "kubernetes:apps/v1:Deployment"
        props = _plain_worker(["ray", "start", "--ray-client-server-host=x"], "8Gi", "1Gi")

    policies["ray-start-flags"].validate(Args(), violations.append)
    assert violations and "ray-client-server-host" in violations[0]


def test_policy_pack_checks_ray_memory_against_the_whole_stack(monkeypatch, objects):
    import importlib
    import sys

    import pulumi_policy

    captured = {}
    monkeypatch.setattr(
        pulumi_policy, "PolicyPack", lambda **kwargs: captured.update(kwargs) or None
    )
    sys.modules.pop("policy.__main__", None)
    importlib.import_module("policy.__main__")
    policy = {p.name: p for p in captured["policies"]}["ray-worker-memory"]
    assert isinstance(policy, pulumi_policy.StackValidationPolicy)

    class Resource:
        def __init__(self, obj):
            self.resource_type = f"kubernetes:{obj['apiVersion']}:{obj['kind']}"
            self.props, self.urn = obj, f"urn:{obj['kind']}:{obj['metadata']['name']}"

    class Args:
        resources = [Resource(obj) for obj in objects["prod"]]

    violations = []
    policy.validate(Args(), lambda message, urn=None: violations.append((message, urn)))
    assert violations == []
    broken = copy.deepcopy(objects["prod"])
    cluster = one(broken, "RayCluster", naming.RAY_CLUSTER)
    worker = cluster["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    worker["resources"]["limits"]["memory"] = "48Gi"
    Args.resources = [Resource(obj) for obj in broken]
    policy.validate(Args(), lambda message, urn=None: violations.append((message, urn)))
    ((message, urn),) = violations
    assert "2 pipeline(s)" in message and urn == f"urn:RayCluster:{naming.RAY_CLUSTER}"
