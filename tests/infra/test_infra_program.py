"""The program under Pulumi's mocks: resources, wiring, secrets, and the offline render."""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlparse

import pytest
import yaml

from infra import naming, render
from infra.manifests import all_containers, find, one
from infra.render import STACKS, run_stack

from .conftest import PROD_SETTINGS, SETTINGS

EXPECTED_KINDS = {
    "dev": {
        "Namespace": 1, "ResourceQuota": 1, "LimitRange": 1, "Secret": 3, "ConfigMap": 1,
        "PersistentVolumeClaim": 1, "Service": 3, "StatefulSet": 1, "RayCluster": 1,
        "Deployment": 2, "PodDisruptionBudget": 1, "NetworkPolicy": 5,
    },
    "prod": {
        "Namespace": 1, "ResourceQuota": 1, "LimitRange": 1, "Secret": 3, "ConfigMap": 1,
        "PersistentVolumeClaim": 2, "Service": 3, "StatefulSet": 1, "RayCluster": 1,
        "Deployment": 2, "Job": 1, "PodDisruptionBudget": 1, "Ingress": 1, "NetworkPolicy": 5,
    },
}  # fmt: skip
COMPONENTS = {
    "Foundation", "Secrets", "Addresses", "Storage", "Redis", "Ray", "Supervisor", "Api",
    "NetworkPolicies",
}  # fmt: skip


@pytest.mark.parametrize("stack", STACKS)
def test_each_stack_registers_the_expected_objects(objects, registrations, stack):
    assert Counter(obj["kind"] for obj in objects[stack]) == EXPECTED_KINDS[stack]
    components = {
        r.type.split(":")[-1] for r in registrations[stack] if r.type.startswith("mochi:")
    }
    assert components >= COMPONENTS
    namespace = one(objects[stack], "Namespace", objects[stack][0]["metadata"]["name"])
    for obj in objects[stack]:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == namespace["metadata"]["name"]


def test_prod_installs_the_pinned_kuberay_chart_and_dev_does_not(registrations):
    releases = {stack: render.helm_releases(regs) for stack, regs in registrations.items()}
    assert releases["dev"] == []
    (release,) = releases["prod"]
    assert (release["chart"], release["version"]) == ("kuberay-operator", "1.7.0")


@pytest.mark.parametrize("stack", STACKS)
def test_configmap_addresses_resolve_to_services_the_program_made(objects, stack):
    data = one(objects[stack], "ConfigMap", naming.SETTINGS_CONFIG_MAP)["data"]
    services = {
        (svc["metadata"]["name"], svc["metadata"]["namespace"]): {
            p["port"] for p in svc["spec"]["ports"]
        }
        for svc in find(objects[stack], "Service")
    }
    addresses = [
        data["MOCHI_REDIS_URL"],
        data["MOCHI_RAY_DASHBOARD_URL"],
        "tcp://" + data["MOCHI_RAY_GCS_ADDRESS"],
    ]
    for address in addresses:
        url = urlparse(address)
        name, namespace, suffix = url.hostname.split(".", 2)
        assert suffix == "svc.cluster.local"
        assert url.port in services[(name, namespace)], address
    assert data["MOCHI_REDIS_URL"].startswith("redis://redis.")
    assert data["MOCHI_RAY_DASHBOARD_URL"].endswith(f":{naming.RAY_DASHBOARD_PORT}")


@pytest.mark.parametrize("stack", STACKS)
def test_service_selectors_match_pod_labels(objects, stack):
    pod_labels = [
        template["metadata"]["labels"] for obj in objects[stack] for template in _templates(obj)
    ]
    for svc in find(objects[stack], "Service"):
        selector = svc["spec"]["selector"].items()
        assert any(selector <= labels.items() for labels in pod_labels), svc["metadata"]["name"]


def _templates(obj):
    spec = obj.get("spec") or {}
    if obj["kind"] == "RayCluster":
        yield spec["headGroupSpec"]["template"]
        for group in spec["workerGroupSpecs"]:
            yield group["template"]
    elif "template" in spec:
        yield spec["template"]


@pytest.mark.parametrize("stack", STACKS)
def test_output_volume_is_mounted_at_the_configured_path(objects, stack):
    data = one(objects[stack], "ConfigMap", naming.SETTINGS_CONFIG_MAP)["data"]
    mounted_in = set()
    for where, pod, container in all_containers(objects[stack]):
        claims = {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in pod.get("volumes") or []
            if "persistentVolumeClaim" in v
        }
        for mount in container.get("volumeMounts") or []:
            if claims.get(mount["name"]) == naming.OUTPUT_PVC:
                assert mount["mountPath"] == data["MOCHI_OUTPUT_DIR"], where
                mounted_in.add(container["name"])
            if claims.get(mount["name"]) == naming.MODEL_CACHE_PVC:
                assert mount["mountPath"] == data["MOCHI_MODEL_CACHE_DIR"], where
        assert pod["securityContext"]["fsGroup"] == naming.GID
    assert {naming.API, naming.RAY_HEAD, naming.RAY_WORKER, naming.SUPERVISOR} <= mounted_in


def test_prod_output_volume_is_read_write_many(objects):
    claim = one(objects["prod"], "PersistentVolumeClaim", naming.OUTPUT_PVC)
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


@pytest.mark.parametrize("stack", STACKS)
def test_secrets_are_referenced_never_inlined(objects, stack):
    secret_values = {
        value
        for secret in find(objects[stack], "Secret")
        for value in secret["stringData"].values()
    }
    assert len(secret_values) == 3 and all(len(value) >= 40 for value in secret_values)
    secret_names = {secret["metadata"]["name"] for secret in find(objects[stack], "Secret")}
    for obj in objects[stack]:
        if obj["kind"] != "Secret":
            text = yaml.safe_dump(obj)
            assert not any(value in text for value in secret_values), obj["metadata"]["name"]
    referenced = set()
    for where, _, container in all_containers(objects[stack]):
        for env in container.get("env") or []:
            if env["name"] in ("MOCHI_REDIS_PASSWORD", "RAY_AUTH_TOKEN", "REDISCLI_AUTH"):
                ref = env["valueFrom"]["secretKeyRef"]
                assert ref["name"] in secret_names, where
                referenced.add(ref["name"])
    assert referenced == {naming.REDIS_SECRET, naming.RAY_AUTH_SECRET}
    api = one(objects[stack], "Deployment", naming.API)["spec"]["template"]["spec"]
    env = {e["name"]: e for e in api["containers"][0]["env"]}
    assert env["MOCHI_BOOTSTRAP_API_KEYS"]["valueFrom"]["secretKeyRef"]["name"] == (
        naming.API_KEYS_SECRET
    )


def test_prod_workers_get_gpus_memory_and_shm_from_config(objects):
    cluster = one(objects["prod"], "RayCluster", naming.RAY_CLUSTER)
    (group,) = cluster["spec"]["workerGroupSpecs"]
    pod = group["template"]["spec"]
    worker = pod["containers"][0]
    assert group["replicas"] == 2
    assert worker["resources"]["limits"] == worker["resources"]["requests"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert worker["resources"]["limits"]["memory"] == "80Gi"
    assert group["rayStartParams"]["object-store-memory"] == str(8 * 2**30)
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")["emptyDir"]
    assert shm == {"medium": "Memory", "sizeLimit": "8Gi"}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert pod["initContainers"][0]["name"] == "wait-for-gcs"
    assert "readinessProbe" in worker and "livenessProbe" in worker
    head = cluster["spec"]["headGroupSpec"]
    assert head["serviceType"] == "ClusterIP"
    assert head["rayStartParams"]["dashboard-host"] == "0.0.0.0"


def test_every_gpu_of_a_worker_pod_runs_a_pipeline(objects):
    # Service "worker" = one GenerationWorker actor, one pipeline on MOCHI_GPUS_PER_WORKER GPUs.
    prod = one(objects["prod"], "ConfigMap", naming.SETTINGS_CONFIG_MAP)["data"]
    assert (prod["MOCHI_WORKERS"], prod["MOCHI_GPUS_PER_WORKER"]) == ("4", "1")  # 2 pods x 2 GPUs
    assert prod["MOCHI_WORKER_HOST_MEMORY_GIB"] == "40"  # one actor's share of 80 Gi
    dev = one(objects["dev"], "ConfigMap", naming.SETTINGS_CONFIG_MAP)["data"]
    assert (dev["MOCHI_WORKERS"], dev["MOCHI_GPUS_PER_WORKER"]) == ("1", "0")  # CPU: 1 per pod
    objects_2 = render.kubernetes_objects(
        run_stack("prod", **PROD_SETTINGS, **{"mochi:gpusPerPipeline": "2"})
    )
    data = one(objects_2, "ConfigMap", naming.SETTINGS_CONFIG_MAP)["data"]
    assert (data["MOCHI_WORKERS"], data["MOCHI_GPUS_PER_WORKER"]) == ("2", "2")


def test_supervisor_probes_its_health_endpoints(objects):
    for stack in STACKS:
        deployment = one(objects[stack], "Deployment", naming.SUPERVISOR)
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["ports"] == [
            {"name": "health", "containerPort": naming.SUPERVISOR_HEALTH_PORT}
        ]
        assert f"--health-port={naming.SUPERVISOR_HEALTH_PORT}" in container["command"]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
        assert "exec" not in container["livenessProbe"]


def test_plain_mode_renders_ray_as_deployments():
    objects = render.kubernetes_objects(run_stack("dev", **{"mochi:rayMode": "plain"}))
    assert find(objects, "RayCluster") == []
    head = one(objects, "Deployment", naming.RAY_HEAD)["spec"]["template"]["spec"]
    worker = one(objects, "Deployment", naming.RAY_WORKER)["spec"]["template"]["spec"]
    head_command = head["containers"][0]["command"]
    worker_command = worker["containers"][0]["command"]
    assert head_command[:3] == ["ray", "start", "--head"] and "--block" in head_command
    assert "--address=$(MOCHI_RAY_GCS_ADDRESS)" in worker_command
    assert f"--object-store-memory={2**29}" in worker_command
    assert not any("ray-client-server-host" in word for word in head_command)


@pytest.mark.parametrize("stack", STACKS)
def test_render_writes_exactly_what_the_program_registers(tmp_path, objects, stack):
    paths = render.render(stack, tmp_path, overrides=SETTINGS[stack])
    written = [yaml.safe_load(path.read_text()) for path in paths]
    assert sorted(p.name for p in tmp_path.glob("*.yaml")) == sorted(p.name for p in paths)
    assert [_without_secret_values(o) for o in written] == [
        _without_secret_values(render.canonical(o)) for o in objects[stack]
    ]
    assert all(path.stat().st_mode & 0o077 == 0 for path in paths)


def _without_secret_values(obj: dict) -> dict:
    if obj["kind"] == "Secret":
        return {**obj, "stringData": sorted(obj["stringData"])}
    return obj


def test_render_cli_reports_invalid_config(tmp_path, capsys, monkeypatch):
    (tmp_path / "Pulumi.yaml").write_text((render.REPO_ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.bad.yaml").write_text("config:\n  mochi:apiImage: mochi-api:latest\n")
    monkeypatch.setattr(render, "REPO_ROOT", tmp_path)
    assert render.main(["render", "--stack", "bad", "--out", str(tmp_path / "out")]) == 1
    assert "mochi:apiImage = 'mochi-api:latest'" in capsys.readouterr().err
