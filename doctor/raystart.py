"""`ray start` command lines and rayStartParams, validated against the installed Ray's own
click command definition (ray.scripts.scripts.start), never a hand-kept list of flags."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from doctor.inventory import Workload, command_text, shell_words

SHELL_SEPARATORS = {"&&", "||", ";", "|", "&"}


@dataclass(frozen=True)
class RayStartOptions:
    version: str
    flags: frozenset[str]  # every accepted spelling: --port, --head, -v, ...
    boolean: frozenset[str]  # flags that take no value


@cache
def ray_start_options() -> RayStartOptions | None:
    """What the installed Ray's `ray start` accepts; None when Ray is not installed."""
    try:
        import ray
        from ray.scripts.scripts import start
    except ImportError:
        return None
    flags: set[str] = set()
    boolean: set[str] = set()
    for param in start.params:
        names = list(param.opts) + list(getattr(param, "secondary_opts", []) or [])
        flags.update(names)
        if getattr(param, "is_flag", False):
            boolean.update(names)
    return RayStartOptions(ray.__version__, frozenset(flags), frozenset(boolean))


def parse_ray_start(text: str) -> dict[str, str | None] | None:
    """Flags of the first `ray start` in a command line: {"--port": "6380", "--head": None}."""
    words = shell_words(text)
    for i in range(len(words) - 1):
        if words[i].rsplit("/", 1)[-1] == "ray" and words[i + 1] == "start":
            options = ray_start_options()
            boolean = options.boolean if options else frozenset()
            flags: dict[str, str | None] = {}
            j = i + 2
            while j < len(words) and words[j] not in SHELL_SEPARATORS:
                word = words[j].rstrip(";")
                if word.startswith("-"):
                    name, eq, value = word.partition("=")
                    if eq:
                        flags[name] = value
                    elif (
                        name not in boolean
                        and j + 1 < len(words)
                        and not words[j + 1].startswith("-")
                        and words[j + 1] not in SHELL_SEPARATORS
                    ):
                        flags[name] = words[j + 1]
                        j += 1
                    else:
                        flags[name] = None
                if words[j].endswith(";"):
                    break
                j += 1
            return flags
    return None


def ray_start_flags(workload: Workload) -> dict[str, str | None]:
    """The `ray start` flags a Ray pod runs with, from its command line or rayStartParams."""
    if workload.ray_start_params:
        return {f"--{key}": value for key, value in workload.ray_start_params.items()}
    container = workload.ray_container
    if container is None:
        return {}
    return parse_ray_start(command_text(container)) or {}


def listening_ports(workload: Workload) -> dict[str, int]:
    """Ports a Ray head listens on, from its flags and Ray's defaults."""
    flags = ray_start_flags(workload)

    def port(flag: str, default: int) -> int:
        value = flags.get(flag)
        return int(value) if value and str(value).isdigit() else default

    ports = {}
    if workload.ray_role == "head":
        ports["GCS"] = port("--port", 6379)
        ports["Ray Client"] = port("--ray-client-server-port", 10001)
        ports["dashboard"] = port("--dashboard-port", 8265)
    if "--metrics-export-port" in flags:
        ports["metrics"] = port("--metrics-export-port", 0)
    return ports
