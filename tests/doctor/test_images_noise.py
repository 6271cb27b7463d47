"""Images belong to a Dockerfile only on evidence, and the noisy security and
availability findings are said once, where true, at the right level."""

from __future__ import annotations

import textwrap

import yaml

from doctor.diagnose import diagnose
from doctor.images import build_for_image, build_map_kind
from doctor.inventory import BuildFile, Inventory
from doctor.sources import load_manifests

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: shop}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: {name}
          image: {image}
          ports:
            - containerPort: 8080
"""


def inventory_of(objects: str = "", files: tuple[tuple[str, str, str], ...] = ()) -> Inventory:
    """Objects from YAML text, and build files as (path, kind, text)."""
    inventory = Inventory()
    for document in yaml.safe_load_all(textwrap.dedent(objects)):
        if document:
            inventory.add(document)
    inventory.files.extend(BuildFile(path, kind, text) for path, kind, text in files)
    return inventory


def diagnose_dir(tmp_path, objects: str, **files: str):
    (tmp_path / "objects.yaml").write_text(textwrap.dedent(objects))
    for name, content in files.items():
        path = tmp_path / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content))
    return diagnose(load_manifests([str(tmp_path)]))


def findings(result, code: str) -> list[tuple[str, str, str, str]]:
    return [
        (f.resource, f.severity, f.message, f.evidence) for f in result.findings if f.code == code
    ]


ROOT_DOCKERFILE = """
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
CMD ["gunicorn", "app:app", "-b", "0.0.0.0:8080"]
"""


# -- item 7: which Dockerfile built an image ----------------------------------------------------


def test_folder_named_like_the_image_builds_it():
    inventory = inventory_of(
        files=(
            ("backend/Dockerfile", "dockerfile", ROOT_DOCKERFILE),
            ("backend/requirements.txt", "requirements", "flask==3.0.0\nray[client]==2.9.0\n"),
            ("worker/Dockerfile", "dockerfile", "FROM rayproject/ray:2.9.0\n"),
            ("worker/requirements.txt", "requirements", "torch==2.3.0\n"),
        )
    )
    build = build_for_image(inventory, "registry.example.com/shop/backend:1.4.2")
    assert build.dockerfile.path == "backend/Dockerfile"
    assert [f.path for f in build.requirements] == ["backend/requirements.txt"]


def test_folder_behind_a_project_prefix_builds_it():
    # The field report's glususer/mochi-backend:latest, built from backend/.
    inventory = inventory_of(files=(("backend/Dockerfile", "dockerfile", ROOT_DOCKERFILE),))
    assert build_for_image(inventory, "glususer/mochi-backend:latest").dockerfile.path == (
        "backend/Dockerfile"
    )


def test_a_dockerfile_named_after_the_image_builds_it():
    inventory = inventory_of(
        files=(
            ("images/api.Dockerfile", "dockerfile", ROOT_DOCKERFILE),
            ("images/worker.Dockerfile", "dockerfile", "FROM rayproject/ray:2.9.0-py311\n"),
        )
    )
    assert build_for_image(inventory, "ghcr.io/acme/mochi-api:0.1.0").dockerfile.path == (
        "images/api.Dockerfile"
    )


def test_an_image_named_in_a_dockerfiles_text_is_not_built_by_it():
    # The substring `ghcr.io/acme/worker` in a comment once was enough.
    tools = "# pushes next to ghcr.io/acme/worker\nFROM alpine:3.19\nRUN apk add curl\n"
    inventory = inventory_of(files=(("tools/Dockerfile", "dockerfile", tools),))
    assert build_for_image(inventory, "ghcr.io/acme/worker:2.0") is None


def test_a_folder_named_like_a_word_inside_the_image_does_not_build_it():
    # `mochi/` is the project prefix of mochi-backend, not the backend's build context.
    inventory = inventory_of(files=(("mochi/Dockerfile", "dockerfile", ROOT_DOCKERFILE),))
    assert build_for_image(inventory, "glususer/mochi-backend:1.0") is None


def test_a_dockerfile_from_the_image_extends_it_and_does_not_build_it():
    inventory = inventory_of(
        files=(
            ("redis/Dockerfile", "dockerfile", "FROM redis:7.2\nCOPY redis.conf /etc/redis/\n"),
            ("ray/Dockerfile", "dockerfile", "FROM python:3.11\nRUN pip install ray==2.9.0\n"),
        )
    )
    assert build_for_image(inventory, "redis:7.2") is None
    # The Ray project publishes rayproject/ray: a local ray/ folder did not build it.
    assert build_for_image(inventory, "rayproject/ray:2.9.0-py310-gpu") is None


def test_two_equally_named_dockerfiles_are_no_evidence():
    inventory = inventory_of(
        files=(
            ("staging/backend/Dockerfile", "dockerfile", ROOT_DOCKERFILE),
            ("prod/backend/Dockerfile", "dockerfile", ROOT_DOCKERFILE),
        )
    )
    assert build_for_image(inventory, "registry.example.com/shop/backend:1.0") is None


def test_the_exact_name_wins_over_the_prefixed_one():
    inventory = inventory_of(
        files=(
            ("backend/Dockerfile", "dockerfile", ROOT_DOCKERFILE),
            ("mochi-backend/Dockerfile", "dockerfile", ROOT_DOCKERFILE),
        )
    )
    build = build_for_image(inventory, "glususer/mochi-backend:1.0")
    assert build.dockerfile.path == "mochi-backend/Dockerfile"


COMPOSE = """
services:
  api:
    build:
      context: ./services/storefront
      dockerfile: Dockerfile.prod
    image: ghcr.io/acme/shop-api:1.2.0
    ports: ["8080:8080"]
  backend:
    build: ./server
    image: ghcr.io/acme/backend:1.2.0
  templated:
    build: ./templated
    image: ${REGISTRY}/templated:${TAG}
  cache:
    image: redis:7.2
"""


def test_a_compose_file_maps_an_image_to_its_dockerfile():
    inventory = inventory_of(
        files=(
            # Paths in a compose file are relative to its folder.
            ("deploy/docker-compose.yml", "compose", COMPOSE.replace("./", "../")),
            ("services/storefront/Dockerfile.prod", "dockerfile", ROOT_DOCKERFILE),
            ("services/storefront/requirements.txt", "requirements", "flask==3.0.0\n"),
        )
    )
    build = build_for_image(inventory, "ghcr.io/acme/shop-api:1.3.0")
    assert build.dockerfile.path == "services/storefront/Dockerfile.prod"
    assert [f.path for f in build.requirements] == ["services/storefront/requirements.txt"]


def test_a_compose_mapping_wins_over_a_folder_name_and_is_not_guessed_past():
    inventory = inventory_of(
        files=(
            ("docker-compose.yml", "compose", COMPOSE),
            ("server/Dockerfile", "dockerfile", ROOT_DOCKERFILE + "USER 10001\n"),
            ("backend/Dockerfile", "dockerfile", ROOT_DOCKERFILE),
            ("templated/Dockerfile", "dockerfile", ROOT_DOCKERFILE),
        )
    )
    assert build_for_image(inventory, "ghcr.io/acme/backend:1.2.0").user == "10001"
    # Mapped to services/storefront/Dockerfile.prod, which is not in the input: no guess.
    inventory.files.append(BuildFile("shop-api/Dockerfile", "dockerfile", ROOT_DOCKERFILE))
    assert build_for_image(inventory, "ghcr.io/acme/shop-api:1.2.0") is None
    # An interpolated image maps nothing; the folder name still counts.
    assert build_for_image(inventory, "ghcr.io/acme/templated:3").dockerfile.path == (
        "templated/Dockerfile"
    )


SKAFFOLD = """
apiVersion: skaffold/v4beta11
kind: Config
build:
  artifacts:
    - image: gcr.io/acme/leeroy-web
      context: web
      docker:
        dockerfile: Dockerfile.release
    - image: gcr.io/acme/leeroy-app
      context: app
      jib: {}
profiles:
  - name: gpu
    build:
      artifacts:
        - image: gcr.io/acme/trainer
          context: training/gpu
"""


def test_a_skaffold_file_maps_images_built_by_docker():
    inventory = inventory_of(
        files=(
            ("skaffold.yaml", "skaffold", SKAFFOLD),
            ("web/Dockerfile.release", "dockerfile", ROOT_DOCKERFILE),
            ("app/Dockerfile", "dockerfile", ROOT_DOCKERFILE),
            ("training/gpu/Dockerfile", "dockerfile", "FROM rayproject/ray:2.9.0\n"),
        )
    )
    assert build_for_image(inventory, "gcr.io/acme/leeroy-web:v1").dockerfile.path == (
        "web/Dockerfile.release"
    )
    # jib builds leeroy-app without a Dockerfile.
    assert build_for_image(inventory, "gcr.io/acme/leeroy-app:v1") is None
    trainer = build_for_image(inventory, "gcr.io/acme/trainer@sha256:" + "a" * 64)
    assert trainer.dockerfile.path == "training/gpu/Dockerfile"


def test_build_map_files_are_known_by_name():
    assert build_map_kind("docker-compose.yml") == "compose"
    assert build_map_kind("docker-compose.prod.yaml") == "compose"
    assert build_map_kind("compose.yaml") == "compose"
    assert build_map_kind("skaffold.yaml") == "skaffold"
    assert build_map_kind("composer.yaml") is None
    assert build_map_kind("deployment.yaml") is None


def test_root_image_found_only_through_evidence(tmp_path):
    objects = DEPLOYMENT.format(name="backend", image="registry.example.com/shop/backend:1.4.2")
    result = diagnose_dir(tmp_path, objects, backend__Dockerfile=ROOT_DOCKERFILE)
    [(resource, severity, message, evidence)] = findings(result, "SEC004")
    assert (resource, severity) == ("Deployment/shop/backend", "warning")
    assert message == "container backend of Deployment/shop/backend runs as root or privileged"
    assert evidence.endswith("backend/Dockerfile: no USER (runs as root); pod sets no runAsUser")

    other = tmp_path / "other"
    other.mkdir()
    tools = "# image: registry.example.com/shop/backend\n" + ROOT_DOCKERFILE
    result = diagnose_dir(other, objects, tools__Dockerfile=tools)
    assert findings(result, "SEC004") == []


def test_a_compose_file_on_disk_maps_the_image_and_is_not_read_as_a_manifest(tmp_path):
    objects = DEPLOYMENT.format(name="storefront", image="ghcr.io/acme/shop-api:1.2.0")
    result = diagnose_dir(
        tmp_path,
        objects,
        **{"docker-compose.yml": COMPOSE, "services__storefront__Dockerfile.prod": ROOT_DOCKERFILE},
    )
    [(resource, _, _, evidence)] = findings(result, "SEC004")
    assert resource == "Deployment/shop/storefront"
    assert evidence.endswith(
        "services/storefront/Dockerfile.prod: no USER (runs as root); pod sets no runAsUser"
    )
    assert result.skipped == [] and result.not_checked == {}


# -- item 9: SEC002 once per namespace ----------------------------------------------------------

RAY_AND_REDIS = """
apiVersion: ray.io/v1
kind: RayCluster
metadata: {name: raycluster-complete, namespace: ml}
spec:
  rayVersion: "2.46.0"
  headGroupSpec:
    rayStartParams: {}
    template:
      spec:
        containers:
          - name: ray-head
            image: rayproject/ray:2.46.0
            resources:
              limits: {cpu: "1", memory: 2Gi}
  workerGroupSpecs:
    - groupName: small-group
      replicas: 1
      rayStartParams: {}
      template:
        spec:
          containers:
            - name: ray-worker
              image: rayproject/ray:2.46.0
              resources:
                limits: {cpu: "1", memory: 2Gi}
    - groupName: large-group
      replicas: 1
      rayStartParams: {}
      template:
        spec:
          containers:
            - name: ray-worker
              image: rayproject/ray:2.46.0
              resources:
                limits: {cpu: "2", memory: 4Gi}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: redis, namespace: ml}
spec:
  selector:
    matchLabels: {app: redis}
  template:
    metadata:
      labels: {app: redis}
    spec:
      containers:
        - name: redis
          image: redis:7.2
          command: ["redis-server", "--requirepass", "$(REDIS_PASSWORD)"]
          env:
            - name: REDIS_PASSWORD
              valueFrom: {secretKeyRef: {name: redis, key: password}}
          ports:
            - containerPort: 6379
"""


def test_sec002_once_per_namespace_listing_its_workloads():
    result = diagnose(inventory_of(RAY_AND_REDIS))
    assert findings(result, "SEC002") == [
        (
            "Namespace/ml/ml",
            "warning",
            "2 Ray or Redis workload(s) in namespace ml accept connections from every pod in "
            "the cluster: Deployment/ml/redis (Redis); "
            "RayCluster/ml/raycluster-complete (Ray head, Ray worker)",
            "no NetworkPolicy in namespace ml",
        )
    ]


REDIS_POLICY = """
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: redis-from-ray, namespace: ml}
spec:
  podSelector:
    matchLabels: {app: redis}
  ingress:
    - from:
        - podSelector:
            matchLabels: {ray.io/cluster: raycluster-complete}
"""

EGRESS_ONLY = """
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-dns, namespace: ml}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
    - ports: [{port: 53, protocol: UDP}]
"""


def test_sec002_lists_only_what_no_ingress_policy_selects():
    result = diagnose(inventory_of(RAY_AND_REDIS + REDIS_POLICY + EGRESS_ONLY))
    [(resource, severity, message, evidence)] = findings(result, "SEC002")
    assert (resource, severity) == ("Namespace/ml/ml", "warning")
    assert message.startswith("1 Ray or Redis workload(s) in namespace ml")
    assert message.endswith(": RayCluster/ml/raycluster-complete (Ray head, Ray worker)")
    assert evidence == "NetworkPolicies in ml selecting none of them: egress-dns, redis-from-ray"


def test_sec002_quiet_when_a_policy_selects_them_all():
    deny_all = "---\n" + textwrap.dedent(
        """\
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: default-deny-ingress, namespace: ml}
        spec:
          podSelector: {}
        """
    )
    assert findings(diagnose(inventory_of(RAY_AND_REDIS + "\n" + deny_all)), "SEC002") == []


def test_sec002_one_finding_for_each_namespace():
    other = RAY_AND_REDIS.replace("namespace: ml", "namespace: ml-staging")
    result = diagnose(inventory_of(RAY_AND_REDIS + "---\n" + other))
    assert sorted(f[0] for f in findings(result, "SEC002")) == [
        "Namespace/ml-staging/ml-staging",
        "Namespace/ml/ml",
    ]


# -- item 9: SEC004 for node agents -------------------------------------------------------------

DCGM_EXPORTER = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: dcgm-exporter, namespace: gpu-monitoring}
spec:
  selector:
    matchLabels: {app.kubernetes.io/name: dcgm-exporter}
  template:
    metadata:
      labels: {app.kubernetes.io/name: dcgm-exporter}
    spec:
      nodeSelector: {cloud.google.com/gke-accelerator: nvidia-l4}
      containers:
        - name: dcgm-exporter
          image: nvcr.io/nvidia/k8s/dcgm-exporter:3.3.5-3.4.1-ubuntu22.04
          securityContext:
            privileged: true
          ports:
            - {name: metrics, containerPort: 9400}
          volumeMounts:
            - {name: pod-resources, mountPath: /var/lib/kubelet/pod-resources}
      volumes:
        - name: pod-resources
          hostPath: {path: /var/lib/kubelet/pod-resources}
"""

EBS_CSI_NODE = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ebs-csi-node, namespace: kube-system}
spec:
  selector:
    matchLabels: {app: ebs-csi-node}
  template:
    metadata:
      labels: {app: ebs-csi-node}
    spec:
      containers:
        - name: ebs-plugin
          image: public.ecr.aws/ebs-csi-driver/aws-ebs-csi-driver:v1.30.0
          args: [node, --endpoint=$(CSI_ENDPOINT)]
          securityContext: {privileged: true}
        - name: node-driver-registrar
          image: public.ecr.aws/eks-distro/kubernetes-csi/node-driver-registrar:v2.10.0
"""


def test_sec004_info_for_node_agents_privileged_by_design():
    result = diagnose(inventory_of(DCGM_EXPORTER + "---\n" + EBS_CSI_NODE))
    assert findings(result, "SEC004") == [
        (
            "DaemonSet/gpu-monitoring/dcgm-exporter",
            "info",
            "container dcgm-exporter of DaemonSet/gpu-monitoring/dcgm-exporter runs as root or "
            "privileged, as a node agent "
            "(nvcr.io/nvidia/k8s/dcgm-exporter:3.3.5-3.4.1-ubuntu22.04) does by design: it "
            "reaches the node's devices, files or network",
            "securityContext.privileged: true",
        ),
        (
            "DaemonSet/kube-system/ebs-csi-node",
            "info",
            "container ebs-plugin of DaemonSet/kube-system/ebs-csi-node runs as root or "
            "privileged, as a node agent "
            "(public.ecr.aws/ebs-csi-driver/aws-ebs-csi-driver:v1.30.0) does by design: it "
            "reaches the node's devices, files or network",
            "securityContext.privileged: true",
        ),
    ]


NODE_TUNING = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: tcp-rmem, namespace: kube-system}
spec:
  selector:
    matchLabels: {name: tcp-rmem}
  template:
    metadata:
      labels: {name: tcp-rmem}
    spec:
      hostNetwork: true
      hostPID: true
      nodeSelector: {cloud.google.com/gke-tpu-accelerator: tpu-v6e-slice}
      initContainers:
        - name: tcp-rmem
          image: ubuntu:24.04
          securityContext: {privileged: true}
          command: [sh, -c, "sysctl -w net.ipv4.tcp_rmem='4096 41943040 314572800'"]
      containers:
        - name: pause
          image: registry.k8s.io/pause:3.9
"""


def test_sec004_info_for_a_daemonset_that_acts_on_the_node():
    [(resource, severity, message, evidence)] = findings(
        diagnose(inventory_of(NODE_TUNING)), "SEC004"
    )
    assert (resource, severity, evidence) == (
        "DaemonSet/kube-system/tcp-rmem",
        "info",
        "securityContext.privileged: true",
    )
    assert "as a node agent (hostPID: true) does by design" in message


def test_sec004_still_warns_for_other_privileged_containers():
    as_deployment = DCGM_EXPORTER.replace("kind: DaemonSet", "kind: Deployment")
    own_daemonset = DCGM_EXPORTER.replace(
        "nvcr.io/nvidia/k8s/dcgm-exporter:3.3.5-3.4.1-ubuntu22.04", "ghcr.io/acme/log-agent:1.0"
    ).replace("name: dcgm-exporter, namespace", "name: log-agent, namespace")
    result = diagnose(inventory_of(as_deployment + "---\n" + own_daemonset))
    assert [(f[0], f[1], f[3]) for f in findings(result, "SEC004")] == [
        ("DaemonSet/gpu-monitoring/log-agent", "warning", "securityContext.privileged: true"),
        ("Deployment/gpu-monitoring/dcgm-exporter", "warning", "securityContext.privileged: true"),
    ]


# -- item 9: SEC006 -----------------------------------------------------------------------------


def _with_policy(name: str, image: str, policy: str) -> str:
    return DEPLOYMENT.format(name=name, image=image) + f"          imagePullPolicy: {policy}\n"


def test_sec006_not_for_images_loaded_by_hand_or_still_templated():
    objects = "---\n".join(
        [
            _with_policy("kind-loaded", "shop-api:latest", "Never"),
            _with_policy("templated", "$VLLM_IMAGE", "IfNotPresent"),
            _with_policy("cached", "ghcr.io/acme/shop-api:latest", "IfNotPresent"),
            _with_policy("pinned", "ghcr.io/acme/shop-api:1.2.0", "IfNotPresent"),
        ]
    )
    assert findings(diagnose(inventory_of(objects)), "SEC006") == [
        (
            "Deployment/shop/cached",
            "warning",
            "container cached: a node that pulled ghcr.io/acme/shop-api:latest once never pulls "
            "it again, so a rebuilt image under the same tag is not deployed",
            "image: ghcr.io/acme/shop-api:latest, imagePullPolicy: IfNotPresent",
        )
    ]


# -- item 9: AVAIL006 ---------------------------------------------------------------------------

SERVICE = """
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports:
    - {port: 80, targetPort: 8080}
"""

NO_SERVICE_KINDS = """
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: node-agent, namespace: shop}
spec:
  selector:
    matchLabels: {app: node-agent}
  template:
    metadata:
      labels: {app: node-agent}
    spec:
      containers:
        - {name: agent, image: ghcr.io/acme/agent:1.0}
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate, namespace: shop}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - {name: migrate, image: ghcr.io/acme/migrate:1.0, command: [alembic, upgrade, head]}
---
apiVersion: v1
kind: Pod
metadata: {name: debug, namespace: shop}
spec:
  containers:
    - {name: debug, image: nicolaka/netshoot:v0.13, command: [sleep, infinity]}
"""


def test_avail006_traffic_only_for_workloads_behind_a_service():
    objects = (
        DEPLOYMENT.format(name="web", image="ghcr.io/acme/web:1.0")
        + SERVICE
        + "---\n"
        + DEPLOYMENT.format(name="consumer", image="ghcr.io/acme/consumer:1.0")
        + NO_SERVICE_KINDS
    )
    assert findings(diagnose(inventory_of(objects)), "AVAIL006") == [
        (
            "Deployment/shop/web",
            "warning",
            "container web has no probes: Service web sends traffic before it is ready and "
            "nothing restarts it when it hangs",
            "container web: no readinessProbe, no livenessProbe",
        ),
        (
            "Deployment/shop/consumer",
            "info",
            "container consumer has no probes: nothing restarts it when it hangs (no Service "
            "selects it, so readiness does not gate traffic)",
            "container consumer: no readinessProbe, no livenessProbe",
        ),
    ]


def test_avail006_quiet_with_a_probe():
    web = DEPLOYMENT.format(name="web", image="ghcr.io/acme/web:1.0") + (
        "          readinessProbe:\n            httpGet: {path: /healthz, port: 8080}\n"
    )
    assert findings(diagnose(inventory_of(web + SERVICE)), "AVAIL006") == []
