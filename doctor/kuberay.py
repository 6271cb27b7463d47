"""What the KubeRay operator creates from its custom resources, so that every check sees it.

A RayCluster, a RayJob (spec.rayClusterSpec), a RayService (spec.rayClusterConfig) and a
RayCronJob (spec.jobTemplate.rayClusterSpec) each describe one Ray cluster. From it the operator
makes the head Service (`<cluster>-head-svc`, or `headService` with its own name, type and
ports), RayService's stable `<name>-head-svc` and `<name>-serve-svc`, the head Ingress of
`enableIngress`, and the NetworkPolicies of `spec.networkPolicy`. The names and ports follow
KubeRay v1.x (controllers/ray/common/service.go, utils/constant.go).
"""

from __future__ import annotations

from dataclasses import dataclass

from doctor.objects import name_of, namespace_of
from service.config import RAY_CLIENT_PORT, RAY_DASHBOARD_PORT, RAY_GCS_PORT, RAY_METRICS_PORT

KUBERAY_KINDS = ("RayCluster", "RayJob", "RayService", "RayCronJob")
CREATED_BY_ANNOTATION = "doctor.mochi.dev/created-by"
DEFAULT_HEAD_PORTS = {
    "client": RAY_CLIENT_PORT,
    "gcs-server": RAY_GCS_PORT,
    "dashboard": RAY_DASHBOARD_PORT,
    "metrics": RAY_METRICS_PORT,
    "serve": 8000,  # Ray Serve's HTTP proxy
}
METRICS_PORT_NAME, METRICS_PORT = "metrics", 8080
# The head ports that run code or read cluster state without authentication.
CONTROL_PORT_NAMES = ("gcs-server", "gcs", "dashboard", "client")
# Where each kind keeps its cluster spec.
SPEC_PATHS = {
    "RayCluster": ("spec",),
    "RayJob": ("spec", "rayClusterSpec"),
    "RayService": ("spec", "rayClusterConfig"),
    "RayCronJob": ("spec", "jobTemplate", "rayClusterSpec"),
}
# NetworkPolicy spec.networkPolicy.mode -> the policy types the operator's policies restrict.
POLICY_TYPES = {
    "DenyAll": ["Ingress", "Egress"],
    "DenyAllIngress": ["Ingress"],
    "DenyAllEgress": ["Egress"],
}


@dataclass(frozen=True)
class EmbeddedCluster:
    """One Ray cluster a KubeRay object describes."""

    owner: dict
    spec: dict

    @property
    def kind(self) -> str:
        return str(self.owner.get("kind"))

    @property
    def namespace(self) -> str:
        return namespace_of(self.owner)

    @property
    def owner_name(self) -> str:
        return name_of(self.owner)

    @property
    def spec_path(self) -> str:
        return ".".join(SPEC_PATHS[self.kind])

    @property
    def name_is_generated(self) -> bool:
        """RayJob and RayService clusters are named `<owner>-<5 random characters>`."""
        return self.kind != "RayCluster"

    @property
    def label_value(self) -> str:
        """The pods' ray.io/cluster label: the cluster's name, or a stand-in for a generated one
        (no real Service selects a random name)."""
        if self.name_is_generated:
            return f"{self.owner_name}-<generated>"
        return self.owner_name

    @property
    def head_group(self) -> dict:
        return _mapping(self.spec.get("headGroupSpec"))

    @property
    def worker_groups(self) -> list[dict]:
        groups = self.spec.get("workerGroupSpecs")
        return [g for g in groups if isinstance(g, dict)] if isinstance(groups, list) else []

    @property
    def head_service_type(self) -> str:
        custom = _mapping(_mapping(self.head_group.get("headService")).get("spec"))
        return str(custom.get("type") or self.head_group.get("serviceType") or "ClusterIP")

    def head_container(self) -> dict:
        containers = _mapping(_mapping(self.head_group.get("template")).get("spec")).get(
            "containers"
        )
        first = containers[0] if isinstance(containers, list) and containers else {}
        return first if isinstance(first, dict) else {}

    def head_ports(self) -> dict[str, int]:
        """The ports KubeRay puts on the head Service: the head container's declared ports, or
        its defaults when it declares none; the metrics port is always added."""
        ports: dict[str, int] = {}
        for port in self.head_container().get("ports") or []:
            number = _port_number(_mapping(port).get("containerPort"))
            if number is not None:
                ports[str(port.get("name") or f"{number}-port")] = number
        ports = ports or dict(DEFAULT_HEAD_PORTS)
        ports.setdefault(METRICS_PORT_NAME, METRICS_PORT)
        return ports

    def serve_ports(self) -> dict[str, int]:
        return {
            n: p for n, p in self.head_ports().items() if n == "serve" or n.startswith("serve-")
        }

    def gcs_redis_address(self) -> str | None:
        """The external Redis of GCS fault tolerance, when the cluster uses one."""
        options = _mapping(self.spec.get("gcsFaultToleranceOptions"))
        if options.get("redisAddress"):
            return str(options["redisAddress"])
        for item in self.head_container().get("env") or []:
            if _mapping(item).get("name") == "RAY_REDIS_ADDRESS" and item.get("value"):
                return str(item["value"])
        return None


def kuberay_pod_labels(
    cluster: EmbeddedCluster, role: str, group: str, template_labels: dict | None
) -> dict:
    """The labels the operator puts on a group's pods (labelPod): its defaults, then the
    template's labels, except ray.io/cluster, node-type and group, which cannot be overridden."""
    return {
        "ray.io/is-ray-node": "yes",
        "ray.io/identifier": f"{cluster.label_value}-{role}",
        "app.kubernetes.io/name": "kuberay",
        "app.kubernetes.io/created-by": "kuberay-operator",
        **(template_labels if isinstance(template_labels, dict) else {}),
        "ray.io/cluster": cluster.label_value,
        "ray.io/node-type": role,
        "ray.io/group": "headgroup" if role == "head" else group,
    }


def _mapping(value) -> dict:
    return value if isinstance(value, dict) else {}


def _port_number(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def embedded_clusters(objects: dict[str, list[dict]]) -> list[EmbeddedCluster]:
    """Every Ray cluster the KubeRay objects describe (a RayJob that selects an existing
    cluster with clusterSelector describes none)."""
    result = []
    for kind, path in SPEC_PATHS.items():
        for obj in objects.get(kind, []):
            spec: object = obj
            for key in path:
                spec = _mapping(spec).get(key)
            if isinstance(spec, dict) and spec.get("headGroupSpec") is not None:
                result.append(EmbeddedCluster(obj, spec))
    return result


def _created(kind: str, name: str, cluster: EmbeddedCluster, spec: dict) -> dict:
    created_by = f"{cluster.kind}/{cluster.namespace}/{cluster.owner_name}"
    return {
        "apiVersion": "networking.k8s.io/v1" if kind == "NetworkPolicy" else "v1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": cluster.namespace,
            "annotations": {CREATED_BY_ANNOTATION: created_by},
        },
        "spec": spec,
    }


def _service_ports(ports: dict[str, int]) -> list[dict]:
    return [
        {"name": name, "port": port, "targetPort": port} for name, port in sorted(ports.items())
    ]


def head_selector(cluster: EmbeddedCluster) -> dict:
    return {"ray.io/cluster": cluster.label_value, "ray.io/node-type": "head"}


def created_services(cluster: EmbeddedCluster) -> list[dict]:
    """The Services the operator creates that clients can name: a RayCluster's head Service
    (custom headService merged in), a RayService's head and serve Services. A RayJob's head
    Service carries the generated cluster name, so nothing can address it by a fixed name."""
    custom = _mapping(cluster.head_group.get("headService"))
    custom_spec = _mapping(custom.get("spec"))
    spec = {
        **custom_spec,
        "type": cluster.head_service_type,
        "selector": head_selector(cluster),
        "ports": list(custom_spec.get("ports") or []) + _service_ports(cluster.head_ports()),
    }
    if cluster.kind == "RayCluster":
        name = _mapping(custom.get("metadata")).get("name") or f"{cluster.owner_name}-head-svc"
        return [_created("Service", str(name), cluster, spec)]
    if cluster.kind != "RayService":
        return []
    serve_custom = _mapping(cluster.owner.get("spec")).get("serveService")
    serve_spec = _mapping(_mapping(serve_custom).get("spec"))
    serve_name = _mapping(_mapping(serve_custom).get("metadata")).get("name")
    serve = {
        **serve_spec,
        "type": serve_spec.get("type") or cluster.head_group.get("serviceType") or "ClusterIP",
        "selector": {"ray.io/cluster": cluster.label_value, "ray.io/serve": "true"},
        "ports": _service_ports(cluster.serve_ports()) or list(serve_spec.get("ports") or []),
    }
    return [
        _created("Service", f"{cluster.owner_name}-head-svc", cluster, spec),
        _created("Service", str(serve_name or f"{cluster.owner_name}-serve-svc"), cluster, serve),
    ]


def created_network_policies(cluster: EmbeddedCluster) -> list[dict]:
    """With spec.networkPolicy the operator isolates the head and every worker group: traffic
    inside the cluster is allowed, the rest only by the rules given."""
    options = cluster.spec.get("networkPolicy")
    if not isinstance(options, dict):
        return []
    types = POLICY_TYPES.get(str(options.get("mode") or "DenyAll"), [])
    return [
        _created(
            "NetworkPolicy",
            f"{cluster.owner_name}-{role}",
            cluster,
            {
                "podSelector": {
                    "matchLabels": {"ray.io/cluster": cluster.label_value, "ray.io/node-type": role}
                },
                "policyTypes": types,
            },
        )
        for role in ("head", "worker")
    ]


def created_ingresses(cluster: EmbeddedCluster) -> list[dict]:
    """`headGroupSpec.enableIngress: true` makes an Ingress to the head's dashboard port."""
    if cluster.head_group.get("enableIngress") is not True or cluster.kind != "RayCluster":
        return []
    backend = {
        "service": {
            "name": f"{cluster.owner_name}-head-svc",
            "port": {"number": cluster.head_ports().get("dashboard", RAY_DASHBOARD_PORT)},
        }
    }
    rule = {"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}
    return [_created("Ingress", f"{cluster.owner_name}-head-ingress", cluster, {"rules": [rule]})]


def created_by(obj: dict) -> str | None:
    """The KubeRay object a derived object stands for, when the doctor derived it."""
    return _mapping(_mapping(obj.get("metadata")).get("annotations")).get(CREATED_BY_ANNOTATION)
