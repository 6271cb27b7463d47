"""Default-deny ingress, then only the paths the design needs."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra import naming
from infra.components.args import NamespacedArgs
from infra.components.base import Component, shared_metadata

RAY_PODS = [naming.RAY_HEAD, naming.RAY_WORKER]


def _from(components: list[str]) -> dict:
    return {
        "podSelector": {
            "matchExpressions": [
                {"key": naming.COMPONENT_LABEL, "operator": "In", "values": components}
            ]
        }
    }


def _tcp(*ports: int) -> list[dict]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def policies() -> dict[str, dict]:
    """name -> NetworkPolicy spec."""
    return {
        # No rule opens the supervisor's health port (nor any other probe port): kubelet probes
        # come from the pod's own node, and most CNIs (Calico, Cilium, kube-router, ...) never
        # apply NetworkPolicy to that traffic (the Kubernetes docs list "block access from their
        # resident node" among what policies cannot do). A CNI that did would need an ipBlock of
        # the node CIDR on the probe ports: cluster-specific, left to the operator.
        "default-deny-ingress": {"podSelector": {}, "policyTypes": ["Ingress"]},
        "redis-from-clients": {
            "podSelector": {"matchLabels": naming.selector(naming.REDIS)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [_from([naming.API, naming.SUPERVISOR, *RAY_PODS])],
                    "ports": _tcp(naming.REDIS_PORT),
                }
            ],
        },
        # Ray nodes talk to each other on many (dynamic) ports.
        "ray-from-ray": {
            "podSelector": _from(RAY_PODS)["podSelector"],
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [_from(RAY_PODS)]}],
        },
        # The supervisor submits the pool driver through the Jobs API on the dashboard port.
        "ray-dashboard-from-supervisor": {
            "podSelector": {"matchLabels": naming.selector(naming.RAY_HEAD)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [_from([naming.SUPERVISOR])],
                    "ports": _tcp(naming.RAY_DASHBOARD_PORT),
                }
            ],
        },
        "api-http": {
            "podSelector": {"matchLabels": naming.selector(naming.API)},
            "policyTypes": ["Ingress"],
            "ingress": [{"ports": _tcp(naming.API_PORT)}],
        },
    }


class NetworkPolicies(Component):
    def __init__(self, name: str, args: NamespacedArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("NetworkPolicies", name, opts)
        for policy_name, spec in policies().items():
            k8s.networking.v1.NetworkPolicy(
                self.child_name(policy_name),
                metadata=shared_metadata(policy_name, args.namespace),
                spec=spec,
                opts=self.child_opts(policy_name),
            )
        self.register_outputs({})
