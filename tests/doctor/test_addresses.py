"""Hosts and ports: what is read as a peer address, and how NET001, NET002
and NET003 judge it, on snippets shaped like KubeRay's samples, Ray's docs and Helm renders."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from doctor.addresses import addresses_in
from doctor.inventory import Inventory
from doctor.registry import all_checks


def net_findings(text: str, source: str = "manifests") -> list:
    inventory = Inventory(source=source)
    for document in yaml.safe_load_all(textwrap.dedent(text)):
        inventory.add(document)
    checks = [c for c in all_checks() if c.code in ("NET001", "NET002", "NET003")]
    return [finding for check in checks for finding in check.findings(inventory)]


def only(findings: list, code: str):
    matching = [f for f in findings if f.code == code]
    assert len(matching) == 1, [(f.code, f.resource, f.message) for f in findings]
    return matching[0]


@pytest.mark.parametrize(
    "text",
    [
        "s3://anonymous@air-example-data-2/ImageNet",
        "s3a://datasets:9000/train",
        "gs://my-bucket/checkpoints",
        "hf://genmo/mochi-1-preview",
        "file:///home/ray/models",
        "abfss://logs@acct.dfs.core.windows.net/ray",
        "pip install git+https://github.com/ray-project/ray.git",
        'SRC="docker://docker.io/rayproject/ray-llm:2.44.0"',
        "image: postgres:16",
        "FROM node:20",
        "chown -R 999:1000 /data1",
        'curl -H "timeout:600" -X POST',
        "batch = rows[10:20]",
        "aspect 16:9, ratio 1:2",
        'started_at = "2024-05-01T10:30:00Z"',
        "ray.init(address='auto')",
        "uvicorn app:app --host 0.0.0.0 --port 8000",
        "--listen-address=0.0.0.0:9090",
        "rayproject/ray:2.41.0-py310-gpu",
        "apiVersion: ray.io/v1",
        "df -h /tmp",
    ],
)
def test_text_that_is_not_a_peer_address(text):
    assert addresses_in(text) == []


@pytest.mark.parametrize(
    "text, expected",
    [
        ("ray://raycluster-kuberay-head-svc:10001", ("raycluster-kuberay-head-svc", 10001)),
        (
            "redis://:pw@redis-master.db.svc.cluster.local:6379/0",
            ("redis-master.db.svc.cluster.local", 6379),
        ),
        ("jdbc:postgresql://pg:5432/app", ("pg", 5432)),
        ("ray start --address=service-ray-cluster:6380 --block", ("service-ray-cluster", 6380)),
        ("until nc -z ray-head-service 6379; do sleep 2; done", ("ray-head-service", 6379)),
        ("redis-cli -h redis -p 6380 ping", ("redis", 6380)),
        (
            'bootstrap_servers="data-on-eks-kafka-bootstrap:9092"',
            ("data-on-eks-kafka-bootstrap", 9092),
        ),
    ],
)
def test_peer_addresses_are_read(text, expected):
    assert [(host, port) for host, port, _ in addresses_in(text)] == [expected]


RAY_WORKER = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: deployment-ray-worker, namespace: ray}
spec:
  template:
    metadata: {labels: {app: ray-cluster-worker}}
    spec:
      containers:
        - name: ray-worker
          image: rayproject/ray:2.9.0
          command: ["/bin/bash", "-c", "--"]
          args: ["ray start --address=%s --block"]
          env:
            - {name: RAY_DASHBOARD_ADDRESS, value: "http://127.0.0.1:8265"}
            - {name: AWS_METADATA, value: "http://169.254.169.254/latest/meta-data"}
---
apiVersion: v1
kind: Service
metadata: {name: service-ray-cluster, namespace: ray}
spec:
  selector: {app: ray-cluster-head}
  ports: [{name: gcs-server, port: 6380}]
"""


def test_hard_coded_pod_ip_is_an_error():
    finding = only(net_findings(RAY_WORKER % "10.0.3.7:6380"), "NET001")
    assert finding.severity == "error"
    assert finding.resource == "Deployment/ray/deployment-ray-worker"
    assert "hard-codes the IP 10.0.3.7" in finding.message
    assert finding.evidence == "10.0.3.7:6380"


def test_loopback_and_metadata_addresses_are_not_hard_coded_peers():
    assert net_findings(RAY_WORKER % "service-ray-cluster:6380") == []


BIND_ADDRESSES = """
apiVersion: ray.io/v1
kind: RayCluster
metadata: {name: raycluster-kuberay, namespace: default}
spec:
  headGroupSpec:
    rayStartParams: {dashboard-host: "0.0.0.0", node-ip-address: "10.0.0.5"}
    template:
      spec:
        containers:
          - name: ray-head
            image: rayproject/ray:2.41.0
            args: ["--bind 10.1.0.4:9100", "--allowed-cidr=10.0.0.0/8"]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-vpc, namespace: default}
spec:
  podSelector: {}
  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}}]}]
"""


def test_bind_addresses_and_cidrs_are_not_hard_coded_peers():
    assert [f for f in net_findings(BIND_ADDRESSES) if f.code == "NET001"] == []


GRAFANA_FROM_ANOTHER_CHART = """
apiVersion: ray.io/v1
kind: RayCluster
metadata: {name: raycluster-embed-grafana, namespace: default}
spec:
  headGroupSpec:
    rayStartParams: {}
    template:
      spec:
        containers:
          - name: ray-head
            image: rayproject/ray:2.41.0
            env:
              - {name: RAY_GRAFANA_HOST, value: "http://prometheus-grafana.prometheus-system.svc:80"}
              - {name: RAY_GRAFANA_IFRAME_HOST, value: "http://grafana:3000"}
              - {name: RAY_REDIS_ADDRESS, value: "redis.redis.svc.cluster.local:6379"}
              - {name: KUBE_API, value: "https://kubernetes.default.svc:443"}
              - {name: CHECKPOINTS, value: "s3://ray-checkpoints/run-1"}
"""


def test_host_from_another_chart_is_a_warning_not_in_the_input():
    findings = net_findings(GRAFANA_FROM_ANOTHER_CHART)
    assert sorted(f.evidence for f in findings) == [
        "http://prometheus-grafana.prometheus-system.svc:80",
        "redis.redis.svc.cluster.local:6379",
    ]
    for finding in findings:
        assert (finding.code, finding.severity) == ("NET002", "warning")
        assert finding.resource == "RayCluster/default/raycluster-embed-grafana"
        assert "is not in the input" in finding.message
    grafana = next(f for f in findings if "grafana" in f.evidence)
    assert "Service 'prometheus-grafana' of namespace prometheus-system" in grafana.message
    assert "kubectl get svc -n prometheus-system prometheus-grafana" in grafana.fix


API_USING = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: app}
spec:
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
        - name: api
          image: api:1.0
          ports: [{containerPort: 8000}]
          env: [{name: REDIS_URL, value: "redis://%s/0"}]
---
apiVersion: v1
kind: Service
metadata: {name: redis, namespace: %s}
spec:
  selector: {app: redis}
  ports: [{port: 6379}]
"""


def test_short_name_of_a_service_in_another_namespace_is_an_error():
    finding = only(net_findings(API_USING % ("redis:6379", "data")), "NET002")
    assert finding.severity == "error"
    assert finding.resource == "Deployment/app/api"
    assert "resolves only in the caller's namespace app" in finding.message
    assert "Service 'redis' is in namespace data: use redis.data" in finding.message


def test_near_miss_of_a_service_in_the_namespace_is_an_error():
    finding = only(net_findings(API_USING % ("redis-service:6379", "app")), "NET002")
    assert finding.severity == "error"
    assert "namespace app has no Service 'redis-service'; did you mean 'redis'?" in (
        finding.message
    )
    assert finding.evidence == "redis://redis-service:6379"


def test_unrelated_name_in_manifests_is_only_not_in_the_input():
    finding = only(net_findings(API_USING % ("cache:6379", "app")), "NET002")
    assert finding.severity == "warning"
    assert "Service 'cache' of namespace app is not in the input" in finding.message


def test_missing_name_in_a_snapshot_is_an_error():
    finding = only(net_findings(API_USING % ("cache:6379", "app"), source="snapshot"), "NET002")
    assert finding.severity == "error"
    assert "namespace app has no Service 'cache' (Services: redis)" in finding.message


def test_port_the_service_does_not_expose_is_an_error():
    finding = only(net_findings(API_USING % ("redis:6380", "app")), "NET003")
    assert finding.severity == "error"
    assert finding.resource == "Deployment/app/api"
    assert "connects to redis:6380, but Service redis exposes only [6379]" in finding.message


TARGET_PORT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: vllm, namespace: serve}
spec:
  template:
    metadata: {labels: {app: vllm}}
    spec:
      containers:
        - name: vllm
          image: vllm/vllm-openai:v0.6.3
          args: ["--port", "8080"]
          %s
---
apiVersion: v1
kind: Service
metadata: {name: vllm, namespace: serve}
spec:
  selector: {app: vllm}
  ports: [{name: http, port: 80, targetPort: 8080}]
"""


def test_container_without_declared_ports_may_serve_the_target_port():
    assert net_findings(TARGET_PORT % "") == []


def test_target_port_no_declared_port_serves_is_an_error():
    finding = only(net_findings(TARGET_PORT % "ports: [{containerPort: 9000}]"), "NET003")
    assert finding.severity == "error"
    assert finding.resource == "Service/serve/vllm"
    assert "targetPort 8080, which Deployment/serve/vllm does not serve" in finding.message
    assert finding.evidence == "targetPort: 8080"


SERVE_ON_KUBERAY_HEAD = """
apiVersion: ray.io/v1
kind: RayCluster
metadata: {name: raycluster-serve, namespace: default}
spec:
  headGroupSpec:
    rayStartParams: {}
    template:
      spec:
        containers:
          - name: ray-head
            image: rayproject/ray:2.41.0
            ports:
              - {containerPort: 6379, name: gcs-server}
              - {containerPort: 8265, name: dashboard}
              - {containerPort: 10001, name: client}
---
apiVersion: v1
kind: Service
metadata: {name: raycluster-serve-svc, namespace: default}
spec:
  selector: {ray.io/cluster: raycluster-serve, ray.io/node-type: head}
  ports: [{name: serve, port: 8000, targetPort: 8000}]
"""


def test_serve_port_of_a_kuberay_head_is_a_known_ray_port():
    assert net_findings(SERVE_ON_KUBERAY_HEAD) == []


HEADLESS = """
apiVersion: v1
kind: Service
metadata: {name: service-ray-cluster, namespace: ray}
spec:
  clusterIP: None
  selector: {app: ray-cluster-head}
  ports: [{name: client, port: 10001}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: deployment-ray-head, namespace: ray}
spec:
  template:
    metadata: {labels: {app: ray-cluster-head}}
    spec:
      containers:
        - name: ray-head
          image: rayproject/ray:2.3.0
          args: ["ray start --head --port=6380 --block"]
          ports: [{containerPort: 6380}, {containerPort: 10001}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: deployment-ray-worker, namespace: ray}
spec:
  template:
    spec:
      containers:
        - name: ray-worker
          image: rayproject/ray:2.3.0
          args: ["ray start --address=service-ray-cluster:%d --block"]
"""


def test_headless_service_answers_on_every_port_its_pods_serve():
    assert net_findings(HEADLESS % 6380) == []
    finding = only(net_findings(HEADLESS % 6390), "NET003")
    assert finding.resource == "Deployment/ray/deployment-ray-worker"
    assert "service-ray-cluster:6390" in finding.message


def test_a_url_password_never_reaches_the_evidence():
    config = """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: app, namespace: shop}
        data:
          REDIS_URL: redis://:s3cretpw@redis-service:6379/0
        """
    found = only(net_findings(config), "NET002")
    assert "s3cretpw" not in found.evidence + found.message
    assert "redis://:s3******@redis-service:6379" in found.evidence
