"""The Services, and the addresses derived from them (cluster DNS names, no IP literals)."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra import naming
from infra.components.args import NamespacedArgs
from infra.components.base import Component, name_of


def _url(service: k8s.core.v1.Service, port_name: str, template: str) -> pulumi.Output[str]:
    """`template` filled with the Service's cluster DNS name and the port called `port_name`."""

    def fill(args) -> str:
        metadata, spec = args
        port = next(p["port"] for p in spec["ports"] if p["name"] == port_name)
        host = f"{metadata['name']}.{metadata['namespace']}.svc.cluster.local"
        return template.format(host=host, port=int(port))

    return pulumi.Output.all(service.metadata, service.spec).apply(fill)


class Addresses(Component):
    def __init__(self, name: str, args: NamespacedArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("Addresses", name, opts)
        self._namespace = args.namespace
        redis = self._service(naming.REDIS, [("redis", naming.REDIS_PORT)])
        # Only ClusterIP: the dashboard (and Jobs API) is reachable inside the cluster alone.
        ray_head = self._service(
            naming.RAY_HEAD,
            [
                ("gcs", naming.RAY_GCS_PORT),
                ("client", naming.RAY_CLIENT_PORT),
                ("dashboard", naming.RAY_DASHBOARD_PORT),
                ("metrics", naming.RAY_METRICS_PORT),
            ],
        )
        api = self._service(naming.API, [("http", naming.API_PORT)])
        self.services = (redis, ray_head, api)
        self.api_service = api
        self.redis_service_name = name_of(redis)
        self.redis_url = _url(redis, "redis", "redis://{host}:{port}/0")
        self.ray_dashboard_url = _url(ray_head, "dashboard", "http://{host}:{port}")
        self.ray_gcs_address = _url(ray_head, "gcs", "{host}:{port}")
        self.api_url = _url(api, "http", "http://{host}:{port}")
        self.register_outputs(
            {
                "redis_url": self.redis_url,
                "ray_dashboard_url": self.ray_dashboard_url,
                "api_url": self.api_url,
            }
        )

    def _service(self, component: str, ports: list[tuple[str, int]]) -> k8s.core.v1.Service:
        return k8s.core.v1.Service(
            self.child_name(component),
            metadata=naming.metadata(component, self._namespace),
            spec={
                "type": "ClusterIP",
                "selector": naming.selector(component),
                "ports": [
                    {"name": port_name, "port": port, "targetPort": port, "protocol": "TCP"}
                    for port_name, port in ports
                ],
            },
            opts=self.child_opts(component),
        )
