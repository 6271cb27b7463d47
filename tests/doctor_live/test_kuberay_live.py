"""The live read of KubeRay's kinds through the real `kubernetes` client: an API server on
127.0.0.1 answers the ray.io/v1 list endpoints with RayCluster, RayJob and RayService objects as
KubeRay v1.x serves them (status included), 404 for a kind whose CRD is not installed, 403 where
the reader may not list; the checks read the objects' status as they do a snapshot's."""

from __future__ import annotations

import json
import threading
from http.server import ThreadingHTTPServer

import pytest

from doctor.diagnose import diagnose
from doctor.sources.live import LiveOptions, read_live

from .conftest import RecordedApi, write_kubeconfig

NAMESPACE = "ray"
SUBMITTER_LOG = (
    "2025-03-10 09:01:39,113\tINFO cli.py:36 -- Job submission server address: "
    "http://rayjob-sample-raycluster-v2b7x-head-svc.ray.svc.cluster.local:8265\n"
    "ConnectionError: Failed to connect to Ray at address: "
    "http://rayjob-sample-raycluster-v2b7x-head-svc.ray.svc.cluster.local:8265.\n"
)

RAY_JOB = {
    "apiVersion": "ray.io/v1",
    "kind": "RayJob",
    "metadata": {
        "name": "rayjob-sample",
        "namespace": NAMESPACE,
        "creationTimestamp": "2025-03-10T09:00:00Z",
        "managedFields": [{"manager": "kuberay-operator", "operation": "Update"}],
    },
    "spec": {
        "entrypoint": "python /home/ray/samples/sample_code.py",
        "shutdownAfterJobFinishes": True,
    },
    "status": {
        "dashboardURL": "rayjob-sample-raycluster-v2b7x-head-svc.ray.svc.cluster.local:8265",
        "jobDeploymentStatus": "Running",
        "jobId": "rayjob-sample-hhq9d",
        "rayClusterName": "rayjob-sample-raycluster-v2b7x",
        "startTime": "2025-03-10T09:00:01Z",
        "observedGeneration": 1,
    },
}
RAY_CLUSTER = {
    "apiVersion": "ray.io/v1",
    "kind": "RayCluster",
    "metadata": {"name": "rayjob-sample-raycluster-v2b7x", "namespace": NAMESPACE},
    "spec": {"headGroupSpec": {"rayStartParams": {}, "template": {"spec": {"containers": []}}}},
    "status": {
        "conditions": [
            {
                "type": "HeadPodReady",
                "status": "True",
                "reason": "HeadPodRunningAndReady",
                "message": "",
                "lastTransitionTime": "2025-03-10T09:01:20Z",
            },
            {
                "type": "RayClusterProvisioned",
                "status": "True",
                "reason": "AllPodRunningAndReadyFirstTime",
                "message": "All Ray Pods are ready for the first time",
                "lastTransitionTime": "2025-03-10T09:01:25Z",
            },
        ],
        "state": "ready",
        "lastUpdateTime": "2025-03-10T09:02:00Z",
    },
}
RAY_SERVICE = {
    "apiVersion": "ray.io/v1",
    "kind": "RayService",
    "metadata": {"name": "rayservice-mobilenet", "namespace": NAMESPACE},
    "spec": {"serveConfigV2": "applications:\n- name: mobilenet\n"},
    "status": {
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "Initializing",
                "message": "RayService is initializing",
                "lastTransitionTime": "2025-03-10T09:00:01Z",
            }
        ],
        "pendingServiceStatus": {
            "applicationStatuses": {
                "mobilenet": {
                    "status": "DEPLOY_FAILED",
                    "message": "Deploying app 'mobilenet' failed with exception:\n"
                    "ModuleNotFoundError: No module named 'tensorflow'",
                }
            },
            "rayClusterName": "rayservice-mobilenet-raycluster-8p5wd",
        },
        "lastUpdateTime": "2025-03-10T09:04:00Z",
    },
}
SUBMITTER_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "rayjob-sample-7kq2m",
        "namespace": NAMESPACE,
        "labels": {"job-name": "rayjob-sample", "batch.kubernetes.io/job-name": "rayjob-sample"},
        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "rayjob-sample"}],
    },
    "spec": {"restartPolicy": "Never", "containers": [{"name": "ray-job-submitter"}]},
    "status": {
        "phase": "Failed",
        "containerStatuses": [
            {
                "name": "ray-job-submitter",
                "restartCount": 0,
                "state": {
                    "terminated": {
                        "exitCode": 1,
                        "reason": "Error",
                        "finishedAt": "2025-03-10T09:01:40Z",
                    }
                },
            }
        ],
    },
}


def custom_list(kind: str, *items: dict) -> dict:
    return {"apiVersion": "ray.io/v1", "kind": f"{kind}List", "metadata": {}, "items": list(items)}


class KubeRayApi(RecordedApi):
    """The recorded API server plus the ray.io/v1 lists; an int answer is an error status."""

    custom: dict[str, dict | int] = {}

    def do_GET(self):  # noqa: N802 - http.server's name
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        if parts[-1] == "log":  # served as the API server does: plain text
            body = SUBMITTER_LOG.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif "ray.io" in parts:
            answer = self.custom.get(parts[-1], 404)
            if isinstance(answer, int):
                status = {"kind": "Status", "status": "Failure", "code": answer}
                self._send(answer, json.dumps(status).encode())
            else:
                self._send(200, json.dumps(answer).encode())
        else:
            super().do_GET()


@pytest.fixture
def kuberay_api(tmp_path, monkeypatch):
    def serve(custom: dict):
        pods = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [SUBMITTER_POD]}
        handler = type(
            "Handler", (KubeRayApi,), {"lists": {(NAMESPACE, "pods"): pods}, "custom": custom}
        )
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        url = f"http://127.0.0.1:{server.server_port}"
        monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kc", url, NAMESPACE)))

    servers: list[ThreadingHTTPServer] = []
    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_live_read_gives_kuberay_objects_and_their_status_findings(kuberay_api):
    kuberay_api(
        {
            "rayclusters": custom_list("RayCluster", RAY_CLUSTER),
            "rayjobs": custom_list("RayJob", RAY_JOB),
            "rayservices": custom_list("RayService", RAY_SERVICE),
            # raycronjobs: not served (404), as where KubeRay predates RayCronJob
        }
    )
    live = read_live(LiveOptions(kubernetes=True, context="recorded", timeout=10))
    assert [len(live.of(k)) for k in ("RayCluster", "RayJob", "RayService")] == [1, 1, 1]
    assert live.of("RayCronJob") == []
    assert live.live.kubernetes.errors == {}
    assert "managedFields" not in live.of("RayJob")[0]["metadata"]
    findings = {(f.code, f.resource): f for f in diagnose(live).findings}

    job = findings[("RAY012", "RayJob/ray/rayjob-sample")]
    assert job.severity == "error"
    assert "cannot submit its Ray job: the submitter Job fails" in job.message
    assert (
        "Pod/ray/rayjob-sample-7kq2m container ray-job-submitter, exit 1 Error, restarts 0; "
        "log: ConnectionError: Failed to connect to Ray at address: http://"
        "rayjob-sample-raycluster-v2b7x-head-svc.ray.svc.cluster.local:8265."
    ) in job.evidence
    service = findings[("RAY013", "RayService/ray/rayservice-mobilenet")]
    assert service.severity == "error"
    assert "ModuleNotFoundError: No module named 'tensorflow'" in service.message
    assert not [f for f in findings.values() if f.code == "RAY011"]  # the cluster is ready


def test_a_forbidden_kuberay_kind_is_recorded_and_the_rest_is_read(kuberay_api):
    kuberay_api({"rayjobs": custom_list("RayJob", RAY_JOB), "rayservices": 403})
    live = read_live(LiveOptions(kubernetes=True, timeout=10))
    errors = live.live.kubernetes.errors
    assert set(errors) == {"rayservices"} and "403" in errors["rayservices"]
    assert len(live.of("RayJob")) == 1 and live.of("RayService") == []
    assert "RAY012" in {f.code for f in diagnose(live).findings}
