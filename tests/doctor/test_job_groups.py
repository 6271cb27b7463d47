"""Job groups (MOCHI_GPUS_PER_JOB > 1), per resource: RAY014 a group no Ray pod can hold (pod
templates, the workers' registry, Ray's placement groups), RAY015 ranks that did not join,
RAY016 N not dividing the attention heads, RAY017 GPUs the groups leave idle."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from doctor.checks import job_groups
from doctor.diagnose import diagnose
from doctor.inventory import Inventory
from doctor.sources.probe import Deadline
from doctor.sources.ray_live import read_ray
from doctor.sources.record import write_snapshot
from doctor.sources.redis_live import read_redis
from doctor.sources.snapshot import load_snapshot
from doctor.state import JobsState, LiveState, RayState
from service.jobstore import JobStore

GROUP_CODES = ("RAY014", "RAY015", "RAY016", "RAY017")
RECORDED = Path(__file__).parent / "fixtures" / "ray_placement_groups.json"
CLUSTER = "RayCluster/mochi/mochi-ray"
SETTINGS = "ConfigMap/mochi/mochi-settings"
DASHBOARD = "http://ray-head:8265"
NOW = 1_800_000_000.0


def settings_map(**data: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "mochi-settings", "namespace": "mochi"},
        "data": {"MOCHI_WORKERS": "1", **data},
    }


def ray_container(gpus: int, env: dict | None = None) -> dict:
    limits = {"cpu": "8", "memory": "200Gi", **({"nvidia.com/gpu": str(gpus)} if gpus else {})}
    container = {
        "name": "ray",
        "image": "rayproject/ray:2.60.0-gpu",
        "envFrom": [{"configMapRef": {"name": "mochi-settings"}}],
        "resources": {"limits": limits, "requests": limits},
    }
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return container


def raycluster(*worker_gpus: int, params: dict | None = None, env: dict | None = None) -> dict:
    """The infra's shape: a CPU head and one GPU worker group per entry, all reading the
    settings ConfigMap."""

    def group(name: str, gpus: int) -> dict:
        return {
            "groupName": name,
            "replicas": 1,
            "rayStartParams": dict(params or {}),
            "template": {"spec": {"containers": [ray_container(gpus, env)]}},
        }

    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {"name": "mochi-ray", "namespace": "mochi"},
        "spec": {
            "headGroupSpec": {
                "rayStartParams": {"num-gpus": "0"},
                "template": {"spec": {"containers": [ray_container(0)]}},
            },
            "workerGroupSpecs": [
                group("gpu" if i == 0 else f"gpu{i}", gpus) for i, gpus in enumerate(worker_gpus)
            ],
        },
    }


def group_findings(*objects: dict, state: dict | None = None) -> list:
    inventory = Inventory(source="live" if state else "manifests")
    for obj in objects:
        inventory.add(obj)
    inventory.live = LiveState.from_json(state or {})
    return [f for f in diagnose(inventory).findings if f.code in GROUP_CODES]


def only(findings: list, code: str):
    matching = [f for f in findings if f.code == code]
    assert len(matching) == 1, findings
    return matching[0]


# -- static: the pod templates ------------------------------------------------------------------


def test_a_group_larger_than_every_ray_pod_cannot_be_placed():
    settings = settings_map(
        MOCHI_GPUS_PER_JOB="4", MOCHI_GPUS_PER_WORKER="1", MOCHI_MODEL="genmo/mochi-1-preview"
    )
    findings = group_findings(settings, raycluster(2))
    finding = only(findings, "RAY014")
    assert (finding.severity, finding.category) == ("error", "availability")
    assert finding.resource == CLUSTER
    assert finding.message == (
        "a job group needs 4 ranks x 1 GPUs = 4 GPUs on one Ray node, but the largest Ray pod "
        f"of its cluster, {CLUSTER} (gpu group), has 2: the group is never placed and the "
        "workers claim no jobs"
    )
    assert finding.evidence == (
        f"MOCHI_GPUS_PER_JOB=4 ({SETTINGS}); MOCHI_GPUS_PER_WORKER=1 ({SETTINGS}); "
        f"{CLUSTER} (gpu group) limits.nvidia.com/gpu: 2"
    )
    assert [f.code for f in findings] == ["RAY014"]  # RAY017 stays quiet when nothing fits


def test_many_small_pods_do_not_hold_one_group():
    settings = settings_map(MOCHI_GPUS_PER_JOB="2", MOCHI_GPUS_PER_WORKER="1")
    finding = only(group_findings(settings, raycluster(1, 1, 1)), "RAY014")
    assert "2 GPUs on one Ray node" in finding.message and "has 1:" in finding.message


def test_rays_num_gpus_is_what_a_pod_offers():
    settings = settings_map(MOCHI_GPUS_PER_JOB="4", MOCHI_GPUS_PER_WORKER="1")
    finding = only(group_findings(settings, raycluster(8, params={"num-gpus": "2"})), "RAY014")
    assert finding.evidence.endswith(f"{CLUSTER} (gpu group) rayStartParams.num-gpus: 2")


def test_a_group_that_fits_and_divides_is_quiet():
    settings = settings_map(MOCHI_GPUS_PER_JOB="4", MOCHI_GPUS_PER_WORKER="1")
    settings["data"]["MOCHI_MODEL"] = "genmo/mochi-1-preview"
    assert group_findings(settings, raycluster(4, 8)) == []


@pytest.mark.parametrize("per_job", [None, "1"])
def test_no_group_setting_is_quiet(per_job):
    data = {"MOCHI_GPUS_PER_WORKER": "4", "MOCHI_MODEL": "genmo/mochi-1-preview"}
    if per_job:
        data["MOCHI_GPUS_PER_JOB"] = per_job
    assert group_findings(settings_map(**data), raycluster(2, 3)) == []


def test_cpu_ranks_need_no_gpus():
    settings = settings_map(MOCHI_GPUS_PER_JOB="2", MOCHI_GPUS_PER_WORKER="0")
    assert group_findings(settings, raycluster(0)) == []


def test_n_not_dividing_mochi_1_heads_is_ray016_on_the_configmap():
    settings = settings_map(
        MOCHI_GPUS_PER_JOB="5", MOCHI_GPUS_PER_WORKER="1", MOCHI_MODEL="genmo/mochi-1-preview"
    )
    findings = group_findings(settings, raycluster(5))
    finding = only(findings, "RAY016")  # the head and the worker group read one ConfigMap
    assert (finding.severity, finding.category) == ("error", "configuration")
    assert finding.resource == SETTINGS
    assert finding.message == (
        "MOCHI_GPUS_PER_JOB=5 does not divide the 24 attention heads of model "
        "genmo/mochi-1-preview: each rank holds whole heads, so the service refuses to form the "
        "group; use one of 1, 2, 3, 4, 6, 8, 12, 24"
    )
    assert finding.evidence == (
        f"MOCHI_GPUS_PER_JOB=5 ({SETTINGS}); MOCHI_MODEL=genmo/mochi-1-preview ({SETTINGS})"
    )


def test_the_service_default_model_is_tiny_with_its_own_heads():
    settings = settings_map(MOCHI_GPUS_PER_WORKER="1")
    findings = group_findings(settings, raycluster(4, env={"MOCHI_GPUS_PER_JOB": "4"}))
    finding = only(findings, "RAY016")
    assert finding.resource == CLUSTER  # written in the container's env
    assert "does not divide the 2 attention heads of model tiny" in finding.message
    assert finding.evidence == (
        f"MOCHI_GPUS_PER_JOB=4 ({CLUSTER}); MOCHI_MODEL unset (service default tiny)"
    )


def test_n_dividing_the_heads_is_not_ray016():
    settings = settings_map(MOCHI_GPUS_PER_JOB="8", MOCHI_MODEL="/models/mochi")
    assert "RAY016" not in {f.code for f in group_findings(settings, raycluster(8))}


def test_heads_match_the_models_the_service_builds():
    from service.parallel.group import MOCHI_1_ATTENTION_HEADS
    from service.tiny_model import build_transformer

    assert build_transformer().config.num_attention_heads == job_groups.TINY_ATTENTION_HEADS
    assert job_groups.MOCHI_1_ATTENTION_HEADS == MOCHI_1_ATTENTION_HEADS


def test_pods_whose_gpus_groups_do_not_fill_leave_gpus_idle():
    settings = settings_map(
        MOCHI_GPUS_PER_JOB="4", MOCHI_GPUS_PER_WORKER="1", MOCHI_MODEL="genmo/mochi-1-preview"
    )
    findings = group_findings(settings, raycluster(6, 2, 8))
    idle = [f for f in findings if f.code == "RAY017"]
    assert [f.code for f in findings] == ["RAY017", "RAY017"]
    assert {(f.severity, f.category, f.resource) for f in idle} == {
        ("warning", "configuration", CLUSTER)
    }
    assert [f.message for f in idle] == [
        f"{CLUSTER} (gpu group): 6 GPUs hold 6 pipeline(s) of 1 GPU(s); groups of 4 use 4, "
        "leaving 2 GPU(s) idle",
        f"{CLUSTER} (gpu1 group): 2 GPUs hold 2 pipeline(s) of 1 GPU(s); no group fits it, "
        "leaving 2 GPU(s) idle",
    ]
    assert idle[0].evidence == (
        f"{CLUSTER} (gpu group) limits.nvidia.com/gpu: 6; MOCHI_GPUS_PER_JOB=4 ({SETTINGS}); "
        f"MOCHI_GPUS_PER_WORKER=1 ({SETTINGS})"
    )


# -- live: the workers' registry and Ray's placement groups -------------------------------------


def worker(error: str, gpus_per_job: int = 4) -> dict:
    return {"worker": "ray-worker-0:4242:0", "gpus_per_job": gpus_per_job, "group_error": error}


def live_state(workers: dict, placement_groups: list | None = None, seen: float = NOW) -> dict:
    ray = {"address": DASHBOARD}
    if placement_groups is not None:
        ray["placement_groups"] = placement_groups
    return {
        "jobs": {
            "server_time": NOW,
            "jobs": [],
            "workers": workers,
            "workers_seen": {name: seen for name in workers},
        },
        "ray": ray,
    }


def placement_group(state: str, scheduling: str, name: str = "mochi-group-0") -> dict:
    bundle = {"unit_resources": {"CPU": 1.0, "GPU": 1.0}}
    return {
        "placement_group_id": "pg1",
        "name": name,
        "state": state,
        "bundles": [bundle] * 4,
        "stats": {"scheduling_state": scheduling},
    }


PLACEMENT_ERROR = (
    "placement: 4 ranks of {'CPU': 1, 'GPU': 1} each cannot be placed together on one node "
    "within 600 s"
)


def test_a_worker_whose_group_was_not_placed_is_ray014():
    state = live_state({"ray-worker-0:4242:0": worker(PLACEMENT_ERROR)})
    finding = only(group_findings(state=state), "RAY014")
    assert (finding.severity, finding.category) == ("error", "availability")
    assert finding.resource == "ray://ray-head:8265"
    assert finding.message == (
        f"worker ray-worker-0:4242:0 cannot place its job group of 4 ranks on one Ray node "
        f"({PLACEMENT_ERROR}): it claims no jobs and keeps retrying"
    )
    assert finding.evidence == (
        f"mochi:workers ray-worker-0:4242:0: gpus_per_job 4, group_error {PLACEMENT_ERROR!r}"
    )


def test_the_workers_pending_placement_group_joins_its_evidence():
    state = live_state(
        {"ray-worker-0:4242:0": worker(PLACEMENT_ERROR)},
        [placement_group("PENDING", "INFEASIBLE")],
    )
    finding = only(group_findings(state=state), "RAY014")  # one finding, not two
    assert finding.evidence.endswith(
        "; placement group mochi-group-0 (pg1): state PENDING, scheduling_state INFEASIBLE, "
        "bundles 4 x {'CPU': 1.0, 'GPU': 1.0}"
    )


def test_ranks_that_did_not_join_are_ray015():
    error = "rendezvous: ranks did not finish within 600 s"
    state = live_state({"ray-worker-0:4242:0": worker(error, 2)})
    finding = only(group_findings(state=state), "RAY015")
    assert (finding.severity, finding.category) == ("error", "connectivity")
    assert finding.resource == "ray://ray-head:8265"
    assert finding.message == (
        "worker ray-worker-0:4242:0's 2 ranks started but did not join each other over "
        f"torch.distributed ({error}): the group is closed, the worker claims no jobs and keeps "
        "retrying"
    )
    assert (
        finding.evidence
        == f"mochi:workers ray-worker-0:4242:0: gpus_per_job 2, group_error {error!r}"
    )


def test_without_ray_state_the_worker_is_the_resource():
    state = live_state({"ray-worker-0:4242:0": worker("rendezvous: connection refused")})
    del state["ray"]
    assert only(group_findings(state=state), "RAY015").resource == "worker/ray-worker-0:4242:0"


@pytest.mark.parametrize(
    "entry, seen",
    [
        (worker(""), NOW),  # the group formed
        (worker(PLACEMENT_ERROR, 1), NOW),  # no group asked for
        ({"worker": "w", "group_error": PLACEMENT_ERROR}, NOW),  # a worker before groups
        (worker(PLACEMENT_ERROR), NOW - 600),  # not heartbeating: a worker that is gone
    ],
)
def test_formed_single_and_gone_workers_are_quiet(entry, seen):
    assert group_findings(state=live_state({"ray-worker-0:4242:0": entry}, seen=seen)) == []


def test_pending_service_placement_groups():
    groups = [
        placement_group("PENDING", "INFEASIBLE", "mochi-group-1"),
        placement_group("PENDING", "NO_RESOURCES", "mochi-group-2"),
        placement_group("CREATED", "FINISHED", "mochi-group-3"),
        placement_group("PENDING", "INFEASIBLE", "someone-else"),
    ]
    findings = group_findings(state=live_state({}, groups))
    assert [(f.code, f.severity, f.resource) for f in findings] == [
        ("RAY014", "error", "ray://ray-head:8265"),
        ("RAY014", "warning", "ray://ray-head:8265"),
    ]
    assert findings[0].message == (
        "placement group mochi-group-1 of worker 1's job group is PENDING: no Ray node can ever "
        "hold its bundles together, so the group does not form and the worker claims no jobs"
    )
    assert findings[1].message.startswith(
        "placement group mochi-group-2 of worker 2's job group is PENDING: no Ray node has its "
        "bundles free together now"
    )
    assert findings[1].evidence == (
        "placement group mochi-group-2 (pg1): state PENDING, scheduling_state NO_RESOURCES, "
        "bundles 4 x {'CPU': 1.0, 'GPU': 1.0}"
    )


# -- the sources: Ray's state API (recorded) and the registry in a real Redis -------------------


class RecordedDashboard(BaseHTTPRequestHandler):
    """Ray 2.60's dashboard answers, recorded from a local cluster holding an infeasible
    mochi-group-0 (4 x {CPU: 1, GPU: 1} on a CPU-only node), a created mochi-group-1 and a
    group of someone else's waiting for CPUs."""

    answers = json.loads(RECORDED.read_text())

    def do_GET(self):  # noqa: N802 - http.server's name
        answer = self.answers.get(self.path.split("?", 1)[0])
        body = json.dumps(answer).encode() if answer else b"not recorded"
        self.send_response(200 if answer else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def dashboard():
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordedDashboard)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_ray_live_reads_placement_groups_and_a_pending_one_is_ray014(dashboard):
    state, probes = read_ray(dashboard, None, Deadline(10))
    groups = state["placement_groups"]
    assert [(g["name"], g["state"], g["stats"]["scheduling_state"]) for g in groups] == [
        ("mochi-group-0", "PENDING", "INFEASIBLE"),
        ("mochi-group-1", "CREATED", "FINISHED"),
        ("someone-else", "PENDING", "NO_RESOURCES"),
    ]
    assert set(groups[0]) == {"placement_group_id", "name", "state", "bundles", "stats"}
    assert "placement_groups" not in state.get("errors", {})
    inventory = Inventory(source="live")
    inventory.live.ray = RayState.from_json(state)
    finding = only([f for f in diagnose(inventory).findings if f.code in GROUP_CODES], "RAY014")
    assert finding.severity == "error"
    assert finding.resource == f"ray://{dashboard.split('://', 1)[1]}"
    assert finding.evidence == (
        "placement group mochi-group-0 (245af5d546d008b78e618bc526df01000000): state PENDING, "
        "scheduling_state INFEASIBLE, bundles 4 x {'CPU': 1.0, 'GPU': 1.0}"
    )


def test_the_registry_in_redis_carries_the_group_fields(redis_server, redis_client):
    error = "rendezvous: ranks did not finish within 600 s"
    JobStore(redis_client).register_worker("ray-worker-0:77:0", worker(error, 2))
    _, jobs, probe = read_redis(redis_server.url, None, Deadline(10))
    assert probe.ok
    assert jobs["workers"]["ray-worker-0:77:0"]["group_error"] == error
    inventory = Inventory(source="live")
    inventory.live.jobs = JobsState.from_json(jobs)
    findings = [f for f in diagnose(inventory).findings if f.code in GROUP_CODES]
    assert only(findings, "RAY015").resource == "worker/ray-worker-0:77:0"


def test_a_snapshot_keeps_the_group_findings(tmp_path):
    state = live_state(
        {"ray-worker-0:4242:0": worker("rendezvous: connection refused")},
        [placement_group("PENDING", "INFEASIBLE", "mochi-group-3")],
    )
    inventory = Inventory(source="live")
    inventory.live = LiveState.from_json(state)
    write_snapshot(inventory, str(tmp_path))
    live = {(f.code, f.resource, f.evidence) for f in diagnose(inventory).findings}
    again = {
        (f.code, f.resource, f.evidence) for f in diagnose(load_snapshot(str(tmp_path))).findings
    }
    assert {code for code, _, _ in live} >= {"RAY014", "RAY015"} and live == again
