"""Every live check fires on recorded live state, and stays quiet on healthy state; a snapshot
written from it redacts secrets and diagnoses the same offline."""

from __future__ import annotations

import json

import pytest

from doctor.diagnose import diagnose
from doctor.inventory import Inventory
from doctor.redaction import redact_text
from doctor.registry import all_checks
from doctor.sources import load_snapshot
from doctor.sources.record import write_snapshot
from doctor.state import JobsState, LiveState
from service.params import DEFAULTS

NOW = 1_800_000_000.0
WORKER = "node-1:4242:0"
GROUP_LEADER = "node-3:77:0"
RENDEZVOUS_FAILED = "rendezvous: ranks did not finish within 600 s"


def job(id_: str, status: str, **fields) -> dict:
    return {"id": id_, "status": status, "worker": "", "params": {}, "metrics": {}, **fields}


def faulty_state() -> dict:
    gpu_node = {"CPU": 8.0, "memory": 6.4e10}
    return {
        "probes": [
            {
                "component": "redis",
                "target": "redis://redis:6379/0",
                "ok": False,
                "kind": "dns",
                "detail": "gaierror: Name or service not known",
                "where": "doctor",
            },
            {
                "component": "output",
                "target": "/data/videos",
                "ok": False,
                "kind": "error",
                "detail": "uid 1000: PermissionError: [Errno 13] Permission denied",
                "where": "doctor",
            },
        ],
        "ray": {
            "address": "ray-head:6379",
            "client": {"ray": "2.9.0", "python": "3.11"},
            "version": {"ray_version": "2.60.0"},
            "gcs_health": {"healthy": False, "detail": "GCS unavailable"},
            "nodes": [
                {
                    "node_ip": "10.0.0.1",
                    "is_head_node": True,
                    "state": "ALIVE",
                    "resources_total": gpu_node,
                },
                {
                    "node_ip": "10.0.0.2",
                    "is_head_node": False,
                    "state": "DEAD",
                    "state_message": "health check failed",
                    "resources_total": gpu_node,
                },
            ],
            "actors": [
                {
                    "class_name": "_ActorWorker",
                    "name": "worker-0",
                    "ray_namespace": "mochi",
                    "state": "ALIVE",
                    "pid": 4242,
                    "num_restarts": "3",
                    "required_resources": {},
                },
                {
                    "class_name": "_ActorWorker",
                    "name": "worker-1",
                    "ray_namespace": "mochi",
                    "state": "PENDING_CREATION",
                    "required_resources": {"GPU": 1.0},
                },
            ],
            "pending_tasks": [
                {
                    "task_id": "t1",
                    "name": "generate",
                    "state": "PENDING_NODE_ASSIGNMENT",
                    "required_resources": {"GPU": 1.0, "CPU": 1.0},
                },
            ],
            "jobs": [{"submission_id": "mochi-pool-1", "status": "FAILED"}],
        },
        "redis": {
            "url": "redis://redis:6379/0",
            "reachable": True,
            "password_used": False,
            "info": {
                "aof_enabled": 0,
                "evicted_keys": 12,
                "maxmemory_policy": "allkeys-lru",
                "used_memory": 3_000_000,
                "maxmemory": 0,
            },
            "config": {
                "maxmemory": "0",
                "save": "",
                "appendonly": "no",
                "maxmemory-policy": "allkeys-lru",
                "requirepass": "",
                "bind": "* -::*",
            },
        },
        "jobs": {
            "server_time": NOW,
            "pool_submission": "mochi-pool-1",
            "workers": {
                WORKER: {"model": "genmo/mochi-1-preview", "device_memory_gib": 24.0},
                GROUP_LEADER: {
                    "model": "genmo/mochi-1-preview",
                    "device_memory_gib": 24.0,
                    "gpus_per_job": 2,
                    "group_error": RENDEZVOUS_FAILED,
                },
            },
            "workers_seen": {WORKER: NOW - 1, GROUP_LEADER: NOW - 1, "node-2:99:0": NOW - 600},
            "jobs": [
                job(
                    "a" * 32,
                    "running",
                    worker=WORKER,
                    heartbeat_at=NOW - 100,
                    lease_expires=NOW - 70,
                ),
                job(
                    "b" * 32,
                    "running",
                    worker="node-2:99:0",
                    heartbeat_at=NOW - 1,
                    lease_expires=NOW + 29,
                ),
                job(
                    "c" * 32,
                    "queued",
                    created_at=NOW - 900,
                    params={"num_frames": 163, "height": 480, "width": 848},
                ),
                *[
                    job(f"{i:032x}", "failed", finished_at=NOW - 60, error="output full")
                    for i in range(4)
                ],
                job(
                    "d" * 32,
                    "succeeded",
                    finished_at=NOW - 30,
                    worker=WORKER,
                    metrics={"peak_gpu_gib": 30.0, "predicted_peak_gib": 20.0},
                ),
            ],
        },
        "service": {
            "url": "http://api:8000",
            "readyz": {"status": 503, "body": {"ready": False, "reason": "redis unreachable"}},
        },
    }


def faulty_inventory() -> Inventory:
    inventory = Inventory(source="live")
    inventory.live = LiveState.from_json(faulty_state())
    inventory.add(
        {
            "kind": "ConfigMap",
            "metadata": {"name": "mochi", "namespace": "mochi"},
            "data": {"MOCHI_WORKERS": "2", "MOCHI_REDIS_URL": "redis://:s3cretpw@redis:6379"},
        }
    )
    inventory.add(
        {
            "kind": "Pod",
            "metadata": {
                "name": "ray-worker-x",
                "namespace": "mochi",
                "labels": {"ray.io/node-type": "worker"},
            },
            "status": {"containerStatuses": [{"image": "rayproject/ray:2.9.0-py310"}]},
        }
    )
    return inventory


def test_every_live_check_fires():
    live_codes = {c.code for c in all_checks() if c.needs_live}
    fired = {f.code for f in diagnose(faulty_inventory()).findings}
    assert live_codes - fired == set()


# Per live check, the resource it names and the literal its evidence quotes in faulty_state.
LIVE_FIRES_ON = {
    "AVAIL007": ("api://api:8000", "GET /readyz: 503"),
    "JOB001": ("job/" + "a" * 32, "lease_expires 1799999930 < server time 1800000000"),
    "JOB002": ("job/" + "c" * 32, "queued 900s"),
    "JOB003": ("job/" + "c" * 32, "163 frames 480x848; worker device memory GiB: [24.0]"),
    "JOB004": ("job/" + "b" * 32, "worker node-2:99:0 is not a live worker actor (by pid)"),
    "JOB005": ("job/*", "most common error (4x): output full"),
    "MEM006": ("job/" + "d" * 32, "metrics.peak_gpu_gib 30.00, predicted_peak_gib 20.00"),
    "NET006": ("redis://redis:6379", "dns: gaierror"),
    "PERM005": ("path:///data/videos", "Permission denied"),
    "RAY005": ("ray://ray-head:6379", "GET /api/gcs_healthz: GCS unavailable"),
    "RAY006": ("Pod/mochi/ray-worker-x", "image rayproject/ray:2.9.0-py310"),
    "RAY007": ("ray://ray-head:6379", "10.0.0.2 (worker): health check failed"),
    "RAY008": ("ray://ray-head:6379", "Ray job mochi-pool-1: status FAILED"),
    "RAY009": ("ray://ray-head:6379", "MOCHI_WORKERS=2; not alive: worker-1"),
    "RAY010": ("ray://ray-head:6379", "task generate t1"),
    "RAY015": ("ray://ray-head:6379", "group_error 'rendezvous: ranks did not finish"),
    "REDIS001": ("redis://redis:6379", "aof_enabled: 0; save: ''"),
    "REDIS002": ("redis://redis:6379", "maxmemory-policy: allkeys-lru; maxmemory: 0"),
    "REDIS003": ("redis://redis:6379", "evicted_keys: 12"),
    "REDIS004": ("redis://redis:6379", "PING without AUTH succeeded"),
    "REDIS006": ("redis://redis:6379", "maxmemory: 0.0 MiB (0 bytes)"),
}


def test_every_live_check_names_its_resource_and_evidence():
    assert set(LIVE_FIRES_ON) == {c.code for c in all_checks() if c.needs_live}
    findings = diagnose(faulty_inventory()).findings
    for code, (resource, evidence) in LIVE_FIRES_ON.items():
        found = [(f.resource, f.evidence) for f in findings if f.code == code]
        assert any(r == resource and evidence in e for r, e in found), (code, found)


def test_healthy_state_is_quiet():
    inventory = Inventory(source="live")
    state = faulty_state()
    inventory.live = LiveState.from_json(
        {
            "probes": [{"component": "redis", "target": "x", "ok": True}],
            "jobs": {
                "server_time": NOW,
                "jobs": [],
                "workers": {},
                "workers_seen": {},
                "pool_submission": "mochi-pool-1",
            },
            "ray": {
                **state["ray"],
                "client": {"ray": "2.60.0"},
                "gcs_health": {"healthy": True},
                "nodes": state["ray"]["nodes"][:1],
                "pending_tasks": [],
                "actors": [{**state["ray"]["actors"][0], "num_restarts": "0"}],
                "jobs": [{"submission_id": "mochi-pool-1", "status": "RUNNING"}],
            },
        }
    )
    assert diagnose(inventory).findings == []


def test_snapshot_redacts_and_diagnoses_the_same(tmp_path):
    inventory = faulty_inventory()
    write_snapshot(inventory, str(tmp_path))
    text = "".join(p.read_text() for p in tmp_path.iterdir())
    assert "s3cretpw" not in text
    offline = load_snapshot(str(tmp_path))
    live = {(f.code, f.resource, f.evidence) for f in diagnose(inventory).findings}
    again = {(f.code, f.resource, f.evidence) for f in diagnose(offline).findings}
    assert live == again


def test_a_written_snapshot_loads_back_the_same_typed_state(tmp_path):
    inventory = faulty_inventory()
    write_snapshot(inventory, str(tmp_path))
    assert load_snapshot(str(tmp_path)).live == inventory.live


def test_an_older_snapshot_loads_and_a_state_file_of_the_wrong_shape_is_skipped(tmp_path):
    (tmp_path / "probes.json").write_text(
        json.dumps([{"component": "redis", "target": "redis:6379", "ok": False, "kind": None}])
    )
    (tmp_path / "jobs.json").write_text(json.dumps({"server_time": NOW, "worker_ttl_seconds": 15}))
    (tmp_path / "ray.json").write_text(json.dumps({"address": "ray-head:6379", "nodes": {}}))
    (tmp_path / "service.json").write_text("[]")
    offline = load_snapshot(str(tmp_path))
    assert [(p.component, p.ok, p.kind, p.where) for p in offline.live.probes] == [
        ("redis", False, None, "doctor")
    ]
    assert offline.live.jobs == JobsState(server_time=NOW)
    assert offline.live.ray is None and offline.live.service is None
    reasons = {skipped.path.rsplit("/", 1)[-1]: skipped.reason for skipped in offline.skipped}
    assert reasons == {
        "ray.json": "is not the ray state a snapshot records: nodes is an object, not a list",
        "service.json": "is not the service state a snapshot records: a list, not an object",
    }


TTL_ASSUMED = "15s (the service's default, assumed: the input sets no MOCHI_WORKER_TTL_SECONDS)"


def heartbeat_inventory(ttl_setting: dict | None = None) -> Inventory:
    """A job queued for 15 minutes and one running on the only worker, last seen 100 s ago."""
    inventory = Inventory(source="live")
    inventory.live.jobs = JobsState(
        server_time=NOW,
        workers={WORKER: {"model": "genmo/mochi-1-preview", "device_memory_gib": 80.0}},
        workers_seen={WORKER: NOW - 100},
        jobs=[
            job("a" * 32, "running", worker=WORKER, heartbeat_at=NOW - 5, lease_expires=NOW + 25),
            job("c" * 32, "queued", created_at=NOW - 900),
        ],
    )
    if ttl_setting:
        inventory.add(ttl_setting)
    return inventory


def evidence(inventory: Inventory, code: str) -> list[str]:
    return [f.evidence for f in diagnose(inventory).findings if f.code == code]


def test_without_the_deployments_worker_ttl_the_default_is_assumed_and_said():
    inventory = heartbeat_inventory()
    assert evidence(inventory, "JOB002") == [
        f"oldest job {'c' * 32} queued 900s; queue length None; live workers 0, seen within the "
        f"worker TTL of {TTL_ASSUMED}"
    ]
    assert evidence(inventory, "JOB004") == [
        f"job {'a' * 32}: worker {WORKER} is not heartbeating within the worker TTL of "
        f"{TTL_ASSUMED}"
    ]


@pytest.mark.parametrize(
    ("setting", "source"),
    [
        (
            {
                "kind": "ConfigMap",
                "metadata": {"name": "mochi-settings", "namespace": "mochi"},
                "data": {"MOCHI_WORKER_TTL_SECONDS": "120"},
            },
            "ConfigMap mochi-settings MOCHI_WORKER_TTL_SECONDS",
        ),
        (
            {
                "kind": "Pod",
                "metadata": {"name": "api", "namespace": "mochi"},
                "spec": {
                    "containers": [
                        {
                            "name": "api",
                            "env": [{"name": "MOCHI_WORKER_TTL_SECONDS", "value": "120"}],
                        }
                    ]
                },
            },
            "Pod/mochi/api env MOCHI_WORKER_TTL_SECONDS",
        ),
    ],
)
def test_the_deployments_worker_ttl_decides_which_workers_are_live(setting, source):
    inventory = heartbeat_inventory(setting)
    assert evidence(inventory, "JOB004") == []  # seen 100 s ago: live within 120 s
    assert evidence(inventory, "JOB002") == [  # its one live worker is busy
        f"oldest job {'c' * 32} queued 900s; queue length None; live workers 1, seen within the "
        f"worker TTL of 120s ({source})"
    ]


def test_job003_names_the_frames_and_size_a_job_without_them_runs_with():
    inventory = Inventory(source="live")
    inventory.live.jobs = JobsState(
        server_time=NOW,
        workers={WORKER: {"model": "genmo/mochi-1-preview", "device_memory_gib": 4.0}},
        workers_seen={WORKER: NOW - 1},
        jobs=[job("c" * 32, "queued", created_at=NOW - 10, params={"prompt": "p"})],
    )
    assert evidence(inventory, "JOB003") == [
        f"job {'c' * 32}: {DEFAULTS['num_frames']} frames {DEFAULTS['height']}x"
        f"{DEFAULTS['width']}; worker device memory GiB: [4.0]; live workers: those seen within "
        f"the worker TTL of {TTL_ASSUMED}"
    ]


def test_redact_text():
    text = "redis://:hunter22@redis:6379 token=abcdefgh Bearer xyz.abc.def mk_" + "a" * 30
    redacted = redact_text(text)
    for secret in ("hunter22", "abcdefgh", "xyz.abc.def", "a" * 30):
        assert secret not in redacted, redacted
    assert json.dumps(redacted)
