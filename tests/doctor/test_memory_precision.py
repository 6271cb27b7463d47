"""MEM00x and RAY00x on third-party Ray deployments: the Mochi memory model only for pods that
run this project's worker, Ray's own rules for every other Ray pod, rayStartParams as KubeRay
writes them (keys without dashes, string values), and shell scripts around `ray start`."""

from __future__ import annotations

import textwrap

import pytest

from doctor.diagnose import diagnose
from doctor.sources import load_manifests


def diagnose_yaml(tmp_path, text: str):
    (tmp_path / "objects.yaml").write_text(textwrap.dedent(text))
    return diagnose(load_manifests([str(tmp_path)]))


def findings(result, code: str) -> list:
    return [f for f in result.findings if f.code == code]


# KubeRay's ray-cluster.sample.yaml shape: a CPU-only cluster, 1Gi workers.
CPU_CLUSTER = """
apiVersion: ray.io/v1
kind: RayCluster
metadata: {name: raycluster-kuberay, namespace: default}
spec:
  rayVersion: "2.52.0"
  headGroupSpec:
    rayStartParams: {}
    template:
      spec:
        containers:
        - name: ray-head
          image: rayproject/ray:2.52.0
          resources:
            limits: {cpu: "1", memory: %(head)s}
            requests: {cpu: "1", memory: %(head)s}
  workerGroupSpecs:
  - replicas: 1
    minReplicas: 1
    maxReplicas: 5
    groupName: workergroup
    rayStartParams: {%(worker_params)s}
    template:
      spec:
        containers:
        - name: ray-worker
          image: rayproject/ray:2.52.0
          resources:
            limits: {cpu: "1", memory: 1Gi}
            requests: {cpu: "1", memory: 1Gi}
"""


def cpu_cluster(head: str = "5Gi", worker_params: str = "") -> str:
    return CPU_CLUSTER % {"head": head, "worker_params": worker_params}


def test_cpu_only_cluster_gets_no_memory_finding(tmp_path):
    result = diagnose_yaml(tmp_path, cpu_cluster())
    for code in ("MEM001", "MEM002", "MEM003", "MEM004"):
        assert findings(result, code) == [], code


@pytest.mark.parametrize("head", ["2Gi", "2G", "4Gi"])
def test_head_at_rays_documented_minimum_is_fine(tmp_path, head):
    assert findings(diagnose_yaml(tmp_path, cpu_cluster(head=head)), "MEM001") == []


def test_head_below_rays_documented_minimum_is_a_warning(tmp_path):
    [finding] = findings(diagnose_yaml(tmp_path, cpu_cluster(head="1Gi")), "MEM001")
    assert finding.resource == "RayCluster/default/raycluster-kuberay"
    assert finding.severity == "warning"
    assert "(head group)" in finding.message
    assert "Ray's documented minimum for a head (2G)" in finding.message
    assert "Mochi" not in finding.message
    assert finding.evidence == "limits.memory: 1Gi"


def test_object_store_above_the_limit_is_an_error_by_rays_own_check(tmp_path):
    params = 'object-store-memory: "2000000000"'  # 1.9 GiB in a 1Gi worker
    [finding] = findings(diagnose_yaml(tmp_path, cpu_cluster(worker_params=params)), "MEM001")
    assert finding.resource == "RayCluster/default/raycluster-kuberay"
    assert finding.severity == "error"
    assert "(workergroup group)" in finding.message
    assert "Ray's own start-up check for a worker" in finding.message
    assert "greater than the total available memory" in finding.message
    assert finding.evidence == "limits.memory: 1Gi; --object-store-memory=2000000000"


def test_unexpanded_object_store_variable_is_not_judged(tmp_path):
    params = 'object-store-memory: "$(OBJECT_STORE_BYTES)"'
    assert findings(diagnose_yaml(tmp_path, cpu_cluster(worker_params=params)), "MEM001") == []


# KubeRay's ray-cluster.tpu-v4-singlehost.yaml shape.
TPU_CLUSTER = """
apiVersion: ray.io/v1
kind: RayCluster
metadata: {name: raycluster-tpu-v4-singlehost, namespace: default}
spec:
  headGroupSpec:
    rayStartParams: {}
    template:
      spec:
        containers:
        - name: ray-head
          image: rayproject/ray:2.52.0
          resources:
            limits: {cpu: "1", memory: 2G}
            requests: {cpu: "1", memory: 2G}
  workerGroupSpecs:
  - replicas: 1
    groupName: tpu-group
    numOfHosts: 1
    rayStartParams:
      resources: '"{\\"TPU\\": 4}"'
    template:
      spec:
        containers:
        - name: ray-worker
          image: rayproject/ray:2.52.0-py310
          resources:
            limits: {cpu: "1", ephemeral-storage: 20Gi, google.com/tpu: "4", memory: 40G}
            requests: {cpu: "1", ephemeral-storage: 10Gi, google.com/tpu: "4", memory: 40G}
        nodeSelector:
          cloud.google.com/gke-tpu-accelerator: tpu-v4-podslice
          cloud.google.com/gke-tpu-topology: 2x2x1
"""


def test_tpu_worker_gets_no_mochi_finding(tmp_path):
    result = diagnose_yaml(tmp_path, TPU_CLUSTER)
    assert findings(result, "MEM001") == []
    assert findings(result, "MEM004") == []
    assert findings(result, "RAY001") == []


# A RayService serving vLLM on one GPU per worker, on nodes that report 24 GiB GPUs.
VLLM_SERVICE = """
apiVersion: ray.io/v1
kind: RayService
metadata: {name: llama-3-8b, namespace: llm}
spec:
  serveConfigV2: |
    applications:
    - name: llm
      import_path: ray.serve.llm:build_openai_app
  rayClusterConfig:
    headGroupSpec:
      rayStartParams: {dashboard-host: "0.0.0.0", num-cpus: "0"}
      template:
        spec:
          containers:
          - name: ray-head
            image: rayproject/ray-llm:2.52.0-py311-cu128
            resources:
              limits: {cpu: "2", memory: 8Gi}
              requests: {cpu: "2", memory: 8Gi}
    workerGroupSpecs:
    - groupName: gpu-group
      replicas: 1
      rayStartParams: {}
      template:
        spec:
          containers:
          - name: llm
            image: rayproject/ray-llm:2.52.0-py311-cu128
            env:
            - {name: HUGGING_FACE_HUB_TOKEN, valueFrom: {secretKeyRef: {name: hf, key: token}}}
            - {name: VLLM_USE_V1, value: "1"}
            resources:
              limits: {cpu: "8", memory: 16Gi, nvidia.com/gpu: "1"}
              requests: {cpu: "8", memory: 16Gi, nvidia.com/gpu: "1"}
---
apiVersion: v1
kind: Node
metadata:
  name: gpu-node-1
  labels: {nvidia.com/gpu.memory: "24576", nvidia.com/gpu.product: NVIDIA-L4}
"""


def test_vllm_gpu_worker_gets_no_mochi_finding(tmp_path):
    result = diagnose_yaml(tmp_path, VLLM_SERVICE)
    assert findings(result, "MEM001") == []
    assert findings(result, "MEM004") == []
    assert findings(result, "MEM002") == []  # KubeRay mounts /dev/shm for RayService pods too


def test_mochi_worker_in_a_kuberay_cluster_is_judged_by_the_mochi_model(tmp_path):
    mochi = VLLM_SERVICE.replace(
        '- {name: VLLM_USE_V1, value: "1"}', "- {name: MOCHI_MODEL, value: genmo/mochi-1-preview}"
    )
    result = diagnose_yaml(tmp_path, mochi)
    [memory] = findings(result, "MEM001")
    assert memory.resource == "RayService/llm/llama-3-8b"
    assert memory.severity == "error"
    assert "(gpu-group group)" in memory.message
    assert "by the Mochi-1 worker model (genmo/mochi-1-preview" in memory.message
    assert "limits.memory: 16Gi" in memory.evidence
    assert "Mochi worker: env MOCHI_MODEL of container llm" in memory.evidence
    [gpu] = findings(result, "MEM004")
    assert gpu.severity == "error"
    assert "by the Mochi-1 worker model" in gpu.message and "does not fit" in gpu.message
    assert gpu.evidence.startswith("node label nvidia.com/gpu.memory=24576")


def test_fp8_mochi_workers_are_judged_with_fp8_weights(tmp_path):
    """On the 24 GiB L4 the largest job (163 frames at 848x848) needs 33.7 GiB in bf16
    (offloaded, tiled); the DiT's Linear weights in one byte each lower it to the tiled decode's
    32.6 GiB, and so do two ranks per job (rank 0's DiT share halves): both above the 21.8 GiB
    usable."""
    settings = "- {name: MOCHI_MODEL, value: genmo/mochi-1-preview}"
    bf16_two_ranks = VLLM_SERVICE.replace(
        '- {name: VLLM_USE_V1, value: "1"}',
        settings + '\n            - {name: MOCHI_GPUS_PER_JOB, value: "2"}',
    )
    fp8 = VLLM_SERVICE.replace(
        '- {name: VLLM_USE_V1, value: "1"}',
        settings + "\n            - {name: MOCHI_DIT_PRECISION, value: fp8}",
    )
    assert "MOCHI_GPUS_PER_JOB" in bf16_two_ranks and "MOCHI_DIT_PRECISION" in fp8
    [gpu] = findings(diagnose_yaml(tmp_path, bf16_two_ranks), "MEM004")
    assert "peak 32.6 GiB, does not fit in 21.8 GiB usable per GPU of 2 (rank 0" in gpu.message
    [fp8_gpu] = findings(diagnose_yaml(tmp_path, fp8), "MEM004")
    assert "fp8 DiT, tiled VAE decode: predicted peak 32.6 GiB, does not fit" in fp8_gpu.message


# A plain Deployment running `ray start` (no KubeRay): Docker's 64 MiB /dev/shm applies.
RAY_DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: ray-worker, namespace: batch}
spec:
  replicas: 2
  selector: {matchLabels: {app: ray-worker}}
  template:
    metadata: {labels: {app: ray-worker}}
    spec:
      containers:
      - name: ray
        image: rayproject/ray:2.52.0
        command: ["/bin/bash", "-c"]
        args:
        - |
          ulimit -n 65536
          ray start --address="${RAY_HEAD_SERVICE_HOST}:6379" \\
            --node-ip-address=$MY_POD_IP --num-cpus=$(nproc) --block &
          python -m app.worker --concurrency 4 -v
        env:
        - name: MY_POD_IP
          valueFrom: {fieldRef: {fieldPath: status.podIP}}
        resources:
          requests: {cpu: "4", memory: 4Gi}
          limits: {cpu: "4", memory: 8Gi}
"""


def test_plain_ray_deployment_shm_and_requests(tmp_path):
    result = diagnose_yaml(tmp_path, RAY_DEPLOYMENT)
    [shm] = findings(result, "MEM002")
    assert shm.resource == "Deployment/batch/ray-worker"
    assert shm.severity == "warning"
    assert "no memory-backed /dev/shm" in shm.message
    [request] = findings(result, "MEM003")
    assert request.severity == "warning"
    assert request.evidence == "requests.memory: 4Gi, limits.memory: 8Gi"
    assert findings(result, "MEM001") == []


def test_script_lines_after_ray_start_are_not_its_flags(tmp_path):
    result = diagnose_yaml(tmp_path, RAY_DEPLOYMENT)
    assert findings(result, "RAY001") == []  # --concurrency and -v belong to python
    assert findings(result, "RAY004") == []  # $MY_POD_IP is the pod IP


def test_a_bad_flag_on_a_continued_line_is_found(tmp_path):
    bad = RAY_DEPLOYMENT.replace("--num-cpus=$(nproc)", "--gcs-port=6379")
    [finding] = findings(diagnose_yaml(tmp_path, bad), "RAY001")
    assert finding.resource == "Deployment/batch/ray-worker"
    assert finding.severity == "error"
    assert finding.evidence == "--gcs-port=6379"


def test_kuberay_params_without_dashes_and_string_values(tmp_path):
    params = (
        'num-cpus: "0", dashboard-host: "0.0.0.0", block: "true", '
        'metrics-export-port: "8080", node-ip-address: "$MY_POD_IP"'
    )
    result = diagnose_yaml(tmp_path, cpu_cluster(worker_params=params))
    assert findings(result, "RAY001") == []
    assert findings(result, "RAY004") == []


def test_kuberay_param_that_ray_start_lacks(tmp_path):
    result = diagnose_yaml(tmp_path, cpu_cluster(worker_params='gcs-port: "6379"'))
    [finding] = findings(result, "RAY001")
    assert finding.resource == "RayCluster/default/raycluster-kuberay"
    assert "rayStartParams flag --gcs-port" in finding.message
    assert finding.evidence == "--gcs-port=6379"


def test_kuberay_wildcard_node_ip(tmp_path):
    result = diagnose_yaml(tmp_path, cpu_cluster(worker_params='node-ip-address: "0.0.0.0"'))
    [finding] = findings(result, "RAY004")
    assert finding.severity == "warning"
    assert finding.evidence == "--node-ip-address=0.0.0.0"


# KubeRay's ray-cluster.overwrite-command.yaml shape: the container's own command runs.
OVERWRITE = """
apiVersion: ray.io/v1
kind: RayCluster
metadata:
  name: raycluster-overwrite-cmd
  namespace: default
  annotations: {ray.io/overwrite-container-cmd: "true"}
spec:
  headGroupSpec:
    rayStartParams: {num-cpus: "0"}
    template:
      spec:
        containers:
        - name: ray-head
          image: rayproject/ray:2.52.0
          command: ["/bin/bash", "-c", "--"]
          args: ["ulimit -n 65536; echo head; %s"]
          resources:
            limits: {cpu: "1", memory: 5Gi}
            requests: {cpu: "1", memory: 5Gi}
"""


def test_overwritten_command_running_the_generated_ray_start(tmp_path):
    result = diagnose_yaml(tmp_path, OVERWRITE % "$KUBERAY_GEN_RAY_START_CMD")
    assert findings(result, "RAY001") == []


def test_overwritten_command_with_its_own_ray_start(tmp_path):
    result = diagnose_yaml(tmp_path, OVERWRITE % "ray start --head --block --redis-port=6379")
    [finding] = findings(result, "RAY001")
    assert finding.message.startswith(
        "RayCluster/default/raycluster-overwrite-cmd (head group): ray start flag --redis-port"
    )
    assert finding.evidence == "--redis-port=6379"


CLIENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: notebook, namespace: default}
spec:
  selector: {matchLabels: {app: notebook}}
  template:
    metadata: {labels: {app: notebook}}
    spec:
      containers:
      - name: jupyter
        image: rayproject/ray:2.9.0-py310
        env:
        - {name: RAY_ADDRESS, value: "ray://raycluster-kuberay-head-svc:10001"}
%s
"""


def test_client_version_skew_names_both_versions(tmp_path):
    result = diagnose_yaml(tmp_path, cpu_cluster() + "---" + CLIENT % "")
    [finding] = findings(result, "RAY003")
    assert finding.resource == "Deployment/default/notebook"
    assert "Ray 2.9.0 vs cluster Ray 2.52.0" in finding.message


def test_client_that_turns_the_version_check_off(tmp_path):
    ignore = '        - {name: RAY_IGNORE_VERSION_MISMATCH, value: "1"}'
    result = diagnose_yaml(tmp_path, cpu_cluster() + "---" + CLIENT % ignore)
    assert findings(result, "RAY003") == []
