"""Network addresses found in a deployment: env values, command lines, ConfigMaps,
rayStartParams and hostAliases, each with where it was found."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from doctor.inventory import Inventory, Workload, command_text, name_of, namespace_of

_URL = re.compile(
    r"\b(?P<scheme>[a-z][a-z0-9+.-]*)://(?:[^@/\s'\"]*@)?"
    r"(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9][A-Za-z0-9.\-_]*)(?::(?P<port>\d{1,5}))?"
)
_HOST_PORT = re.compile(
    r"(?<![\w./:@-])(?P<host>[A-Za-z0-9][A-Za-z0-9.\-]*):(?P<port>\d{2,5})(?![\w.:])"
)
_NC = re.compile(r"\bnc\s+(?:-\w+\s+)*(?P<host>[A-Za-z0-9][A-Za-z0-9.\-]*)\s+(?P<port>\d{2,5})\b")
_CLI_HOST = re.compile(r"\s-h\s+(?P<host>[A-Za-z0-9][A-Za-z0-9.\-]*)(?:\s+-p\s+(?P<port>\d{2,5}))?")
_BARE_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
HOST_ENV = re.compile(r"(^|_)(HOST|HOSTNAME|SERVER|ENDPOINT)$")
LOCAL_NAMES = {"localhost", "localhost.localdomain"}


@dataclass(frozen=True)
class Address:
    host: str
    port: int | None
    literal: str  # the text it was read from
    where: str  # e.g. "env RAY_ADDRESS (ConfigMap/ns/cfg)", "args of container worker"
    namespace: str
    resource: str


def addresses_in(text: str) -> list[tuple[str, int | None, str]]:
    found: list[tuple[str, int | None, str]] = []
    spans: list[tuple[int, int]] = []
    for pattern in (_URL, _NC, _CLI_HOST, _HOST_PORT):
        for match in pattern.finditer(text):
            if any(start <= match.start() < end for start, end in spans):
                continue
            spans.append(match.span())
            host = match.group("host").strip("[]")
            if "$" in host or "{" in host:
                continue
            port = match.group("port")
            found.append((host, int(port) if port else None, match.group(0).strip()))
    return found


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_bind_or_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host in LOCAL_NAMES
    return address.is_unspecified or address.is_loopback


def service_reference(host: str, namespace: str, namespaces: set[str]) -> tuple[str, str] | None:
    """(namespace, service) a cluster DNS name refers to, or None for names outside the cluster.

    Short (`redis`), namespaced (`redis.prod`), `redis.prod.svc` and FQDN forms are understood;
    a two-part name counts only when its second part is a namespace the input knows.
    """
    if is_ip(host) or host in LOCAL_NAMES:
        return None
    parts = host.lower().rstrip(".").split(".")
    if not all(_DNS_LABEL.match(p) for p in parts):
        return None
    if len(parts) == 1:
        return namespace, parts[0]
    if len(parts) == 2 and parts[1] in namespaces:
        return parts[1], parts[0]
    if len(parts) >= 3 and parts[2] == "svc":
        return parts[1], parts[0]
    return None


def workload_addresses(workload: Workload) -> list[Address]:
    result: list[Address] = []

    def add(text: str, where: str) -> None:
        for host, port, literal in addresses_in(text):
            result.append(
                Address(host, port, literal, where, workload.namespace, workload.resource)
            )

    for container in workload.all_containers:
        env = workload.env(container)
        cname = container.get("name", "?")
        for name, value in env.items():
            # ConfigMap values are checked once, at the ConfigMap (configmap_addresses).
            if value.value is None or value.origin.startswith("ConfigMap/"):
                continue
            where = f"env {name} of container {cname}"
            if HOST_ENV.search(name) and _BARE_HOST.match(value.value.strip()):
                port_env = env.get(HOST_ENV.sub(r"\1PORT", name))
                port_text = port_env.value if port_env and port_env.value else ""
                port = int(port_text) if port_text.isdigit() else None
                literal = f"{name}={value.value}" + (f", port {port}" if port else "")
                result.append(
                    Address(
                        value.value.strip(),
                        port,
                        literal,
                        where,
                        workload.namespace,
                        workload.resource,
                    )
                )
            else:
                add(value.value, where)
        add(command_text(container), f"command of container {cname}")
    for key, value in workload.ray_start_params.items():
        add(f"{key}={value}" if key != "address" else value, f"rayStartParams {key}")
    for alias in workload.pod_spec.get("hostAliases") or []:
        ip = alias.get("ip", "")
        names = ",".join(alias.get("hostnames") or [])
        result.append(
            Address(
                ip,
                None,
                f"{ip} {names}".strip(),
                "hostAliases",
                workload.namespace,
                workload.resource,
            )
        )
    return result


def configmap_addresses(inventory: Inventory) -> list[Address]:
    result = []
    for cm in inventory.of("ConfigMap"):
        resource = f"ConfigMap/{namespace_of(cm)}/{name_of(cm)}"
        data = cm.get("data") or {}
        for key, value in data.items():
            text = str(value)
            if HOST_ENV.search(key) and _BARE_HOST.match(text.strip()):
                port_text = str(data.get(HOST_ENV.sub(r"\1PORT", key), ""))
                port = int(port_text) if port_text.isdigit() else None
                literal = f"{key}: {text}" + (f", port {port}" if port else "")
                result.append(
                    Address(text.strip(), port, literal, f"key {key}", namespace_of(cm), resource)
                )
                continue
            for host, port, literal in addresses_in(text):
                result.append(
                    Address(host, port, literal, f"key {key}", namespace_of(cm), resource)
                )
    return result


def service_ports(service: dict) -> set[int]:
    return {int(p["port"]) for p in (service.get("spec") or {}).get("ports") or [] if "port" in p}
