"""Each check fires where its input shows the fault and stays quiet on the fixed config."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from doctor.addresses import service_reference
from doctor.diagnose import diagnose
from doctor.registry import all_checks
from doctor.sources import load_manifests

FIRES_IN = {
    "NET001": "before",
    "NET002": "before",
    "NET003": "before",
    "NET004": "snapshot_faulty",
    "NET005": "snapshot_faulty",
    "RAY001": "before",
    "RAY002": "before",
    "RAY003": "before",
    "RAY004": "kuberay",
    "PERM001": "before",
    "PERM006": "before",
    "PERM003": "kuberay",
    "PERM004": "snapshot_faulty",
    "MEM001": "before",
    "MEM002": "before",
    "MEM003": "kuberay",
    "MEM004": "kuberay",
    "MEM005": "snapshot_faulty",
    "QUOTA001": "kuberay",
    "QUOTA002": "before",
    "QUOTA003": "snapshot_faulty",
    "QUOTA004": "snapshot_faulty",
    "SEC001": "kuberay",
    "SEC002": "before",
    "SEC003": "before",
    "SEC004": "before",
    "SEC005": "kuberay",
    "REDIS005": "kuberay",
    "SEC006": "before",
    "SEC007": "snapshot_faulty",
    "AVAIL001": "snapshot_faulty",
    "AVAIL002": "snapshot_faulty",
    "AVAIL003": "snapshot_faulty",
    "AVAIL004": "snapshot_faulty",
    "AVAIL005": "snapshot_faulty",
    "AVAIL006": "before",
}
# Checks whose firing inputs are in a test module of their own.
FIRES_IN_OWN_TEST = {
    "RAY014": "test_job_groups.py",
    "RAY016": "test_job_groups.py",
    "RAY017": "test_job_groups.py",
    "PERM002": "test_doctor_checks.py",
    "REDIS007": "test_secrets_redis.py",
    "AVAIL008": "test_scheduling.py",
    "NET007": "test_scheduling.py",
    "RAY011": "test_kuberay_status.py",
    "RAY012": "test_kuberay_status.py",
    "RAY013": "test_kuberay_status.py",
    "CONF001": "test_input_handling.py",
    "CONF002": "test_input_handling.py",
}


def test_every_check_has_a_firing_fixture():
    # Checks of live state (Ray, Redis, jobs, probes) fire in tests/doctor_live, on a recorded
    # live snapshot and on the real embedded stack.
    codes = {c.code for c in all_checks() if not c.needs_live}
    assert set(FIRES_IN) | set(FIRES_IN_OWN_TEST) == codes
    here = Path(__file__).parent
    for code, module in FIRES_IN_OWN_TEST.items():
        assert f'"{code}"' in (here / module).read_text(), f"{module} never names {code}"


@pytest.mark.parametrize("code", sorted(FIRES_IN))
def test_check_fires(code, results):
    assert code in {f.code for f in results[FIRES_IN[code]].findings}


# Per check, the object it names and the literal its evidence quotes in its fixture.
FIRES_ON = {
    "AVAIL001": ("Pod/mochi-video-gen/backend-7c9b5d-x1x1x", "restarting failed container=backend"),
    "AVAIL002": (
        "Pod/mochi-video-gen/frontend-5f4c8-qqqqq",
        '"glususer/mochi-frontend:ray-client-fix": not found',
    ),
    "AVAIL003": ("Pod/mochi-video-gen/ray-worker-6d9f7c-fghij", "4 Insufficient nvidia.com/gpu"),
    "AVAIL004": (
        "PersistentVolumeClaim/mochi-video-gen/video-storage",
        'storageclass.storage.k8s.io "nfs-client" not found',
    ),
    "AVAIL005": ("Deployment/mochi-video-gen/backend", "spec.replicas: 3, status.readyReplicas: 1"),
    "AVAIL006": (
        "Deployment/mochi-video-gen/backend",
        "container backend: no readinessProbe, no livenessProbe",
    ),
    "MEM001": (
        "Deployment/mochi-video-gen/ray-worker",
        "limits.memory: 32Gi; --object-store-memory=16000000000",
    ),
    "MEM002": ("Deployment/mochi-video-gen/ray-worker", "no volumeMount at /dev/shm"),
    "MEM003": ("RayCluster/video/mochi", "requests.memory: 32Gi, limits.memory: 40Gi"),
    "MEM004": ("RayCluster/video/mochi", "MOCHI_WORKER_GPU_MEMORY_GIB=24"),
    "MEM005": (
        "Pod/mochi-video-gen/ray-worker-6d9f7c-abcde",
        "lastState.terminated.reason: OOMKilled, exitCode 137",
    ),
    "NET001": ("ConfigMap/mochi-video-gen/mochi-config", "ray://192.168.0.35:10001"),
    "NET002": ("ConfigMap/mochi-video-gen/mochi-config", "REDIS_HOST=redis-service, port 6379"),
    "NET003": ("Deployment/mochi-video-gen/backend", "nc -z ray-head-service 6379"),
    "NET004": (
        "Service/mochi-video-gen/redis",
        "Endpoints/mochi-video-gen/redis: no ready addresses",
    ),
    "NET005": ("Pod/video/mochi-gpu-worker-7xk2p", "initContainer wait-gcs-ready: running since"),
    "PERM001": ("Deployment/mochi-video-gen/ray-worker", "OUTPUT_DIR=/data/videos on mount /data"),
    "PERM003": (
        "RayCluster/video/mochi",
        "MOCHI_OUTPUT_DIR=/mnt/out/videos on mount /mnt/out, readOnly",
    ),
    "PERM004": ("Pod/mochi-video-gen/backend-7c9b5d-x1x1x", "Permission denied: '/data'"),
    "PERM006": (
        "PersistentVolumeClaim/mochi-video-gen/video-storage",
        "accessModes: ['ReadWriteOnce']",
    ),
    "QUOTA001": ("ResourceQuota/video/compute", "hard.requests.memory: 96Gi; requested 108.0Gi"),
    "QUOTA002": (
        "ResourceQuota/mochi-video-gen/mochi-quota",
        "hard.requests.memory: 128Gi; requested 131.5Gi",
    ),
    "QUOTA003": (
        "Deployment/mochi-video-gen/ray-worker",
        "nvidia.com/gpu: 4 per pod; nodes allocatable max 2",
    ),
    "QUOTA004": ("ReplicaSet/mochi-video-gen/ray-worker-6d9f7c", "exceeded quota: mochi-quota"),
    "RAY001": ("Deployment/mochi-video-gen/ray-head", "--ray-client-server-host=0.0.0.0"),
    "RAY002": ("Deployment/mochi-video-gen/backend", "ray[default]==2.9.0 in "),
    "RAY003": (
        "Deployment/mochi-video-gen/backend",
        "client glususer/mochi-backend:latest vs cluster rayproject/ray:2.9.0-py310-gpu",
    ),
    "RAY004": ("RayCluster/video/mochi", "--node-ip-address=0.0.0.0"),
    "REDIS005": (
        "StatefulSet/video/kv",
        "REDIS_AOF_ENABLED=yes; dir /bitnami/redis/data; no volume",
    ),
    "SEC001": ("RayCluster/video/mochi", "type: LoadBalancer"),
    "SEC002": (
        "Namespace/mochi-video-gen/mochi-video-gen",
        "no NetworkPolicy in namespace mochi-video-gen",
    ),
    "SEC003": ("Deployment/mochi-video-gen/redis", "no requirepass"),
    "SEC004": ("Deployment/mochi-video-gen/backend", "Dockerfile: no USER (runs as root)"),
    "SEC005": ("StatefulSet/video/kv", "REDIS_PASSWORD=hu*** (14 chars)"),
    "SEC006": (
        "Deployment/mochi-video-gen/frontend",
        "image: glususer/mochi-frontend:latest, imagePullPolicy: IfNotPresent",
    ),
    "SEC007": (
        "ReplicaSet/mochi-video-gen/backend-7c9b5d",
        "sha256:aaaaaaaaaaaa: backend-7c9b5d-x1x1x",
    ),
}


def test_every_fixture_check_names_its_resource_and_evidence():
    assert set(FIRES_ON) == set(FIRES_IN)


@pytest.mark.parametrize("code", sorted(FIRES_ON))
def test_check_names_the_resource_and_quotes_the_evidence(code, results):
    resource, evidence = FIRES_ON[code]
    found = [f for f in results[FIRES_IN[code]].findings if f.code == code]
    assert any(f.resource == resource and evidence in f.evidence for f in found), [
        (f.resource, f.evidence) for f in found
    ]


@pytest.mark.parametrize("code", sorted(FIRES_IN))
def test_check_quiet_on_fixed_config(code, results):
    assert code not in {f.code for f in results["after+healthy"].findings}


def diagnose_yaml(tmp_path, text: str, **files: str):
    (tmp_path / "objects.yaml").write_text(textwrap.dedent(text))
    for name, content in files.items():
        path = tmp_path / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content))
    return diagnose(load_manifests([str(tmp_path)]))


def codes_of(result) -> list[str]:
    return sorted(f.code for f in result.findings)


RAY_POD = """
apiVersion: v1
kind: Pod
metadata: {{name: head, namespace: ns, labels: {{app: head}}}}
spec:
  containers:
    - name: ray
      image: rayproject/ray:2.9.0
      command: ["bash", "-c", "{command}"]
"""


def test_ray_flags_come_from_rays_own_command_definition(tmp_path):
    from ray.scripts.scripts import start

    every_flag = " ".join(
        opt if getattr(p, "is_flag", False) else f"{opt}=1"
        for p in start.params
        for opt in p.opts
        if opt.startswith("--")
    )
    clean = diagnose_yaml(tmp_path, RAY_POD.format(command=f"ray start --head {every_flag}"))
    assert "RAY001" not in codes_of(clean)
    bad = diagnose_yaml(tmp_path, RAY_POD.format(command="ray start --head --gcs-port=6379"))
    assert [f.evidence for f in bad.findings if f.code == "RAY001"] == ["--gcs-port=6379"]


def test_ray_flag_with_separate_value_and_shell_chain(tmp_path):
    command = "ulimit -n 65536 && ray start --head --port 6379 --block && echo done --not-ray"
    assert "RAY001" not in codes_of(diagnose_yaml(tmp_path, RAY_POD.format(command=command)))


@pytest.mark.parametrize(
    "host, expected",
    [
        ("redis", ("ns", "redis")),
        ("redis.other", ("other", "redis")),
        ("redis.other.svc", ("other", "redis")),
        ("redis.other.svc.cluster.local", ("other", "redis")),
        ("huggingface.co", None),
        ("10.0.0.1", None),
        ("localhost", None),
    ],
)
def test_service_reference_forms(host, expected):
    assert service_reference(host, "ns", {"ns", "other"}) == expected


SERVICES = """
apiVersion: v1
kind: Service
metadata: {name: redis, namespace: other}
spec: {selector: {app: redis}, ports: [{port: 6379}]}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: ns}
spec: {selector: {app: api}, ports: [{port: 8000}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: ns}
spec:
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
        - name: api
          image: api:1.0
          readinessProbe: {httpGet: {port: 8000}}
          env:
            - {name: REDIS_URL, value: "%s"}
"""


@pytest.mark.parametrize(
    "url, code",
    [
        ("redis://redis.other.svc.cluster.local:6379/0", None),
        ("redis://redis.other:6379/0", None),
        ("redis://redis.other:6380/0", "NET003"),
        ("redis://cache.other.svc:6379/0", "NET002"),
        ("redis://10.1.2.3:6379/0", "NET001"),
    ],
)
def test_addresses_in_every_form(tmp_path, url, code):
    # The redis Service here fronts no workload of the input (NET007).
    found = [
        c
        for c in codes_of(diagnose_yaml(tmp_path, SERVICES % url))
        if c.startswith("NET") and c != "NET007"
    ]
    assert found == ([code] if code else [])


SHARED_OUTPUT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: worker, namespace: ns}
spec:
  replicas: 2
  template:
    spec:
      securityContext: {fsGroup: 1000}
      containers:
        - name: ray
          image: rayproject/ray:2.9.0
          command: ["ray", "start", "--address=head:6379", "--block"]
          env: [{name: MOCHI_OUTPUT_DIR, value: /data/videos}]
          volumeMounts: [{name: out, mountPath: /data}]
      volumes:
        - name: out
          %s
"""


def test_output_on_local_storage_is_not_shared(tmp_path):
    local = diagnose_yaml(tmp_path, SHARED_OUTPUT % "emptyDir: {}")
    assert "PERM002" in codes_of(local)
    [finding] = [f for f in local.findings if f.code == "PERM002"]
    assert finding.resource == "Deployment/ns/worker"
    assert finding.evidence == "MOCHI_OUTPUT_DIR=/data/videos on mount /data (emptyDir volume out)"
    shared = diagnose_yaml(tmp_path, SHARED_OUTPUT % "persistentVolumeClaim: {claimName: out}")
    assert "PERM002" not in codes_of(shared)
    assert "PERM001" not in codes_of(shared)  # fsGroup makes the claim writable


EXPOSED = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: head, namespace: ns}
spec:
  template:
    metadata: {labels: {app: head}}
    spec:
      containers:
        - name: ray
          image: rayproject/ray:2.9.0
          command: ["ray", "start", "--head", "--dashboard-host=0.0.0.0", "--block"]
---
apiVersion: v1
kind: Service
metadata: {name: dash, namespace: ns}
spec:
  type: %s
  selector: {app: head}
  ports: [{port: 8265}]
"""


def test_dashboard_exposed_by_service_type(tmp_path):
    assert "SEC001" in codes_of(diagnose_yaml(tmp_path, EXPOSED % "NodePort"))
    assert "SEC001" not in codes_of(diagnose_yaml(tmp_path, EXPOSED % "ClusterIP"))


REDIS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: redis, namespace: ns}
spec:
  template:
    spec:
      containers:
        - name: redis
          image: redis:7.2
          args: ["redis-server", "/conf/redis.conf"]
          volumeMounts: [{name: conf, mountPath: /conf}]
      volumes:
        - name: conf
          configMap: {name: redis-conf}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: redis-conf, namespace: ns}
data:
  redis.conf: |
    appendonly yes
    %s
"""


def test_redis_password_in_a_config_file(tmp_path):
    assert "SEC003" not in codes_of(diagnose_yaml(tmp_path, REDIS % "requirepass from-secret"))
    assert "SEC003" in codes_of(diagnose_yaml(tmp_path, REDIS % "# no password"))


def test_memory_check_uses_the_memory_model(tmp_path):
    from service.memory_model import worker_host_memory_gib

    command = "ray start --address=head:6379 --object-store-memory=%d --block"
    pod = RAY_POD.replace("head, namespace", "w, namespace").replace(
        "image: rayproject/ray:2.9.0",
        "image: rayproject/ray:2.9.0\n      resources: {{limits: {{memory: 64Gi}}}}"
        "\n      env: [{{name: MOCHI_MODEL, value: genmo/mochi-1-preview}}]",
    )
    fits = 64 - worker_host_memory_gib(1, 0)  # GiB left for the object store
    under = diagnose_yaml(tmp_path, pod.format(command=command % int((fits - 0.5) * 2**30)))
    over = diagnose_yaml(tmp_path, pod.format(command=command % int((fits + 0.5) * 2**30)))
    assert "MEM001" not in codes_of(under)
    assert "MEM001" in codes_of(over)


def test_every_check_module_is_named_in_the_explicit_list():
    from doctor import checks

    files = {p.stem for p in Path(checks.__file__).parent.glob("*.py") if p.stem != "__init__"}
    assert set(checks.CHECK_MODULE_NAMES) == files
    assert {c.run.__module__ for c in all_checks()} == {m.__name__ for m in checks.CHECK_MODULES}
