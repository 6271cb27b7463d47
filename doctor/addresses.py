"""Network addresses found in a deployment: env values, command lines, ConfigMaps,
rayStartParams and hostAliases, each with where it was found.

Only text in a peer-address position is read as an address: a URL whose scheme is a network
protocol, a whole `host:port` token, `nc HOST PORT`, a database client's `-h HOST`, a `*_HOST`
setting, the `address` of rayStartParams. Object-store and file URLs (`s3://`, `gs://`, `hf://`,
`file://`), image references, headers, uid:gid pairs, times and ratios are not addresses; neither
are bind addresses (`--dashboard-host=0.0.0.0`, `*_BIND_*`, `*_LISTEN_*`).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from doctor.inventory import Inventory, Workload, command_text, name_of, namespace_of
from doctor.redaction import redact_text

# Schemes whose host is a network peer; a URL of any other scheme names no cluster host.
_WEB_SCHEMES = {"http", "https", "ws", "wss", "grpc", "grpcs", "tcp", "udp", "tls", "ssl", "ray"}
_STORE_SCHEMES = {"redis", "rediss", "valkey", "memcached", "etcd", "zookeeper", "zk", "cassandra"}
_DATABASE_SCHEMES = {"postgres", "postgresql", "mysql", "mariadb", "mongodb", "mongodb+srv"}
_SEARCH_SCHEMES = {"clickhouse", "elasticsearch", "opensearch", "ldap", "ldaps", "smtp", "thrift"}
_QUEUE_SCHEMES = {"amqp", "amqps", "nats", "kafka", "mqtt", "mqtts"}
NETWORK_SCHEMES = frozenset(
    _WEB_SCHEMES | _STORE_SCHEMES | _DATABASE_SCHEMES | _SEARCH_SCHEMES | _QUEUE_SCHEMES
)
_URL = re.compile(
    r"(?<![\w+.-])(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?:[^@/\s'\"]*@)?"
    r"(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9][A-Za-z0-9.\-_]*)(?::(?P<port>\d{1,5}))?"
)
# A whole host:port token: bounded by the start, blanks, quotes, `=`, `,` or brackets.
_HOST_PORT = re.compile(
    r"(?:^|(?<=[\s\"'=,(\[]))(?P<host>[A-Za-z0-9][A-Za-z0-9.\-]*):(?P<port>\d{2,5})"
    r"(?=$|[\s\"',;)\]/])"
)
_NC = re.compile(
    r"\b(?:nc|ncat|netcat)\s+(?:-\w+\s+)*(?P<host>[A-Za-z0-9][A-Za-z0-9.\-]*)\s+(?P<port>\d{2,5})\b"
)
_DB_CLIENT_HOST = re.compile(
    r"\b(?:redis-cli|valkey-cli|psql|pg_isready|mysql|mysqladmin|mongosh|mongo)\b[^;&|\n]*?"
    r"\s-h\s*(?P<host>[A-Za-z0-9][A-Za-z0-9.\-]*)(?:\s+-p\s*(?P<port>\d{2,5}))?"
)
# Text just before a token that makes it something other than a peer address.
_NOT_A_PEER_BEFORE = re.compile(
    r"(?:\bimage\s*[:=]\s*|\bFROM\s+|(?:^|\s)(?:-H|--header)\s+|"
    r"-[\w-]*(?:bind|listen|host|node-ip)[\w-]*[=\s])[\"']?$",
    re.IGNORECASE,
)
_BARE_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
HOST_ENV = re.compile(r"(^|_)(HOST|HOSTNAME|SERVER|ENDPOINT)$")
BIND_ENV = re.compile(r"(^|_)(BIND|LISTEN)(_|$)")
# Settings that hold no peer of the pod: its own name, a bind host, or (Ray's Grafana iframe)
# the address a browser uses.
NOT_PEER_SETTINGS = {"HOST", "HOSTNAME", "RAY_GRAFANA_IFRAME_HOST"}
LOCAL_NAMES = {"localhost", "localhost.localdomain"}
# Below 1024 a bare `name:port` token is far more often an image tag (`postgres:16`) or a
# label than an address, except for these well-known service ports.
WELL_KNOWN_PORTS = {21, 22, 25, 53, 80, 88, 389, 443, 636}
# rayStartParams that name a peer; the others (dashboard-host, node-ip-address, ...) are this
# node's own bind or advertised addresses.
RAY_PEER_PARAMS = ("address", "redis-address", "gcs-address")
# Services every cluster has, whether or not the input shows them.
BUILTIN_SERVICES = {("default", "kubernetes"), ("kube-system", "kube-dns")}


@dataclass(frozen=True)
class Address:
    host: str
    port: int | None
    literal: str  # the text it was read from
    where: str  # e.g. "env RAY_ADDRESS (ConfigMap/ns/cfg)", "args of container worker"
    namespace: str
    resource: str


def _is_placeholder(host: str) -> bool:
    return any(mark in host for mark in "${}<>") or host.isupper() or "_" in host


def _peer_tokens(text: str):
    """Matches of every address pattern, earliest pattern first, without overlaps."""
    spans: list[tuple[int, int]] = []
    for pattern in (_URL, _NC, _DB_CLIENT_HOST, _HOST_PORT):
        for match in pattern.finditer(text):
            if any(start <= match.start() < end for start, end in spans):
                continue
            spans.append(match.span())
            yield pattern, match


def _is_bare_peer(text: str, match: re.Match) -> bool:
    """Whether a whole `host:port` token is a peer address, judged by the token and the text
    before it."""
    port = int(match.group("port"))
    if match.group("host").isdigit() or (port < 1024 and port not in WELL_KNOWN_PORTS):
        return False
    return not _NOT_A_PEER_BEFORE.search(text[max(0, match.start() - 40) : match.start()])


def addresses_in(text: str) -> list[tuple[str, int | None, str]]:
    """(host, port, literal) of every peer address in a text."""
    found: list[tuple[str, int | None, str]] = []
    for pattern, match in _peer_tokens(text):
        host = match.group("host").strip("[]")
        if pattern is _URL and match.group("scheme").lower() not in NETWORK_SCHEMES:
            continue
        if pattern is _HOST_PORT and not _is_bare_peer(text, match):
            continue
        port = match.group("port")
        if _is_placeholder(host) or (port and not 0 < int(port) < 65536):
            continue
        found.append((host, int(port) if port else None, redact_text(match.group(0).strip())))
    return found


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_bind_or_loopback(host: str) -> bool:
    """An address that names no other pod or node: a bind-all, loopback or link-local one (the
    cloud metadata endpoint 169.254.169.254 is the same fixed address everywhere)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host in LOCAL_NAMES
    return address.is_unspecified or address.is_loopback or address.is_link_local


def service_reference(host: str, namespace: str, namespaces: set[str]) -> tuple[str, str] | None:
    """(namespace, service) a cluster DNS name refers to, or None for names outside the cluster.

    Short (`redis`), namespaced (`redis.prod`), `redis.prod.svc` and FQDN forms are understood;
    a two-part name counts only when its second part is a namespace the input knows.
    """
    if is_ip(host) or host in LOCAL_NAMES:
        return None
    parts = host.lower().rstrip(".").split(".")
    if not all(_DNS_LABEL.match(p) for p in parts) or parts[0].isdigit():
        return None
    if len(parts) == 1:
        return namespace, parts[0]
    if len(parts) == 2 and parts[1] in namespaces:
        return parts[1], parts[0]
    if len(parts) >= 3 and parts[2] == "svc":
        return parts[1], parts[0]
    return None


def _setting_address(
    name: str, value: str, settings: dict[str, str]
) -> tuple[str, int | None, str]:
    """The bare host of a `*_HOST` setting, with the port of its `*_PORT` sibling."""
    port_text = settings.get(HOST_ENV.sub(r"\1PORT", name), "")
    port = int(port_text) if port_text.isdigit() else None
    return value, port, f"{name}={value}" + (f", port {port}" if port else "")


def setting_addresses(name: str, value: str, settings: dict[str, str]):
    """Addresses in one setting (an env variable or a ConfigMap key) among its siblings."""
    if BIND_ENV.search(name.upper()) or name.upper() in NOT_PEER_SETTINGS:
        return []
    value = value.strip()
    if HOST_ENV.search(name.upper()) and _BARE_HOST.match(value) and not _is_placeholder(value):
        return [_setting_address(name, value, settings)]
    return addresses_in(value)


def workload_addresses(workload: Workload) -> list[Address]:
    result: list[Address] = []

    def add(found, where: str) -> None:
        for host, port, literal in found:
            result.append(
                Address(host, port, literal, where, workload.namespace, workload.resource)
            )

    for container in workload.all_containers:
        env = workload.env(container)
        cname = container.get("name", "?")
        settings = {name: value.value for name, value in env.items() if value.value is not None}
        for name, value in env.items():
            # ConfigMap values are checked once, at the ConfigMap (configmap_addresses).
            if value.value is None or value.origin.startswith("ConfigMap/"):
                continue
            add(setting_addresses(name, value.value, settings), f"env {name} of container {cname}")
        add(addresses_in(command_text(container)), f"command of container {cname}")
    for key in RAY_PEER_PARAMS:
        if key in workload.ray_start_params:
            add(addresses_in(workload.ray_start_params[key]), f"rayStartParams {key}")
    if workload.cluster is not None and workload.ray_role == "head":
        options = workload.cluster.spec.get("gcsFaultToleranceOptions") or {}
        if isinstance(options, dict) and options.get("redisAddress"):
            where = "gcsFaultToleranceOptions.redisAddress"
            add(addresses_in(str(options["redisAddress"])), where)
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
        data = {str(k): str(v) for k, v in (cm.get("data") or {}).items()}
        for key, value in data.items():
            for host, port, literal in setting_addresses(key, value, data):
                result.append(
                    Address(host, port, literal, f"key {key}", namespace_of(cm), resource)
                )
    return result


def all_addresses(inventory: Inventory) -> list[Address]:
    """Every address the input names: in ConfigMaps, then in each workload."""
    result = configmap_addresses(inventory)
    for workload in inventory.workloads:
        result.extend(workload_addresses(workload))
    return result


def service_ports(service: dict) -> set[int]:
    return {int(p["port"]) for p in (service.get("spec") or {}).get("ports") or [] if "port" in p}
