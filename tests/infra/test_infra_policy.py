"""The policy pack: the doctor's findings on what the stacks render, as Pulumi hands it over.

Resources are built with pulumi_policy's own PolicyResource, their props passed through the
same conversion the policy runtime applies to what the engine sends (a protobuf Struct: every
number a float; an unknown-checking proxy). One test runs the pack under Pulumi's own runtime
(`python -m pulumi.policy`, what the CLI starts) and calls it over gRPC on loopback."""

from __future__ import annotations

import copy
import select
import subprocess
import sys

import grpc
import pytest
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import SPECIAL_SECRET_SIG, SPECIAL_SIG_KEY, deserialize_properties
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from doctor.diagnose import Result
from doctor.raystart import RAY_MISSING
from doctor.skips import SkippedCheck
from infra import naming, render
from infra.manifests import one
from policy.__main__ import policies
from policy.adapter import not_checked, stack_violations

from .conftest import REPO_ROOT

SECRET_SIG = {SPECIAL_SIG_KEY: SPECIAL_SECRET_SIG}  # how the engine marks a secret value


def urn(stack: str, registration: render.Registration) -> str:
    return f"urn:pulumi:{stack}::mochi::{registration.type}::{registration.name}"


def handed_over(props: dict):
    """Props as the policy runtime gives them to a policy: through the wire's Struct."""
    struct = struct_pb2.Struct()
    struct.update(props)
    return unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(struct)))


def policy_resource(stack: str, registration: render.Registration) -> PolicyResource:
    options = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
    return PolicyResource(
        registration.type,
        handed_over(registration.inputs),
        urn(stack, registration),
        registration.name,
        options,
        None,
        None,
        [],
        {},
    )


class Stack:
    """A rendered stack's registrations, to break before handing them to the pack."""

    def __init__(self, registrations: list[render.Registration], stack: str):
        self.stack = stack
        self.registrations = copy.deepcopy(registrations)
        self.namespace = self.get("Namespace", None)["metadata"]["name"]

    def get(self, kind: str, name: str | None) -> dict:
        objects = render.kubernetes_objects(self.registrations)
        if name is None:
            (found,) = [o for o in objects if o["kind"] == kind]
            return found
        return one(objects, kind, name)

    def add(self, obj: dict) -> None:
        version = obj["apiVersion"] if "/" in obj["apiVersion"] else f"core/{obj['apiVersion']}"
        resource_type = f"kubernetes:{version}:{obj['kind']}"
        self.registrations.append(render.Registration(resource_type, obj["metadata"]["name"], obj))

    def urn_of(self, kind: str, name: str) -> str:
        (found,) = [
            r
            for r in self.registrations
            if r.inputs.get("kind") == kind and r.inputs["metadata"]["name"] == name
        ]
        return urn(self.stack, found)

    def resources(self) -> list[PolicyResource]:
        return [policy_resource(self.stack, r) for r in self.registrations]

    def violations(self):
        return stack_violations(self.resources())

    def resource(self, kind: str, name: str) -> str:
        return f"{kind}/{self.namespace}/{name}"


@pytest.fixture()
def dev(registrations) -> Stack:
    return Stack(registrations["dev"], "dev")


@pytest.fixture()
def prod(registrations) -> Stack:
    return Stack(registrations["prod"], "prod")


def found(violations, code: str, resource: str) -> list:
    return [v for v in violations if v.code == code and v.resource == resource]


def _container(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]["containers"][0]


def _gpu_worker(cluster: dict) -> dict:
    return cluster["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("stack", render.STACKS)
def test_rendered_stacks_pass_the_pack(registrations, stack):
    assert Stack(registrations[stack], stack).violations() == []


def test_unpinned_image(dev):
    api = dev.get("Deployment", naming.API)
    for image in ("mochi-api:latest", "mochi-api"):
        _container(api)["image"] = image
        (violation,) = found(dev.violations(), "image-pinned", dev.resource("Deployment", "api"))
        assert f"image {image!r} is not pinned" in violation.message
        assert violation.severity == "error"
        assert violation.urn == dev.urn_of("Deployment", naming.API)


def test_security_context(dev):
    api = dev.get("Deployment", naming.API)
    context = _container(api)["securityContext"]
    context["allowPrivilegeEscalation"] = True
    context["capabilities"] = {"drop": []}
    del context["seccompProfile"]
    api["spec"]["template"]["spec"]["securityContext"] = {}
    context["runAsNonRoot"] = False
    (violation,) = found(dev.violations(), "security-context", dev.resource("Deployment", "api"))
    for expected in ("non-root", "allowPrivilegeEscalation", "drop ALL", "RuntimeDefault"):
        assert expected in violation.message


@pytest.mark.parametrize(
    "field, value, evidence",
    [("runAsUser", 0, "runAsUser: 0"), ("privileged", True, "privileged: true")],
)
def test_root_or_privileged_is_the_doctors_sec004(dev, field, value, evidence):
    _container(dev.get("Deployment", naming.API))["securityContext"][field] = value
    (violation,) = found(dev.violations(), "SEC004", dev.resource("Deployment", "api"))
    assert violation.severity == "warning" and evidence in violation.message


def test_resources_must_be_set(dev):
    del _container(dev.get("Deployment", naming.API))["resources"]["limits"]
    (violation,) = found(dev.violations(), "resources-set", dev.resource("Deployment", "api"))
    assert "limits.cpu, limits.memory not set" in violation.message


def test_gpu_limit_must_equal_request(prod):
    _gpu_worker(prod.get("RayCluster", naming.RAY_CLUSTER))["resources"]["requests"][
        naming.GPU_RESOURCE
    ] = "1"
    (violation,) = found(prod.violations(), "MEM003", prod.resource("RayCluster", "mochi-ray"))
    assert "nvidia.com/gpu request 1 is below its limit 2" in violation.message
    assert violation.severity == "warning"


def test_ip_literals_in_config_map_and_env(dev):
    settings = dev.get("ConfigMap", naming.SETTINGS_CONFIG_MAP)
    settings["data"]["MOCHI_RAY_DASHBOARD_URL"] = "http://192.168.0.35:8265"
    api = dev.get("Deployment", naming.API)
    _container(api)["env"].append({"name": "RAY_ADDRESS", "value": "ray://10.0.0.7:10001"})
    violations = dev.violations()
    in_settings = found(violations, "NET001", dev.resource("ConfigMap", "mochi-settings"))
    assert "192.168.0.35" in in_settings[0].message and in_settings[0].severity == "error"
    assert in_settings[0].urn == dev.urn_of("ConfigMap", naming.SETTINGS_CONFIG_MAP)
    assert "10.0.0.7" in found(violations, "NET001", dev.resource("Deployment", "api"))[0].message
    settings["data"]["MOCHI_RAY_DASHBOARD_URL"] = "http://ray-head:8265"
    _container(api)["env"][-1]["value"] = "0.0.0.0"
    assert dev.violations() == []


def _field_report_worker(namespace: str) -> dict:
    """The report's worker: 32 Gi limit, a 16 GB object store in an 8 Gi /dev/shm, a flag
    `ray start` does not have. It runs the Mochi worker (its image says so)."""
    command = [
        "ray",
        "start",
        "--address=ray-head:6379",
        "--ray-client-server-host=0.0.0.0",
        f"--object-store-memory={16 * 10**9}",
        "--block",
    ]
    container = {
        "name": "ray-worker",
        "image": "registry.acme.internal/mochi/mochi-worker:0.1.0",
        "command": command,
        "resources": {"limits": {"memory": "32Gi", naming.GPU_RESOURCE: "2"}},
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
    }
    volume = {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "ray-worker", "namespace": namespace},
        "spec": {"template": {"spec": {"containers": [container], "volumes": [volume]}}},
    }


def test_the_field_reports_ray_worker_fails_memory_and_flag_checks(dev):
    dev.add(_field_report_worker(dev.namespace))
    violations = dev.violations()
    worker = dev.resource("Deployment", "ray-worker")
    (flag,) = found(violations, "RAY001", worker)
    assert "--ray-client-server-host is not an option of `ray start`" in flag.message
    (shm,) = found(violations, "MEM002", worker)
    assert "object store 14.9 GiB is larger than /dev/shm (8Gi)" in shm.message
    (memory,) = found(violations, "MEM001", worker)
    assert "needs 47.4 GiB" in memory.message and "limit is 32.0 GiB" in memory.message
    assert {flag.severity, shm.severity, memory.severity} == {"error"}
    assert memory.urn == dev.urn_of("Deployment", "ray-worker")


def test_worker_memory_counts_the_pipelines_the_settings_give_each_pod(prod):
    cluster = prod.get("RayCluster", naming.RAY_CLUSTER)
    worker = _gpu_worker(cluster)
    worker["resources"]["limits"]["memory"] = worker["resources"]["requests"]["memory"] = "48Gi"
    resource = prod.resource("RayCluster", "mochi-ray")
    (violation,) = found(prod.violations(), "MEM001", resource)
    assert "2 pipeline(s) [2 GPUs / MOCHI_GPUS_PER_WORKER=1]" in violation.message
    assert "needs 70.0 GiB" in violation.message
    lone = [r for r in prod.resources() if r.props.get("kind") == "RayCluster"]
    assert found(stack_violations(lone), "MEM001", resource) == []  # one pipeline would fit
    worker["env"] = [{"name": "MOCHI_GPUS_PER_WORKER", "value": "2"}]  # env wins over envFrom
    assert found(prod.violations(), "MEM001", resource) == []


def test_object_store_default_is_counted(prod):
    cluster = prod.get("RayCluster", naming.RAY_CLUSTER)
    del cluster["spec"]["workerGroupSpecs"][0]["rayStartParams"]["object-store-memory"]
    (violation,) = found(prod.violations(), "MEM001", prod.resource("RayCluster", "mochi-ray"))
    assert "object store 24.0 GiB" in violation.message


def test_ray_shm_within_limit_and_above_the_object_store(prod):
    group = prod.get("RayCluster", naming.RAY_CLUSTER)["spec"]["workerGroupSpecs"][0]
    (shm,) = [v for v in group["template"]["spec"]["volumes"] if v["name"] == "dshm"]
    resource = prod.resource("RayCluster", "mochi-ray")
    shm["emptyDir"]["sizeLimit"] = "100Gi"
    (violation,) = found(prod.violations(), "ray-shm", resource)
    assert "/dev/shm 100.0 GiB > memory limit 80Gi" in violation.message
    shm["emptyDir"]["sizeLimit"] = "4Gi"
    (violation,) = found(prod.violations(), "ray-shm", resource)
    assert "object store 8.0 GiB > /dev/shm 4.0 GiB" in violation.message


def test_ray_ports_stay_inside_the_cluster(dev):
    dev.get("Service", naming.RAY_HEAD)["spec"]["type"] = "LoadBalancer"
    (violation,) = found(dev.violations(), "SEC001", dev.resource("Service", "ray-head"))
    for port in ("GCS port 6379", "Ray Client port 10001", "dashboard port 8265"):
        assert port in violation.message
    assert violation.severity == "error"
    assert violation.urn == dev.urn_of("Service", naming.RAY_HEAD)


def test_redis_port_stays_inside_the_cluster(dev):
    dev.get("Service", naming.REDIS)["spec"]["type"] = "NodePort"
    (violation,) = found(dev.violations(), "ports-internal", dev.resource("Service", "redis"))
    assert "Service type NodePort exposes port 6379" in violation.message


def test_secret_values_unknown_at_preview_are_no_obstacle(dev):
    secret = dev.get("Secret", naming.REDIS_SECRET)
    secret["stringData"] = {
        naming.REDIS_PASSWORD_KEY: {**SECRET_SIG, "value": UNKNOWN_STRING_VALUE}
    }
    assert dev.violations() == []


def test_an_unknown_value_elsewhere_is_pulumis_cannot_run_at_preview(dev):
    _container(dev.get("Deployment", naming.API))["image"] = UNKNOWN_STRING_VALUE
    with pytest.raises(UnknownValueError) as unknown:
        dev.violations()
    assert unknown.value.message.endswith("containers.0.image can't be known during preview")


def test_errors_are_mandatory_and_warnings_advisory(prod):
    pack = {policy.name: policy for policy in policies()}
    assert all(isinstance(p, StackValidationPolicy) for p in pack.values())
    assert pack["doctor-errors"].enforcement_level == EnforcementLevel.MANDATORY
    assert pack["doctor-warnings"].enforcement_level == EnforcementLevel.ADVISORY
    worker = _gpu_worker(prod.get("RayCluster", naming.RAY_CLUSTER))
    worker["resources"]["limits"]["memory"] = "48Gi"  # MEM001 (error), MEM003 (warning)
    worker["resources"]["requests"][naming.GPU_RESOURCE] = "1"
    reported = {}
    for name, policy in pack.items():
        args = StackValidationArgs(prod.resources())
        reported[name] = []
        policy.validate(args, lambda message, urn=None, n=name: reported[n].append((message, urn)))
    cluster_urn = prod.urn_of("RayCluster", naming.RAY_CLUSTER)
    ((error, error_urn),) = reported["doctor-errors"]
    assert error.startswith("MEM001 RayCluster/mochi/mochi-ray: ") and error_urn == cluster_urn
    assert "fix: " in error and "[runbooks/MEM001.md]" in error
    assert [m.split()[0] for m, _ in reported["doctor-warnings"]] == ["MEM003"]


def test_the_pack_under_pulumis_policy_runtime(prod):
    """What `pulumi preview --policy-pack policy` runs: the language host starts
    `python -m pulumi.policy ENGINE PACK_DIR`, which serves the analyzer on a loopback port."""
    worker = _gpu_worker(prod.get("RayCluster", naming.RAY_CLUSTER))
    worker["resources"]["limits"]["memory"] = "48Gi"
    worker["resources"]["requests"][naming.GPU_RESOURCE] = "1"
    secret = prod.get("Secret", naming.REDIS_SECRET)
    secret["stringData"] = {
        naming.REDIS_PASSWORD_KEY: {**SECRET_SIG, "value": UNKNOWN_STRING_VALUE}
    }
    with PolicyHost() as analyzer:
        info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=60)
        levels = {p.name: p.enforcementLevel for p in info.policies}
        response = analyzer.AnalyzeStack(_request(prod), timeout=120)
        _container(prod.get("Deployment", naming.API))["image"] = UNKNOWN_STRING_VALUE
        at_preview = analyzer.AnalyzeStack(_request(prod), timeout=120)
    assert levels == {
        "doctor-errors": analyzer_pb2.MANDATORY,
        "doctor-warnings": analyzer_pb2.ADVISORY,
    }
    reported = sorted(
        (d.policyName, d.enforcementLevel, d.message.splitlines()[-1].split()[0], d.urn)
        for d in response.diagnostics
    )
    cluster_urn = prod.urn_of("RayCluster", naming.RAY_CLUSTER)
    assert reported == [
        ("doctor-errors", analyzer_pb2.MANDATORY, "MEM001", cluster_urn),
        ("doctor-warnings", analyzer_pb2.ADVISORY, "MEM003", cluster_urn),
    ]
    assert sorted((d.policyName, d.enforcementLevel) for d in at_preview.diagnostics) == [
        ("doctor-errors", analyzer_pb2.ADVISORY),
        ("doctor-warnings", analyzer_pb2.ADVISORY),
    ]
    assert all("can't be known during preview" in d.message for d in at_preview.diagnostics)


def _request(stack: Stack) -> analyzer_pb2.AnalyzeStackRequest:
    return analyzer_pb2.AnalyzeStackRequest(
        resources=[_wire(stack, r) for r in stack.registrations]
    )


def _wire(stack: Stack, registration: render.Registration) -> analyzer_pb2.AnalyzerResource:
    properties = struct_pb2.Struct()
    properties.update(registration.inputs)
    return analyzer_pb2.AnalyzerResource(
        type=registration.type,
        properties=properties,
        urn=urn(stack.stack, registration),
        name=registration.name,
    )


class PolicyHost:
    """The pack served by Pulumi's policy runtime in a child process, stopped by its pid."""

    def __enter__(self) -> analyzer_pb2_grpc.AnalyzerStub:
        command = [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:0", "policy"]
        self.process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE)
        ready, _, _ = select.select([self.process.stdout], [], [], 60)
        port = self.process.stdout.readline().decode().strip() if ready else ""
        if not port.isdigit():
            self.stop()
            raise AssertionError(f"the policy pack printed no port within 60 s: {port!r}")
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        return analyzer_pb2_grpc.AnalyzerStub(self.channel)

    def __exit__(self, *_) -> None:
        self.channel.close()
        self.stop()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def test_a_check_that_cannot_run_here_is_reported():
    result = Result([], skipped_checks=[SkippedCheck("RAY001", RAY_MISSING)])
    (violation,) = not_checked(result)
    assert violation.severity == "warning" and violation.urn is None
    assert violation.message == f"RAY001 not checked: {RAY_MISSING}"


def test_what_the_cluster_reports_is_not_judged(prod):
    """After `pulumi up` the props are the live objects: a rollout still in progress is no
    fault of the program."""
    cluster = prod.get("RayCluster", naming.RAY_CLUSTER)
    cluster["status"] = {"state": "failed", "reason": "head pod not ready yet"}
    api = prod.get("Deployment", naming.API)
    api["status"] = {"replicas": 3, "readyReplicas": 0, "unavailableReplicas": 3}
    assert prod.violations() == []
