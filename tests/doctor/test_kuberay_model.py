"""What the doctor derives from KubeRay objects: workloads of RayJob/RayService/RayCronJob, the
head and serve Services, the Ingress of enableIngress, the NetworkPolicies of networkPolicy,
and SEC001 through headService, Ingress and HTTPRoute. Shapes follow KubeRay v1.x samples."""

from __future__ import annotations

import textwrap

import yaml

from doctor.diagnose import diagnose
from doctor.inventory import Inventory, labels_match


def inventory_of(text: str) -> Inventory:
    inventory = Inventory()
    for document in yaml.safe_load_all(textwrap.dedent(text)):
        inventory.add(document, origin="objects.yaml")
    return inventory


HEAD = """
    rayStartParams: {}
    template:
      spec:
        containers:
        - name: ray-head
          image: rayproject/ray:2.52.0
          resources:
            limits: {cpu: "1", memory: 4Gi}
            requests: {cpu: "1", memory: 4Gi}
          ports:
          - {containerPort: 6379, name: gcs-server}
          - {containerPort: 8265, name: dashboard}
          - {containerPort: 10001, name: client}
          - {containerPort: 8000, name: serve}
"""

WORKERS = """
    - groupName: small-group
      replicas: 2
      rayStartParams: {}
      template:
        spec:
          containers:
          - name: ray-worker
            image: rayproject/ray:2.52.0
            resources:
              limits: {cpu: "1", memory: 2Gi}
"""


def indent(text: str, spaces: int) -> str:
    return textwrap.indent(textwrap.dedent(text), " " * spaces)


def cluster_spec(spaces: int, service_type: str = "ClusterIP", extra: str = "") -> str:
    head = indent(f"serviceType: {service_type}\n{extra}" + textwrap.dedent(HEAD), 2)
    return indent(
        "headGroupSpec:\n" + head + "workerGroupSpecs:\n" + textwrap.dedent(WORKERS), spaces
    )


def rayjob(service_type: str = "ClusterIP") -> str:
    return (
        "apiVersion: ray.io/v1\nkind: RayJob\nmetadata: {name: rayjob-sample, namespace: jobs}\n"
        "spec:\n  entrypoint: python /home/ray/samples/sample_code.py\n  rayClusterSpec:\n"
        + cluster_spec(4, service_type)
    )


def rayservice(service_type: str = "ClusterIP", serve_service: str = "") -> str:
    return (
        "apiVersion: ray.io/v1\nkind: RayService\nmetadata: {name: rayservice-sample}\n"
        "spec:\n  serveConfigV2: |\n    applications: []\n"
        + serve_service
        + "  rayClusterConfig:\n"
        + cluster_spec(4, service_type)
    )


def sec001(inventory: Inventory):
    return [f for f in diagnose(inventory).findings if f.code == "SEC001"]


def test_every_kuberay_kind_yields_head_and_worker_workloads():
    cronjob = (
        "apiVersion: ray.io/v1\nkind: RayCronJob\nmetadata: {name: nightly}\nspec:\n"
        '  schedule: "0 3 * * *"\n  jobTemplate:\n    entrypoint: python job.py\n'
        "    rayClusterSpec:\n" + cluster_spec(6)
    )
    inventory = inventory_of("\n---\n".join([rayjob(), rayservice(), cronjob]))
    seen = {(w.kind, w.name, w.group, w.ray_role, w.replicas) for w in inventory.workloads}
    assert seen == {
        ("RayJob", "rayjob-sample", "head", "head", 1),
        ("RayJob", "rayjob-sample", "small-group", "worker", 2),
        ("RayService", "rayservice-sample", "head", "head", 1),
        ("RayService", "rayservice-sample", "small-group", "worker", 2),
        ("RayCronJob", "nightly", "head", "head", 1),
        ("RayCronJob", "nightly", "small-group", "worker", 2),
    }
    assert all(w.is_kuberay for w in inventory.workloads)
    assert {c.spec_path for c in inventory.kuberay_clusters} == {
        "spec.rayClusterSpec",
        "spec.rayClusterConfig",
        "spec.jobTemplate.rayClusterSpec",
    }


def test_rayjob_selecting_an_existing_cluster_describes_no_cluster():
    inventory = inventory_of(
        """
        apiVersion: ray.io/v1
        kind: RayJob
        metadata: {name: use-existing}
        spec:
          entrypoint: python job.py
          clusterSelector: {ray.io/cluster: raycluster-kuberay}
        """
    )
    assert inventory.workloads == [] and inventory.kuberay_clusters == []


def test_rayservice_gets_its_stable_head_and_serve_services():
    inventory = inventory_of(rayservice())
    head = inventory.services[("default", "rayservice-sample-head-svc")]
    serve = inventory.services[("default", "rayservice-sample-serve-svc")]
    assert {p["name"]: p["port"] for p in head["spec"]["ports"]} == {
        "client": 10001,
        "dashboard": 8265,
        "gcs-server": 6379,
        "metrics": 8080,
        "serve": 8000,
    }
    assert [p["port"] for p in serve["spec"]["ports"]] == [8000]
    head_workloads = inventory.selected_workloads(head)
    assert [(w.kind, w.ray_role) for w in head_workloads] == [("RayService", "head")]


def test_head_ports_default_when_the_container_declares_none():
    inventory = inventory_of(
        """
        apiVersion: ray.io/v1
        kind: RayCluster
        metadata: {name: bare}
        spec:
          headGroupSpec:
            rayStartParams: {}
            template:
              spec:
                containers: [{name: ray-head, image: rayproject/ray:2.52.0}]
        """
    )
    service = inventory.services[("default", "bare-head-svc")]
    assert sorted(p["port"] for p in service["spec"]["ports"]) == [6379, 8000, 8080, 8265, 10001]


def test_custom_head_service_of_type_load_balancer_exposes_the_ray_ports():
    inventory = inventory_of(
        """
        apiVersion: ray.io/v1
        kind: RayCluster
        metadata: {name: custom-head-svc}
        spec:
          headGroupSpec:
            rayStartParams: {}
            headService:
              metadata: {name: custom-ray-head-service-name}
              spec:
                type: LoadBalancer
                ports: [{port: 12345, targetPort: 12345, name: custom-port}]
            template:
              spec:
                containers:
                - name: ray-head
                  image: rayproject/ray:2.52.0
                  ports:
                  - {containerPort: 6379, name: gcs-server}
                  - {containerPort: 8265, name: dashboard}
        """
    )
    assert ("default", "custom-ray-head-service-name") in inventory.services
    [finding] = sec001(inventory)
    assert finding.resource == "RayCluster/default/custom-head-svc"
    assert "custom-ray-head-service-name" in finding.message
    assert "dashboard port 8265" in finding.message and "GCS port 6379" in finding.message
    assert finding.evidence == "type: LoadBalancer"


def test_rayjob_service_type_load_balancer_is_reported_on_the_rayjob():
    [finding] = sec001(inventory_of(rayjob("LoadBalancer")))
    assert finding.resource == "RayJob/jobs/rayjob-sample"
    assert "spec.rayClusterSpec.headGroupSpec.serviceType LoadBalancer" in finding.message
    assert sec001(inventory_of(rayjob("ClusterIP"))) == []


def test_rayservice_load_balancer_on_the_serve_service_alone_exposes_nothing():
    serve_service = (
        "  serveService:\n    metadata: {name: public-serve}\n    spec: {type: LoadBalancer}\n"
    )
    inventory = inventory_of(rayservice(serve_service=serve_service))
    assert inventory.services[("default", "public-serve")]["spec"]["type"] == "LoadBalancer"
    assert sec001(inventory) == []
    [finding] = sec001(inventory_of(rayservice("LoadBalancer")))
    assert finding.resource == "RayService/default/rayservice-sample"
    assert "rayservice-sample-head-svc" in finding.message


def ingress_to(port: int) -> str:
    return f"""
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata: {{name: ray-cluster-ingress}}
        spec:
          ingressClassName: alb
          rules:
          - http:
              paths:
              - path: /
                pathType: Prefix
                backend:
                  service:
                    name: raycluster-head-svc
                    port: {{number: {port}}}
        """


RAYCLUSTER = "apiVersion: ray.io/v1\nkind: RayCluster\nmetadata: {name: raycluster}\nspec:\n"


def test_ingress_to_the_dashboard_exposes_it_and_to_serve_does_not():
    cluster = RAYCLUSTER + cluster_spec(2)
    [finding] = sec001(inventory_of(cluster + "\n---\n" + textwrap.dedent(ingress_to(8265))))
    assert finding.resource == "Ingress/default/ray-cluster-ingress"
    assert "dashboard port 8265" in finding.message
    assert finding.evidence == "backend: raycluster-head-svc:8265"
    assert sec001(inventory_of(cluster + "\n---\n" + textwrap.dedent(ingress_to(8000)))) == []


def test_http_route_to_the_dashboard_exposes_it_and_to_serve_does_not():
    route = """
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: ray-cluster-http-route}
        spec:
          parentRefs: [{name: ray-cluster-gateway}]
          rules:
          - backendRefs: [{name: raycluster-head-svc, port: %d}]
        """
    cluster = RAYCLUSTER + cluster_spec(2)
    [finding] = sec001(inventory_of(cluster + "\n---\n" + textwrap.dedent(route % 8265)))
    assert finding.resource == "HTTPRoute/default/ray-cluster-http-route"
    assert "dashboard port 8265" in finding.message
    assert sec001(inventory_of(cluster + "\n---\n" + textwrap.dedent(route % 8000))) == []


def test_enable_ingress_creates_an_ingress_to_the_dashboard():
    inventory = inventory_of(RAYCLUSTER + cluster_spec(2, extra="enableIngress: true\n"))
    [finding] = sec001(inventory)
    assert finding.resource == "RayCluster/default/raycluster"
    assert "Ingress KubeRay creates (raycluster-head-ingress)" in finding.message


def test_network_policy_of_the_cluster_covers_its_pods():
    spec = RAYCLUSTER + "  networkPolicy: {mode: DenyAllIngress}\n" + cluster_spec(2)
    inventory = inventory_of(spec)
    policies = inventory.network_policies_in("default")
    assert [p["spec"]["policyTypes"] for p in policies] == [["Ingress"], ["Ingress"]]
    for workload in inventory.workloads:
        assert any(labels_match(p["spec"]["podSelector"], workload.pod_labels) for p in policies)
    egress_only = inventory_of(RAYCLUSTER + "  networkPolicy: {mode: DenyAllEgress}\n")
    assert all(
        p["spec"]["policyTypes"] == ["Egress"] for p in egress_only.network_policies_in("default")
    )


def test_gcs_fault_tolerance_redis_address_is_read_from_either_form():
    options = RAYCLUSTER + (
        "  gcsFaultToleranceOptions:\n    redisAddress: redis:6379\n" + cluster_spec(2)
    )
    [cluster] = inventory_of(options).kuberay_clusters
    assert cluster.gcs_redis_address() == "redis:6379"
    legacy = RAYCLUSTER + cluster_spec(2).replace(
        "image: rayproject/ray:2.52.0\n          resources",
        "image: rayproject/ray:2.52.0\n          env: [{name: RAY_REDIS_ADDRESS, value: "
        "redis://redis:6379}]\n          resources",
        1,
    )
    [cluster] = inventory_of(legacy).kuberay_clusters
    assert cluster.gcs_redis_address() == "redis://redis:6379"


def test_templated_replicas_do_not_stop_the_inventory():
    text = RAYCLUSTER + cluster_spec(2).replace("replicas: 2", 'replicas: "{{ .Values.n }}"')
    workers = [w for w in inventory_of(text).workloads if w.ray_role == "worker"]
    assert [w.replicas for w in workers] == [1]


def test_gcs_fault_tolerance_redis_address_must_name_a_service():
    spec = RAYCLUSTER + (
        "  gcsFaultToleranceOptions:\n    redisAddress: redis-svc:6379\n" + cluster_spec(2)
    )
    redis = """
        apiVersion: v1
        kind: Service
        metadata: {name: redis}
        spec:
          selector: {app: redis}
          ports: [{port: 6379}]
        """
    findings = diagnose(inventory_of(spec + "\n---\n" + textwrap.dedent(redis))).findings
    [finding] = [f for f in findings if f.code == "NET002"]
    assert finding.resource == "RayCluster/default/raycluster"
    assert "gcsFaultToleranceOptions.redisAddress" in finding.message
    assert finding.severity == "error" and "redis-svc" in finding.message
