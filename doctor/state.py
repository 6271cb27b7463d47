"""The live state the doctor's own sources read, typed: one dataclass per source (the Kubernetes
read, Ray, Redis, the job store, the API) and the probes, each None in LiveState when that
source was not read. from_json reads what a snapshot recorded: a key it lacks (or holds null)
keeps its default, so snapshots of older versions load; a value of the wrong shape is a
StateShapeError. to_json is what `doctor snapshot` records, a None left out.

The records inside stay the JSON objects they were read as: Ray's nodes, actors and jobs, the
service's worker registrations and job summaries, Redis's INFO and CONFIG."""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from functools import cache
from typing import Any, get_args, get_origin, get_type_hints

JSON_NAMES = {
    dict: "an object",
    list: "a list",
    str: "a string",
    bool: "true or false",
    int: "a whole number",
    float: "a number",
}


class StateShapeError(ValueError):
    """Recorded state that is not the shape its source records."""


class Recorded:
    """A dataclass of JSON fields, read from and written back to one JSON object."""

    @classmethod
    def from_json(cls, data: object):
        if not isinstance(data, dict):
            raise StateShapeError(f"{_json_name(data)}, not an object")
        values = {
            name: _checked(name, data[name], shape)
            for name, shape in _shapes(cls).items()
            if data.get(name) is not None
        }
        try:
            return cls(**values)
        except TypeError:
            missing = [name for name in _required(cls) if name not in values]
            raise StateShapeError(f"no {', '.join(missing)}") from None

    def to_json(self) -> dict[str, Any]:
        return {f.name: value for f in fields(self) if (value := getattr(self, f.name)) is not None}


@dataclass(frozen=True)
class _Shape:
    kinds: tuple[type, ...]  # what the value may be; object: any JSON value
    of_objects: bool  # a list whose items are objects

    @property
    def accepted(self) -> tuple[type, ...]:
        return self.kinds + (int,) if float in self.kinds else self.kinds  # 2 is a number too


@cache
def _shapes(cls: type) -> dict[str, _Shape]:
    hints = get_type_hints(cls)
    return {f.name: _shape(hints[f.name]) for f in fields(cls)}


@cache
def _required(cls: type) -> tuple[str, ...]:
    return tuple(
        f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
    )


def _shape(hint) -> _Shape:
    options = get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    options = tuple(option for option in options if option is not type(None))
    kinds = tuple(get_origin(option) or option for option in options)
    items = [get_args(option) for option in options if get_origin(option) is list]
    of_objects = any(args and (get_origin(args[0]) or args[0]) is dict for args in items)
    return _Shape(kinds, of_objects)


def _checked(name: str, value: object, shape: _Shape) -> object:
    if object not in shape.kinds and not isinstance(value, shape.accepted):
        expected = " or ".join(JSON_NAMES[kind] for kind in shape.kinds)
        raise StateShapeError(f"{name} is {_json_name(value)}, not {expected}")
    if shape.of_objects and not all(isinstance(item, dict) for item in value):
        raise StateShapeError(f"{name} holds an item that is not an object")
    return value


def _json_name(value: object) -> str:
    return next((n for kind, n in JSON_NAMES.items() if isinstance(value, kind)), "null")


@dataclass
class Probe(Recorded):
    """One connection attempt: what, where from, and how it failed (kind None when it worked)."""

    component: str  # kubernetes | ray-gcs | ray-dashboard | redis | api | output | address
    target: str
    ok: bool
    kind: str | None = None  # dns | refused | timeout | tls | auth | http | error
    detail: str = ""
    where: str = "doctor"  # the doctor's machine, or Pod/ns/name for --probe-from-pod
    resource: str = ""  # the object that names the address, when one does


@dataclass
class KubernetesRead(Recorded):
    """Where the Kubernetes read went, and the lists it could not read (by plural)."""

    server: str = ""
    namespace: str | None = None  # None: all namespaces
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class RayState(Recorded):
    """The GCS and the dashboard's REST and state API; a listing is None when it was not read
    (the dashboard unreachable, or its call failed: `errors` says why)."""

    address: str = ""
    dashboard_url: str = ""
    client: dict[str, Any] = field(default_factory=dict)  # the doctor's own Ray and Python
    gcs_reachable: bool | None = None
    dashboard_reachable: bool | None = None
    version: object = None  # GET /api/version as it answered
    gcs_health: dict[str, Any] | None = None
    nodes: list[dict] | None = None
    actors: list[dict] | None = None
    pending_tasks: list[dict] | None = None
    placement_groups: list[dict] | None = None
    jobs: list[dict] | None = None
    errors: dict[str, str] | None = None

    @property
    def ray_version(self) -> str | None:
        """The head's Ray version, when the dashboard said it."""
        return self.version.get("ray_version") if isinstance(self.version, dict) else None


@dataclass
class RedisState(Recorded):
    """PING, the INFO fields and the CONFIG GET keys that matter (doctor.sources.redis_live)."""

    url: str = ""  # its password redacted
    reachable: bool | None = None
    info: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # what CONFIG GET answered
    password_used: bool | None = None

    @property
    def maxmemory(self) -> object:
        """maxmemory as CONFIG GET (a string) or, when refused, INFO (a number) says it."""
        return self.config.get("maxmemory", self.info.get("maxmemory"))

    @property
    def maxmemory_policy(self) -> str | None:
        return self.config.get("maxmemory-policy") or self.info.get("maxmemory_policy")


@dataclass
class JobsState(Recorded):
    """The job store the service keeps in Redis, read through its JobStore.snapshot."""

    server_time: float | None = None  # Redis's clock, which every timestamp here follows
    jobs: list[dict] = field(default_factory=list)  # summaries, newest kept, no prompts
    jobs_scanned: int | None = None
    jobs_unreadable: int | None = None
    unreadable_jobs: list[dict] = field(default_factory=list)
    queue_length: int | None = None
    leases: int | None = None
    workers: dict[str, dict] = field(default_factory=dict)  # worker id -> its registration
    workers_seen: dict[str, float] = field(default_factory=dict)  # worker id -> server time
    pool_heartbeat: float | None = None
    pool_submission: str | None = None


@dataclass
class ServiceState(Recorded):
    """The API's /readyz (its status and body) and /version."""

    url: str = ""
    reachable: bool | None = None
    readyz: dict[str, Any] = field(default_factory=dict)
    version: object = None
    version_error: str | None = None


def _probes(data: object) -> list[Probe]:
    if not isinstance(data, list):
        raise StateShapeError(f"{_json_name(data)}, not a list of probes")
    return [Probe.from_json(item) for item in data]


def _logs(data: object) -> dict[str, str]:
    if not isinstance(data, dict):
        raise StateShapeError(f"{_json_name(data)}, not an object of logs")
    return data


READERS = {
    "kubernetes": KubernetesRead.from_json,
    "ray": RayState.from_json,
    "redis": RedisState.from_json,
    "jobs": JobsState.from_json,
    "service": ServiceState.from_json,
    "probes": _probes,
    "logs": _logs,
}
# What the live checks read: with none of it, they had nothing to check.
LIVE_CHECK_SOURCES = ("ray", "redis", "jobs", "service", "probes")


@dataclass
class LiveState:
    """Every source's state, None where it was not read; logs by Pod/ns/name/container."""

    kubernetes: KubernetesRead | None = None
    ray: RayState | None = None
    redis: RedisState | None = None
    jobs: JobsState | None = None
    service: ServiceState | None = None
    probes: list[Probe] | None = None
    logs: dict[str, str] | None = None

    @classmethod
    def from_json(cls, documents: Mapping[str, object]) -> LiveState:
        """From each source's recorded JSON, by source name ("ray", "probes", ...)."""
        state = cls()
        for source, data in documents.items():
            state.read_json(source, data)
        return state

    def read_json(self, source: str, data: object) -> None:
        """One source from what a snapshot recorded; StateShapeError when it is not that."""
        setattr(self, source, READERS[source](data))

    def to_json(self) -> dict[str, object]:
        """What each source that was read records, by source name."""
        return {
            source: _recorded(value)
            for source in READERS
            if (value := getattr(self, source)) is not None
        }

    @property
    def empty(self) -> bool:
        return all(getattr(self, source) is None for source in READERS)

    @property
    def feeds_live_checks(self) -> bool:
        return any(getattr(self, source) is not None for source in LIVE_CHECK_SOURCES)


def _recorded(value: object) -> object:
    if isinstance(value, Recorded):
        return value.to_json()
    if isinstance(value, list):
        return [item.to_json() for item in value]
    return value
