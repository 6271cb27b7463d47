"""RAY011-RAY013: what KubeRay's objects say of themselves in their `status`, read from
snapshots shaped as `kubectl get raycluster,rayjob,rayservice -o yaml` prints them for KubeRay
v1.x (field names from ray-operator/apis/ray/v1/*_types.go, messages as the operator writes
them), per resource: the object, its own message, the severity."""

# ruff: noqa: E501 - the operator's messages are quoted whole, on one line, as kubectl prints them

from __future__ import annotations

import textwrap

import pytest
import yaml

from doctor.checks.kuberay_status import input_clock
from doctor.diagnose import diagnose
from doctor.sources import load_manifests, load_snapshot

CODES = ("RAY011", "RAY012", "RAY013")


def snapshot(tmp_path, *documents: str):
    folder = tmp_path / "snapshot"
    folder.mkdir(exist_ok=True)
    text = "\n---\n".join(textwrap.dedent(d).strip() for d in documents)
    (folder / "objects.yaml").write_text(text + "\n")
    return load_snapshot(str(folder))


def findings(inventory, code: str) -> dict[str, list]:
    by_resource: dict[str, list] = {}
    for finding in diagnose(inventory).findings:
        if finding.code == code:
            by_resource.setdefault(finding.resource, []).append(finding)
    return by_resource


CLUSTER_SPEC = """
  spec:
    rayVersion: 2.41.0
    headGroupSpec:
      rayStartParams: {}
      template:
        spec:
          containers:
          - name: ray-head
            image: rayproject/ray:2.41.0
            resources:
              limits: {cpu: "1", memory: 2G}
              requests: {cpu: "1", memory: 2G}
    workerGroupSpecs:
    - groupName: workergroup
      replicas: 1
      minReplicas: 1
      maxReplicas: 5
      rayStartParams: {}
      template:
        spec:
          containers:
          - name: ray-worker
            image: rayproject/ray:2.41.0
            resources:
              limits: {cpu: "1", memory: 1G}
              requests: {cpu: "1", memory: 1G}
"""

QUOTA_CLUSTER = (
    """
apiVersion: ray.io/v1
kind: RayCluster
metadata:
  name: raycluster-kuberay
  namespace: ray
  creationTimestamp: "2025-03-10T09:00:00Z"
  generation: 1
"""
    + CLUSTER_SPEC.replace("\n  ", "\n")
    + """
status:
  conditions:
  - lastTransitionTime: "2025-03-10T09:00:05Z"
    message: |-
      FailedCreateWorkerPod
      pods "raycluster-kuberay-workergroup-worker-7xk2p" is forbidden: exceeded quota: ray-quota, requested: limits.memory=1G, used: limits.memory=2G, limited: limits.memory=2G
    reason: FailedCreateWorkerPod
    status: "True"
    type: ReplicaFailure
  - lastTransitionTime: "2025-03-10T09:01:10Z"
    message: ""
    reason: HeadPodRunningAndReady
    status: "True"
    type: HeadPodReady
  - lastTransitionTime: "2025-03-10T09:00:05Z"
    message: RayCluster Pods are being provisioned for first time
    reason: RayClusterPodsProvisioning
    status: "False"
    type: RayClusterProvisioned
  desiredCPU: "2"
  desiredGPU: "0"
  desiredMemory: 3G
  desiredTPU: "0"
  desiredWorkerReplicas: 1
  endpoints:
    client: "10001"
    dashboard: "8265"
    gcs-server: "6379"
    metrics: "8080"
  head:
    podIP: 10.244.0.6
    podName: raycluster-kuberay-head-ldg9f
    serviceIP: 10.244.0.6
    serviceName: raycluster-kuberay-head-svc
  lastUpdateTime: "2025-03-10T09:30:00Z"
  maxWorkerReplicas: 5
  minWorkerReplicas: 1
  observedGeneration: 1
"""
)

IMAGE_CLUSTER = """
apiVersion: ray.io/v1
kind: RayCluster
metadata:
  name: raycluster-typo
  namespace: ray
  creationTimestamp: "2025-03-10T09:00:00Z"
status:
  conditions:
  - lastTransitionTime: "2025-03-10T09:00:04Z"
    message: 'containers with unready status: [ray-head]; ray-head: Back-off pulling image "rayproject/ray:2.41.O"'
    reason: ImagePullBackOff
    status: "False"
    type: HeadPodReady
  - lastTransitionTime: "2025-03-10T09:00:04Z"
    message: RayCluster Pods are being provisioned for first time
    reason: RayClusterPodsProvisioning
    status: "False"
    type: RayClusterProvisioned
  desiredWorkerReplicas: 1
  lastUpdateTime: "2025-03-10T09:40:00Z"
"""


def test_replica_failure_is_an_error_with_the_operators_message(tmp_path):
    hits = findings(snapshot(tmp_path, QUOTA_CLUSTER), "RAY011")[
        "RayCluster/ray/raycluster-kuberay"
    ]
    failure = next(f for f in hits if "ReplicaFailure" in f.evidence)
    assert failure.severity == "error"
    assert "cannot create or delete its pods" in failure.message
    assert "exceeded quota: ray-quota" in failure.message
    assert "FailedCreateWorkerPod: FailedCreateWorkerPod pods" in failure.evidence
    assert "kubectl describe raycluster raycluster-kuberay -n ray" in failure.fix
    # The head is ready, but the workers never were, for 30 minutes by the cluster's own clock.
    provisioning = next(f for f in hits if "RayClusterProvisioned" in f.evidence)
    assert provisioning.severity == "warning"
    assert "in 30 min (0/1 workers ready)" in provisioning.message
    assert "newest time in the input 2025-03-10T09:30:00+00:00" in provisioning.evidence


def test_head_not_ready_for_long_is_an_error_quoting_the_pod_reason(tmp_path):
    hits = findings(snapshot(tmp_path, IMAGE_CLUSTER), "RAY011")["RayCluster/ray/raycluster-typo"]
    assert len(hits) == 1  # the head's reason, not a second "not provisioned" about the same
    assert hits[0].severity == "error"
    assert "head pod has not been ready for 40 min" in hits[0].message
    assert (
        'ImagePullBackOff: containers with unready status: [ray-head]; ray-head: Back-off pulling image "rayproject/ray:2.41.O"'
        in hits[0].message
    )


def test_head_not_ready_just_now_is_only_a_warning(tmp_path):
    fresh = IMAGE_CLUSTER.replace('lastUpdateTime: "2025-03-10T09:40:00Z"', "lastUpdateTime: null")
    hits = findings(snapshot(tmp_path, fresh), "RAY011")["RayCluster/ray/raycluster-typo"]
    assert [f.severity for f in hits] == ["warning"]
    assert hits[0].message.startswith("RayCluster raycluster-typo head pod is not ready: Image")


def test_legacy_failed_state_quotes_its_reason(tmp_path):
    legacy = """
    apiVersion: ray.io/v1
    kind: RayCluster
    metadata: {name: raycluster-legacy, namespace: ray, creationTimestamp: "2024-02-01T10:00:00Z"}
    status:
      state: failed
      reason: 'pods "raycluster-legacy-head-8xq9z" is forbidden: error looking up service account ray/ray-sa: serviceaccount "ray-sa" not found'
      lastUpdateTime: "2024-02-01T10:00:03Z"
    """
    hits = findings(snapshot(tmp_path, legacy), "RAY011")["RayCluster/ray/raycluster-legacy"]
    assert [f.severity for f in hits] == ["error"]
    assert 'state is failed: pods "raycluster-legacy-head-8xq9z" is forbidden' in hits[0].message
    assert 'serviceaccount "ray-sa" not found' in hits[0].evidence


def test_suspended_cluster_is_info_and_its_missing_head_is_not_reported(tmp_path):
    suspended = """
    apiVersion: ray.io/v1
    kind: RayCluster
    metadata: {name: raycluster-parked, namespace: ray, creationTimestamp: "2025-03-10T09:00:00Z"}
    spec: {suspend: true}
    status:
      conditions:
      - {lastTransitionTime: "2025-03-10T09:00:00Z", message: Head Pod not found, reason: HeadPodNotFound, status: "False", type: HeadPodReady}
      - {lastTransitionTime: "2025-03-10T09:00:00Z", message: "", reason: RayClusterSuspended, status: "True", type: RayClusterSuspended}
      state: suspended
      lastUpdateTime: "2025-03-10T10:00:00Z"
    """
    hits = findings(snapshot(tmp_path, suspended), "RAY011")["RayCluster/ray/raycluster-parked"]
    assert [f.severity for f in hits] == ["info"]
    assert "is suspended" in hits[0].message


def test_healthy_cluster_is_quiet(tmp_path):
    healthy = """
    apiVersion: ray.io/v1
    kind: RayCluster
    metadata: {name: raycluster-ok, namespace: ray, creationTimestamp: "2025-03-10T09:00:00Z"}
    status:
      conditions:
      - {lastTransitionTime: "2025-03-10T09:01:00Z", message: "", reason: HeadPodRunningAndReady, status: "True", type: HeadPodReady}
      - {lastTransitionTime: "2025-03-10T09:02:00Z", message: All Ray Pods are ready for the first time, reason: AllPodRunningAndReadyFirstTime, status: "True", type: RayClusterProvisioned}
      readyWorkerReplicas: 1
      availableWorkerReplicas: 1
      desiredWorkerReplicas: 1
      state: ready
      lastUpdateTime: "2025-03-11T09:00:00Z"
    """
    assert not any(findings(snapshot(tmp_path, healthy), code) for code in CODES)


# -- RAY012 --------------------------------------------------------------------------------------

SUBMISSION_FAILED_JOB = """
apiVersion: ray.io/v1
kind: RayJob
metadata:
  name: image-resize-zk9n9
  namespace: default
  creationTimestamp: "2024-08-20T01:46:38Z"
  generation: 2
spec:
  entrypoint: python /home/ray/samples/resize.py
  shutdownAfterJobFinishes: true
status:
  dashboardURL: image-resize-zk9n9-raycluster-tcj9b-head-svc.default.svc.cluster.local:8265
  endTime: "2024-08-20T01:55:40Z"
  failed: 1
  jobDeploymentStatus: Failed
  jobId: image-resize-zk9n9-2fd4s
  jobStatus: PENDING
  message: 'Job submission has failed. Reason: BackoffLimitExceeded. Message: Job has reached the specified backoff limit'
  observedGeneration: 2
  rayClusterName: image-resize-zk9n9-raycluster-tcj9b
  reason: SubmissionFailed
  startTime: "2024-08-20T01:49:18Z"
  succeeded: 0
"""

APP_FAILED_JOB = """
apiVersion: ray.io/v1
kind: RayJob
metadata: {name: rayjob-sample, namespace: ray, creationTimestamp: "2025-03-10T09:00:00Z"}
spec:
  entrypoint: python /home/ray/samples/sample_code.py
status:
  dashboardURL: rayjob-sample-raycluster-v2b7x-head-svc.ray.svc.cluster.local:8265
  endTime: "2025-03-10T09:03:12Z"
  failed: 1
  jobDeploymentStatus: Failed
  jobId: rayjob-sample-hhq9d
  jobStatus: FAILED
  message: |-
    Job entrypoint command failed with exit code 1, last available logs (truncated to 20,000 chars):
      File "/home/ray/samples/sample_code.py", line 12, in <module>
        result = 1 / 0
    ZeroDivisionError: division by zero
  rayClusterName: rayjob-sample-raycluster-v2b7x
  rayJobInfo: {startTime: "2025-03-10T09:02:40Z", endTime: "2025-03-10T09:03:10Z"}
  reason: AppFailed
  startTime: "2025-03-10T09:00:01Z"
  succeeded: 0
"""


def test_failed_rayjob_quotes_its_reason_and_message(tmp_path):
    inventory = snapshot(tmp_path, SUBMISSION_FAILED_JOB, APP_FAILED_JOB)
    by_resource = findings(inventory, "RAY012")
    [submission] = by_resource["RayJob/default/image-resize-zk9n9"]
    assert submission.severity == "error"
    assert submission.message == (
        "RayJob image-resize-zk9n9 failed (SubmissionFailed): Job submission has failed. "
        "Reason: BackoffLimitExceeded. Message: Job has reached the specified backoff limit"
    )
    assert "jobDeploymentStatus: Failed; jobStatus: PENDING" in submission.evidence
    assert "kubectl logs -l job-name=image-resize-zk9n9 -n default" in submission.fix
    [app] = by_resource["RayJob/ray/rayjob-sample"]
    assert app.severity == "error"
    assert "failed (AppFailed): Job entrypoint command failed with exit code 1" in app.message
    assert "ZeroDivisionError: division by zero" in app.message
    assert "kubectl describe rayjob rayjob-sample -n ray" in app.fix


def test_validation_failed_and_stopped_rayjobs(tmp_path):
    invalid = """
    apiVersion: ray.io/v1
    kind: RayJob
    metadata: {name: rayjob-nocluster, namespace: ray}
    spec: {entrypoint: python job.py}
    status:
      jobDeploymentStatus: ValidationFailed
      reason: ValidationFailed
      message: 'The RayJob spec is invalid: one of RayClusterSpec or ClusterSelector must be set'
    """
    stopped = """
    apiVersion: ray.io/v1
    kind: RayJob
    metadata: {name: rayjob-stopped, namespace: ray}
    spec: {entrypoint: python job.py, submissionMode: HTTPMode}
    status:
      jobDeploymentStatus: Complete
      jobStatus: STOPPED
      message: Job was intentionally stopped.
      startTime: "2025-03-10T09:00:01Z"
      endTime: "2025-03-10T09:10:00Z"
    """
    by_resource = findings(snapshot(tmp_path, invalid, stopped), "RAY012")
    [validation] = by_resource["RayJob/ray/rayjob-nocluster"]
    assert validation.severity == "error"
    assert validation.message == (
        "RayJob rayjob-nocluster failed KubeRay's validation and will not run: The RayJob spec "
        "is invalid: one of RayClusterSpec or ClusterSelector must be set"
    )
    [stop] = by_resource["RayJob/ray/rayjob-stopped"]
    assert stop.severity == "warning"
    assert "was stopped before it finished: Job was intentionally stopped." in stop.message
    assert "kubectl logs" not in stop.fix  # HTTPMode has no submitter Job


RUNNING_JOB = """
apiVersion: ray.io/v1
kind: RayJob
metadata: {name: rayjob-sample, namespace: ray, uid: 5c0a3f7e-1d7e-4a4e-9a43-1e0c8f0b2d11}
spec:
  entrypoint: python /home/ray/samples/sample_code.py
status:
  dashboardURL: rayjob-sample-raycluster-v2b7x-head-svc.ray.svc.cluster.local:8265
  jobDeploymentStatus: Running
  jobId: rayjob-sample-hhq9d
  rayClusterName: rayjob-sample-raycluster-v2b7x
  startTime: "2025-03-10T09:00:01Z"
"""

SUBMITTER_POD = """
apiVersion: v1
kind: Pod
metadata:
  name: rayjob-sample-7kq2m
  namespace: ray
  labels:
    batch.kubernetes.io/controller-uid: 0e7c7b44-7c58-4c1b-b4a3-6b8e3a1c9f20
    batch.kubernetes.io/job-name: rayjob-sample
    controller-uid: 0e7c7b44-7c58-4c1b-b4a3-6b8e3a1c9f20
    job-name: rayjob-sample
  ownerReferences:
  - {apiVersion: batch/v1, kind: Job, name: rayjob-sample, controller: true, uid: 0e7c7b44-7c58-4c1b-b4a3-6b8e3a1c9f20}
spec:
  restartPolicy: Never
  containers:
  - name: ray-job-submitter
    image: rayproject/ray:2.41.0
    command: [ray, job, submit, --address, http://rayjob-sample-raycluster-v2b7x-head-svc.ray.svc.cluster.local:8265, --submission-id, rayjob-sample-hhq9d, --, python, /home/ray/samples/sample_code.py]
status:
  phase: Failed
  startTime: "2025-03-10T09:01:30Z"
  containerStatuses:
  - name: ray-job-submitter
    image: rayproject/ray:2.41.0
    ready: false
    restartCount: 0
    started: false
    state:
      terminated:
        exitCode: 1
        reason: Error
        startedAt: "2025-03-10T09:01:31Z"
        finishedAt: "2025-03-10T09:01:40Z"
"""


def test_submitter_failing_while_the_ray_job_never_started_is_an_error(tmp_path):
    inventory = snapshot(tmp_path, RUNNING_JOB, SUBMITTER_POD)
    [hit] = findings(inventory, "RAY012")["RayJob/ray/rayjob-sample"]
    assert hit.severity == "error"
    assert hit.message == (
        "RayJob rayjob-sample cannot submit its Ray job: the submitter Job fails and no Ray job "
        "status is recorded (dashboard "
        "rayjob-sample-raycluster-v2b7x-head-svc.ray.svc.cluster.local:8265)"
    )
    assert "jobDeploymentStatus: Running; jobStatus: (none)" in hit.evidence
    assert "Pod/ray/rayjob-sample-7kq2m container ray-job-submitter, exit 1 Error" in hit.evidence
    assert "kubectl logs -l job-name=rayjob-sample -n ray" in hit.fix


def test_a_failed_first_submitter_pod_with_a_newer_one_running_is_only_a_warning(tmp_path):
    retry = (
        SUBMITTER_POD.replace("rayjob-sample-7kq2m", "rayjob-sample-p9w4d")
        .replace("phase: Failed", "phase: Running")
        .replace(
            "terminated:\n        exitCode: 1\n        reason: Error\n",
            "running:\n",
        )
        .replace('        finishedAt: "2025-03-10T09:01:40Z"\n', "")
    )
    inventory = snapshot(tmp_path, RUNNING_JOB, SUBMITTER_POD, retry)
    [hit] = findings(inventory, "RAY012")["RayJob/ray/rayjob-sample"]
    assert hit.severity == "warning"
    assert hit.message.endswith("; a newer submitter pod is still running")
    assert "Pod/ray/rayjob-sample-7kq2m" in hit.evidence
    assert "rayjob-sample-p9w4d" not in hit.evidence


def test_submitter_log_line_is_quoted_when_the_read_has_it(tmp_path):
    inventory = snapshot(tmp_path, RUNNING_JOB, SUBMITTER_POD)
    inventory.live.logs = {
        "Pod/ray/rayjob-sample-7kq2m/ray-job-submitter": (
            "2025-03-10 09:01:39,113\tINFO cli.py:36 -- Job submission server address: "
            "http://rayjob-sample-raycluster-v2b7x-head-svc.ray.svc.cluster.local:8265\n"
            "ConnectionError: Failed to connect to Ray at address: "
            "http://rayjob-sample-raycluster-v2b7x-head-svc.ray.svc.cluster.local:8265.\n"
        )
    }
    [hit] = findings(inventory, "RAY012")["RayJob/ray/rayjob-sample"]
    assert "; log: ConnectionError: Failed to connect to Ray at address: http://" in hit.evidence


def test_running_without_a_ray_job_for_long_is_a_warning_only_on_the_inputs_clock(tmp_path):
    # Nothing in the input is newer than the job's own start: nothing proves it is stuck.
    assert not findings(snapshot(tmp_path, RUNNING_JOB), "RAY012")
    event = """
    apiVersion: v1
    kind: Event
    metadata: {name: rayjob-sample.182b4f, namespace: ray, creationTimestamp: "2025-03-10T09:25:00Z"}
    involvedObject: {apiVersion: ray.io/v1, kind: RayJob, name: rayjob-sample, namespace: ray}
    reason: CreatedRayJobSubmitter
    type: Normal
    message: Created Kubernetes Job ray/rayjob-sample
    firstTimestamp: "2025-03-10T09:01:29Z"
    lastTimestamp: "2025-03-10T09:25:00Z"
    """
    [hit] = findings(snapshot(tmp_path, RUNNING_JOB, event), "RAY012")["RayJob/ray/rayjob-sample"]
    assert hit.severity == "warning"
    assert "has had no running Ray job for 25 min after it started (K8sJobMode)" in hit.message
    assert "startTime 2025-03-10T09:00:01+00:00, newest time in the input 2025-03-10T09:25" in (
        hit.evidence
    )


def test_just_started_and_running_and_succeeded_jobs_are_quiet(tmp_path):
    running = RUNNING_JOB.replace(
        "jobDeploymentStatus: Running", "jobDeploymentStatus: Running\n  jobStatus: RUNNING"
    )
    succeeded = """
    apiVersion: ray.io/v1
    kind: RayJob
    metadata: {name: rayjob-done, namespace: ray}
    status:
      jobDeploymentStatus: Complete
      jobStatus: SUCCEEDED
      message: Job finished successfully.
      startTime: "2025-03-10T08:00:01Z"
      endTime: "2025-03-10T08:03:00Z"
      succeeded: 1
      failed: 0
    """
    assert not findings(snapshot(tmp_path, running, succeeded), "RAY012")


INITIALIZING_JOB = """
apiVersion: ray.io/v1
kind: RayJob
metadata: {name: rayjob-gpu, namespace: ray, creationTimestamp: "2025-03-10T09:00:00Z"}
spec:
  entrypoint: python train.py
status:
  jobDeploymentStatus: Initializing
  jobId: rayjob-gpu-k2x8l
  rayClusterName: rayjob-gpu-raycluster-q8d7n
  startTime: "2025-03-10T09:00:01Z"
  rayClusterStatus:
    conditions:
    - lastTransitionTime: "2025-03-10T09:00:03Z"
      message: '0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.'
      reason: Unschedulable
      status: "False"
      type: HeadPodReady
    desiredWorkerReplicas: 2
    lastUpdateTime: "2025-03-10T09:40:00Z"
"""


def test_initializing_for_long_names_the_cluster_and_its_head_reason(tmp_path):
    inventory = snapshot(tmp_path, INITIALIZING_JOB)
    [job] = findings(inventory, "RAY012")["RayJob/ray/rayjob-gpu"]
    assert job.severity == "warning"
    assert "is still Initializing 40 min after it started" in job.message
    assert "RayCluster rayjob-gpu-raycluster-q8d7n never became ready" in job.message
    assert "3 Insufficient nvidia.com/gpu" in job.message
    # The RayCluster object is not in the input: RAY011 reads the copy in the RayJob's status.
    [cluster] = findings(inventory, "RAY011")["RayJob/ray/rayjob-gpu"]
    assert cluster.severity == "error"
    assert cluster.message.startswith(
        "RayJob rayjob-gpu's RayCluster rayjob-gpu-raycluster-q8d7n head pod has not been ready"
    )
    assert "kubectl describe raycluster rayjob-gpu-raycluster-q8d7n -n ray" in cluster.fix


# -- RAY013 --------------------------------------------------------------------------------------

FIRST_DEPLOY_FAILED = """
apiVersion: ray.io/v1
kind: RayService
metadata: {name: rayservice-mobilenet, namespace: serve, creationTimestamp: "2025-03-10T09:00:00Z"}
spec:
  serveConfigV2: |
    applications:
      - name: mobilenet
        import_path: mobilenet.mobilenet:app
status:
  conditions:
  - lastTransitionTime: "2025-03-10T09:00:01Z"
    message: RayService is initializing
    reason: Initializing
    status: "False"
    type: Ready
  - lastTransitionTime: "2025-03-10T09:00:01Z"
    message: RayService is initializing
    reason: Initializing
    status: "False"
    type: UpgradeInProgress
  lastUpdateTime: "2025-03-10T09:04:00Z"
  observedGeneration: 1
  pendingServiceStatus:
    applicationStatuses:
      mobilenet:
        healthLastUpdateTime: "2025-03-10T09:04:00Z"
        message: |-
          Deploying app 'mobilenet' failed with exception:
          ray::deploy_serve_application() (pid=279, ip=10.244.0.12)
            File ".../mobilenet/mobilenet.py", line 4, in <module>
              from tensorflow.keras.preprocessing import image
          ModuleNotFoundError: No module named 'tensorflow'
        status: DEPLOY_FAILED
    rayClusterName: rayservice-mobilenet-raycluster-8p5wd
"""


def test_first_deploy_failed_is_an_error_quoting_the_serve_apps_error(tmp_path):
    [hit] = findings(snapshot(tmp_path, FIRST_DEPLOY_FAILED), "RAY013")[
        "RayService/serve/rayservice-mobilenet"
    ]
    assert hit.severity == "error"
    assert hit.message.startswith(
        "RayService rayservice-mobilenet is not serving (Ready False, Initializing: RayService is "
        "initializing): app mobilenet DEPLOY_FAILED: Deploying app 'mobilenet' failed"
    )
    assert "ModuleNotFoundError: No module named 'tensorflow'" in hit.message
    assert "serve endpoints: 0" in hit.evidence
    assert "kubectl get rayservice rayservice-mobilenet -n serve -o yaml" in hit.fix


def test_initializing_without_failure_is_judged_by_the_inputs_clock(tmp_path):
    deploying = FIRST_DEPLOY_FAILED.replace("status: DEPLOY_FAILED", "status: DEPLOYING")
    assert not findings(snapshot(tmp_path, deploying), "RAY013")
    later = deploying.replace(
        'lastUpdateTime: "2025-03-10T09:04:00Z"', 'lastUpdateTime: "2025-03-10T09:45:00Z"'
    )
    [hit] = findings(snapshot(tmp_path, later), "RAY013")["RayService/serve/rayservice-mobilenet"]
    assert hit.severity == "warning"
    assert "is not serving after 45 min (Ready False, Initializing" in hit.message


UPGRADE_STUCK = """
apiVersion: ray.io/v1
kind: RayService
metadata: {name: rayservice-sample, namespace: serve}
status:
  activeServiceStatus:
    applicationStatuses:
      fruit_app:
        healthLastUpdateTime: "2025-03-10T10:00:00Z"
        serveDeploymentStatuses:
          FruitMarket: {healthLastUpdateTime: "2025-03-10T10:00:00Z", status: HEALTHY}
        status: RUNNING
    rayClusterName: rayservice-sample-raycluster-6mj28
  conditions:
  - {lastTransitionTime: "2025-03-10T08:00:00Z", message: Number of serve endpoints is greater than 0, reason: NonZeroServeEndpoints, status: "True", type: Ready}
  - {lastTransitionTime: "2025-03-10T09:30:00Z", message: Both active and pending Ray clusters exist, reason: BothActivePendingClustersExist, status: "True", type: UpgradeInProgress}
  lastUpdateTime: "2025-03-10T10:00:00Z"
  numServeEndpoints: 2
  pendingServiceStatus:
    applicationStatuses:
      fruit_app:
        healthLastUpdateTime: "2025-03-10T10:00:00Z"
        message: 'Deploying app ''fruit_app'' failed with exception: ImportError: cannot import name ''FruitMarket'' from ''fruit'''
        serveDeploymentStatuses:
          FruitMarket: {message: 'The deployment failed to start 3 times in a row. This may be due to a problem with its constructor or initial health check failing.', status: DEPLOY_FAILED}
        status: DEPLOY_FAILED
    rayClusterName: rayservice-sample-raycluster-9xk3c
  serviceStatus: Running
"""


def test_stuck_upgrade_is_a_warning_while_the_old_cluster_serves(tmp_path):
    [hit] = findings(snapshot(tmp_path, UPGRADE_STUCK), "RAY013")[
        "RayService/serve/rayservice-sample"
    ]
    assert hit.severity == "warning"
    assert hit.message.startswith(
        "RayService rayservice-sample's upgrade to RayCluster rayservice-sample-raycluster-9xk3c "
        "is stuck for 30 min; traffic stays on rayservice-sample-raycluster-6mj28: app fruit_app "
        "DEPLOY_FAILED: Deploying app 'fruit_app' failed with exception: ImportError"
    )
    assert "deployment FruitMarket DEPLOY_FAILED: The deployment failed to start" in hit.evidence


def test_zero_endpoints_and_legacy_failure_are_errors(tmp_path):
    zero = """
    apiVersion: ray.io/v1
    kind: RayService
    metadata: {name: rayservice-llm, namespace: serve}
    status:
      activeServiceStatus:
        applicationStatuses:
          llm:
            message: 'The deployment LLMServer is UNHEALTHY: replica 3f2c health check failed: CUDA error: out of memory'
            status: UNHEALTHY
        rayClusterName: rayservice-llm-raycluster-h2k9p
      conditions:
      - {lastTransitionTime: "2025-03-10T09:58:00Z", message: Number of serve endpoints dropped to 0, reason: ZeroServeEndpoints, status: "False", type: Ready}
      - {lastTransitionTime: "2025-03-10T08:00:00Z", message: Active Ray cluster exists and no pending Ray cluster, reason: NoPendingCluster, status: "False", type: UpgradeInProgress}
      lastUpdateTime: "2025-03-10T10:00:00Z"
    """
    legacy = """
    apiVersion: ray.io/v1
    kind: RayService
    metadata: {name: rayservice-legacy, namespace: serve}
    status:
      activeServiceStatus: {}
      pendingServiceStatus:
        rayClusterName: rayservice-legacy-raycluster-x7b2q
      serviceStatus: FailedToGetServeDeploymentStatus
    """
    by_resource = findings(snapshot(tmp_path, zero, legacy), "RAY013")
    [llm] = by_resource["RayService/serve/rayservice-llm"]
    assert llm.severity == "error"
    assert llm.message == (
        "RayService rayservice-llm is not serving (Ready False, ZeroServeEndpoints: Number of "
        "serve endpoints dropped to 0): app llm UNHEALTHY: The deployment LLMServer is UNHEALTHY:"
        " replica 3f2c health check failed: CUDA error: out of memory"
    )
    assert "serve endpoints: 0" in llm.evidence
    [old] = by_resource["RayService/serve/rayservice-legacy"]
    assert old.severity == "error"
    assert old.message == (
        "RayService rayservice-legacy is not serving (serviceStatus FailedToGetServeDeploymentStatus)"
    )


def test_serving_service_is_quiet(tmp_path):
    serving = UPGRADE_STUCK.split("  pendingServiceStatus:")[0].replace(
        'status: "True", type: UpgradeInProgress', 'status: "False", type: UpgradeInProgress'
    )
    assert not findings(snapshot(tmp_path, serving), "RAY013")


# -- manifests and the clock ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["RayCluster", "RayJob", "RayService", "RayCronJob"])
def test_plain_manifests_without_status_produce_nothing(tmp_path, kind):
    cluster = yaml.safe_load(CLUSTER_SPEC)["spec"]
    job = {"entrypoint": "python job.py", "rayClusterSpec": cluster}
    spec = {
        "RayCluster": cluster,
        "RayJob": job,
        "RayService": {"serveConfigV2": "applications: []", "rayClusterConfig": cluster},
        "RayCronJob": {"schedule": "*/5 * * * *", "jobTemplate": job},
    }[kind]
    manifest = {"apiVersion": "ray.io/v1", "kind": kind, "metadata": {"name": "s"}, "spec": spec}
    (tmp_path / "sample.yaml").write_text(yaml.safe_dump(manifest))
    result = diagnose(load_manifests([str(tmp_path)]))
    assert not [f for f in result.findings if f.code in CODES]


def test_input_clock_is_the_newest_timestamp(tmp_path):
    inventory = snapshot(tmp_path, QUOTA_CLUSTER, SUBMITTER_POD)
    assert input_clock(inventory).isoformat() == "2025-03-10T09:30:00+00:00"
