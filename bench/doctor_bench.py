"""Benchmark of `doctor diagnose`: a synthetic cluster snapshot (5,000 pods, 50,000 events,
200 nodes) diagnosed end to end, its scaling at 1x/2x/4x, and a side-by-side with checkov on the
field report's fixture manifests.

    .venv/bin/python bench/doctor_bench.py [--quick] [--skip-checkov]

Each measurement runs `doctor diagnose --snapshot DIR --format json` in a fresh process and
reports wall time (best of 3) and that process's peak RSS (VmHWM), so imports and parsing
count.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "doctor" / "fixtures"
CHECKOV_VENV = Path("/tmp/checkov-venv")
CHECKOV_VERSION = "3.3.30"
BASE = {"pods": 5000, "events": 50000, "nodes": 200}
PODS_PER_DEPLOYMENT = 20
NAMESPACES = 25

# The field report's faults (tests/doctor/fixtures/report_before), what the doctor reports for
# each, and the checkov checks that would count as finding it on the same resource.
REPORT_FAULTS = [
    ("hard-coded IPs 192.168.0.35 / 192.168.0.201", {"NET001"}, set()),
    ("Service name that names no Service (redis-service)", {"NET002"}, set()),
    ("init-container wait on a port the Service lacks", {"NET003"}, set()),
    ("invalid `ray start --ray-client-server-host`", {"RAY001"}, set()),
    ("ray[default] instead of ray[client] in the backend", {"RAY002"}, set()),
    ("Permission denied: '/data' (uid 1000, no fsGroup)", {"PERM001"}, set()),
    ("32Gi worker + 16 GB object store: OOM-killed", {"MEM001"}, {"CKV_K8S_12", "CKV_K8S_13"}),
    ("128Gi memory quota blocks the pods", {"QUOTA001", "QUOTA002"}, set()),
    ("old images served under a reused tag", {"SEC006"}, {"CKV_K8S_14", "CKV_K8S_15"}),
]
REPORT_FAULT_RESOURCES = {
    "CKV_K8S_12": "ray-worker",
    "CKV_K8S_13": "ray-worker",
    "CKV_K8S_14": "backend",
    "CKV_K8S_15": "backend",
}


def synthetic_snapshot(directory: Path, scale: float, seed: int = 7, as_yaml: bool = False) -> dict:
    """Write a kubectl-style dump (Lists, JSON or YAML) and return its object counts."""
    rng = random.Random(seed)
    pods_total = int(BASE["pods"] * scale)
    events_total = int(BASE["events"] * scale)
    nodes_total = int(BASE["nodes"] * scale)
    deployments = max(1, pods_total // PODS_PER_DEPLOYMENT)
    nodes = [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": f"node-{i:04d}",
                "labels": {"nvidia.com/gpu.memory": "81559", "kubernetes.io/os": "linux"},
            },
            "status": {"allocatable": {"cpu": "64", "memory": "512Gi", "nvidia.com/gpu": "8"}},
        }
        for i in range(nodes_total)
    ]
    workloads, pods, events = [], [], []
    for d in range(deployments):
        namespace = f"team-{d % NAMESPACES:02d}"
        name = f"app-{d:04d}"
        labels = {"app.kubernetes.io/name": name}
        container = {
            "name": "main",
            "image": f"registry.example.com/{name}:1.{d % 7}.0",
            "ports": [{"containerPort": 8080}],
            "env": [
                {"name": "UPSTREAM_URL", "value": f"http://app-{(d + 1) % deployments:04d}:80"},
                {"name": "LOG_LEVEL", "value": "info"},
            ],
            "resources": {
                "requests": {"cpu": "250m", "memory": "512Mi"},
                "limits": {"memory": "512Mi"},
            },
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080}},
        }
        workloads.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "replicas": PODS_PER_DEPLOYMENT,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [container]},
                    },
                },
                "status": {"replicas": PODS_PER_DEPLOYMENT, "readyReplicas": PODS_PER_DEPLOYMENT},
            }
        )
        workloads.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
            }
        )
        addresses = []
        for p in range(PODS_PER_DEPLOYMENT):
            pod_name = f"{name}-6d9f7c-{p:05d}"
            ip = f"10.{d // 250}.{d % 250}.{p + 2}"
            addresses.append({"ip": ip, "targetRef": {"kind": "Pod", "name": pod_name}})
            state = {"running": {"startedAt": "2025-08-04T10:00:00Z"}}
            last_state = {}
            roll = rng.random()
            if roll < 0.01:
                last_state = {"terminated": {"reason": "OOMKilled", "exitCode": 137}}
            elif roll < 0.015:
                state = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}}
                last_state = {"terminated": {"reason": "Error", "exitCode": 1, "message": "boom"}}
            pods.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": pod_name,
                        "namespace": namespace,
                        "labels": labels,
                        "ownerReferences": [{"kind": "ReplicaSet", "name": f"{name}-6d9f7c"}],
                    },
                    "spec": {
                        "containers": [container],
                        "nodeName": f"node-{p % max(nodes_total, 1):04d}",
                    },
                    "status": {
                        "phase": "Running",
                        "podIP": ip,
                        "conditions": [{"type": "Ready", "status": "True"}],
                        "containerStatuses": [
                            {
                                "name": "main",
                                "image": container["image"],
                                "imageID": f"{container['image']}@sha256:{d:064x}",
                                "ready": True,
                                "restartCount": 1 if last_state else 0,
                                "state": state,
                                "lastState": last_state,
                            }
                        ],
                    },
                }
            )
        workloads.append(
            {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": name, "namespace": namespace},
                "subsets": [{"addresses": addresses, "ports": [{"port": 8080}]}],
            }
        )
    reasons = [
        ("Normal", "Scheduled", "Successfully assigned {ns}/{pod} to node-0001"),
        ("Normal", "Pulled", "Container image already present on machine"),
        ("Normal", "Started", "Started container main"),
        ("Warning", "BackOff", "Back-off restarting failed container main in pod {pod}"),
        ("Warning", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503"),
    ]
    for e in range(events_total):
        pod = pods[e % len(pods)]
        kind, reason, message = reasons[e % len(reasons)]
        namespace, pod_name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        events.append(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{pod_name}.{e:08x}", "namespace": namespace},
                "involvedObject": {"kind": "Pod", "name": pod_name, "namespace": namespace},
                "reason": reason,
                "type": kind,
                "count": 1 + e % 5,
                "message": message.format(ns=namespace, pod=pod_name),
                "firstTimestamp": "2025-08-04T10:00:00Z",
                "lastTimestamp": "2025-08-04T10:05:00Z",
                "source": {"component": "kubelet", "host": "node-0001"},
            }
        )
    directory.mkdir(parents=True, exist_ok=True)
    for filename, items in (
        ("nodes.json", nodes),
        ("workloads.json", workloads),
        ("pods.json", pods),
        ("events.json", events),
    ):
        document = {"apiVersion": "v1", "kind": "List", "items": items}
        if as_yaml:
            dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
            text = yaml.dump(document, Dumper=dumper, default_flow_style=False)
            (directory / filename.replace(".json", ".yaml")).write_text(text)
        else:
            (directory / filename).write_text(json.dumps(document))
    return {"pods": len(pods), "events": len(events), "nodes": len(nodes)}


MEASURE = """
import sys, time, json
start = time.perf_counter()
from doctor.cli import main
imported = time.perf_counter()
code = main(["diagnose", "--snapshot", sys.argv[1], "--format", "json", "--output", sys.argv[2],
             "--fail-on", "never"])
end = time.perf_counter()
# VmHWM is this process's own peak RSS; ru_maxrss would include the parent's at fork time.
status = open("/proc/self/status").read()
hwm_kib = int(status.split("VmHWM:")[1].split()[0])
print(json.dumps({"code": code, "seconds": end - start, "work_seconds": end - imported,
                  "peak_mib": hwm_kib / 1024}))
"""


def measure(snapshot: Path, repeats: int = 3) -> dict:
    """The fastest of a few runs (timings on a shared machine only ever get slower)."""
    runs = [measure_once(snapshot) for _ in range(repeats)]
    return min(runs, key=lambda run: run["work_seconds"])


def measure_once(snapshot: Path) -> dict:
    report = snapshot / "report.out"
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(snapshot), str(report)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise SystemExit(f"doctor failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    findings = json.loads(report.read_text())["summary"]
    report.unlink()
    return {**result, "findings": findings["total"]}


def checkov_binary() -> Path | None:
    binary = CHECKOV_VENV / "bin" / "checkov"
    if binary.exists():
        return binary
    print(f"installing checkov=={CHECKOV_VERSION} into {CHECKOV_VENV} (separate venv) ...")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(CHECKOV_VENV)], check=True)
        subprocess.run(
            [str(CHECKOV_VENV / "bin" / "pip"), "install", "-q", f"checkov=={CHECKOV_VERSION}"],
            check=True,
            capture_output=True,
            timeout=900,
        )
    except (subprocess.SubprocessError, OSError) as error:
        print(f"checkov could not be installed: {error}")
        return None
    return binary if binary.exists() else None


def run_checkov(binary: Path, directory: Path) -> list[dict]:
    """checkov's failed checks on a fixture folder (Kubernetes and Dockerfile frameworks)."""
    done = subprocess.run(
        [
            str(binary),
            "-d",
            str(directory),
            "--framework",
            "kubernetes",
            "dockerfile",
            "--output",
            "json",
            "--quiet",
            "--compact",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "BC_SKIP_MAPPING": "TRUE", "HOME": tempfile.gettempdir()},
        timeout=600,
    )
    try:
        data = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"checkov output unreadable: {done.stderr[-1500:]}") from None
    reports = data if isinstance(data, list) else [data]
    return [f for r in reports for f in (r.get("results") or {}).get("failed_checks", [])]


def run_doctor(directory: Path) -> list[dict]:
    sys.path.insert(0, str(ROOT))
    from doctor.diagnose import diagnose
    from doctor.sources import load_manifests

    return [f.to_dict() for f in diagnose(load_manifests([str(directory)])).findings]


def compare_with_checkov() -> None:
    print("\n== checkov comparison (the field report's fixture manifests) ==")
    binary = checkov_binary()
    doctor_before = run_doctor(FIXTURES / "report_before")
    doctor_after = run_doctor(FIXTURES / "report_after")
    doctor_codes = {f["code"] for f in doctor_before}
    checkov_before = checkov_after = None
    if binary is not None:
        checkov_before = run_checkov(binary, FIXTURES / "report_before")
        checkov_after = run_checkov(binary, FIXTURES / "report_after")
    print(f"{'report fault':54} {'doctor':8} {'checkov':8}")
    doctor_found = checkov_found = 0
    for fault, codes, checkov_ids in REPORT_FAULTS:
        by_doctor = bool(codes & doctor_codes)
        by_checkov = checkov_before is not None and any(
            f["check_id"] in checkov_ids
            and REPORT_FAULT_RESOURCES.get(f["check_id"], "") in f.get("resource", "")
            for f in checkov_before
        )
        doctor_found += by_doctor
        checkov_found += by_checkov
        shown = "n/a" if checkov_before is None else ("found" if by_checkov else "missed")
        print(f"{fault:54} {'found' if by_doctor else 'missed':8} {shown:8}")
    total = len(REPORT_FAULTS)
    if checkov_before is None:
        print(f"report faults found: doctor {doctor_found}/{total}; checkov not installed")
        print(f"findings on the clean config: doctor {len(doctor_after)}")
        return
    print(f"report faults found: doctor {doctor_found}/{total}, checkov {checkov_found}/{total}")
    print(
        f"findings on the broken config: doctor {len(doctor_before)}, "
        f"checkov {len(checkov_before)} failed checks"
    )
    print(
        f"findings on the clean (fixed) config: doctor {len(doctor_after)}, "
        f"checkov {len(checkov_after)} failed checks"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="scaling at 0.25/0.5/1x only")
    parser.add_argument("--skip-checkov", action="store_true")
    args = parser.parse_args()
    scales = (0.25, 0.5, 1.0) if args.quick else (1.0, 2.0, 4.0)
    workdir = Path(tempfile.mkdtemp(prefix="doctor-bench-"))
    try:
        print("== synthetic snapshot (kubectl get -o json Lists) ==")
        rows = []
        for scale in scales:
            directory = workdir / f"x{scale:g}"
            counts = synthetic_snapshot(directory, scale)
            size_mb = sum(p.stat().st_size for p in directory.iterdir()) / 1e6
            result = measure(directory)
            rows.append((scale, counts, size_mb, result))
            shutil.rmtree(directory)
            print(
                f"{scale:>4g}x: {counts['pods']:>6} pods {counts['events']:>7} events "
                f"{counts['nodes']:>4} nodes ({size_mb:6.1f} MB JSON): "
                f"{result['seconds']:6.2f} s (load+check {result['work_seconds']:.2f} s), "
                f"peak {result['peak_mib']:7.1f} MiB, "
                f"{result['findings']} findings"
            )
        base = next((r for r in rows if r[0] == 1.0), None)
        if base is not None:
            verdict = base[3]["seconds"] < 5 and base[3]["peak_mib"] < 1024
            print(
                f"target (5,000 pods / 50,000 events / 200 nodes): < 5 s and < 1 GB: "
                f"{'met' if verdict else 'NOT met'} ({base[3]['seconds']:.2f} s, "
                f"{base[3]['peak_mib']:.0f} MiB)"
            )
        if not args.quick:
            directory = workdir / "yaml"
            synthetic_snapshot(directory, 1.0, as_yaml=True)
            result = measure(directory, repeats=1)
            print(
                f"  1x as kubectl -o yaml: {result['seconds']:6.2f} s (load+check "
                f"{result['work_seconds']:.2f} s), peak {result['peak_mib']:7.1f} MiB, "
                f"{result['findings']} findings"
            )
            shutil.rmtree(directory)
        first = rows[0]
        for scale, _, _, result in rows[1:]:
            ratio = result["work_seconds"] / first[3]["work_seconds"]
            print(
                f"load+check time at {scale / first[0]:g}x the input: {ratio:.2f}x "
                f"(linear = {scale / first[0]:g}x)"
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if not args.skip_checkov:
        compare_with_checkov()
    driver_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of the bench driver: {driver_mib:.0f} MiB")


if __name__ == "__main__":
    main()
