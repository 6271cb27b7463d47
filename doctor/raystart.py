"""`ray start` command lines and rayStartParams, validated against the installed Ray's own
click command definition (ray.scripts.scripts.start), never a hand-kept list of flags."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from doctor.inventory import Workload, command_text
from doctor.skips import CheckSkipped
from service.config import RAY_CLIENT_PORT, RAY_DASHBOARD_PORT, RAY_GCS_PORT

SHELL_SEPARATORS = frozenset({";", "&&", "||", "|", "&", ";;", "|&"})
# With this annotation KubeRay runs the container's own command instead of generating
# `ray start` from rayStartParams (the command may still run it via $KUBERAY_GEN_RAY_START_CMD).
OVERWRITE_COMMAND_ANNOTATION = "ray.io/overwrite-container-cmd"
RAY_MISSING = (
    "Ray is not installed where the doctor runs, and `ray start`'s options are read from it "
    "(pip install 'ray[default]==<the cluster's Ray version>')"
)


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
    _keep_stdout_plain()
    flags: set[str] = set()
    boolean: set[str] = set()
    for param in start.params:
        names = list(param.opts) + list(getattr(param, "secondary_opts", []) or [])
        flags.update(names)
        if getattr(param, "is_flag", False):
            boolean.update(names)
    return RayStartOptions(ray.__version__, frozenset(flags), frozenset(boolean))


def _keep_stdout_plain() -> None:
    """Ray's CLI logger calls colorama.init() on import, which writes a colour reset to stdout
    at exit: a report piped or read under NO_COLOR would end in an escape code."""
    import atexit

    import colorama.initialise  # Ray's bundled copy: importing ray put it on sys.path

    atexit.unregister(colorama.initialise.reset_all)


def required_ray_start_options() -> RayStartOptions:
    """ray_start_options() for a check that cannot run without Ray: CheckSkipped without it."""
    options = ray_start_options()
    if options is None:
        raise CheckSkipped(RAY_MISSING)
    return options


def shell_commands(text: str) -> Iterator[list[str]]:
    """The simple commands of a shell script: its words, cut at newlines and at ; && || | &."""
    for line in text.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        lexer.commenters = ""
        try:
            words = list(lexer)
        except ValueError:  # an unbalanced quote: fall back to whitespace
            words = line.split()
        command: list[str] = []
        for word in words:
            if word in SHELL_SEPARATORS:
                yield command
                command = []
            else:
                command.append(word)
        yield command


def _flags(words: list[str], boolean: frozenset[str]) -> dict[str, str | None]:
    flags: dict[str, str | None] = {}
    j = 0
    while j < len(words):
        word = words[j]
        if word.startswith("-"):
            name, eq, value = word.partition("=")
            if eq:
                flags[name] = value
            elif name not in boolean and j + 1 < len(words) and not words[j + 1].startswith("-"):
                flags[name] = words[j + 1]
                j += 1
            else:
                flags[name] = None
        j += 1
    return flags


def parse_ray_start(text: str) -> dict[str, str | None] | None:
    """Flags of the first `ray start` in a command line: {"--port": "6380", "--head": None}."""
    for words in shell_commands(text):
        for i in range(len(words) - 1):
            if words[i].rsplit("/", 1)[-1] == "ray" and words[i + 1] == "start":
                options = ray_start_options()
                return _flags(words[i + 2 :], options.boolean if options else frozenset())
    return None


def _runs_own_command(workload: Workload) -> bool:
    annotations = (workload.obj.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(OVERWRITE_COMMAND_ANNOTATION, "")).lower() == "true"


def uses_ray_start_params(workload: Workload) -> bool:
    """Whether KubeRay builds this pod's `ray start` from rayStartParams (keys without dashes,
    as KubeRay writes them): always, unless the annotation lets the container's own command run
    a `ray start` of its own."""
    if not workload.is_kuberay:
        return False
    container = workload.ray_container
    own = parse_ray_start(command_text(container)) if container is not None else None
    return own is None or not _runs_own_command(workload)


def ray_start_flags(workload: Workload) -> dict[str, str | None]:
    """The `ray start` flags a Ray pod runs with, from rayStartParams or its command line."""
    if uses_ray_start_params(workload):
        return {f"--{key}": value for key, value in workload.ray_start_params.items()}
    container = workload.ray_container
    return (parse_ray_start(command_text(container)) if container is not None else None) or {}


def listening_ports(workload: Workload) -> dict[str, int]:
    """Ports a Ray head listens on, from its flags and Ray's defaults."""
    flags = ray_start_flags(workload)

    def port(flag: str, default: int) -> int:
        value = flags.get(flag)
        return int(value) if value and str(value).isdigit() else default

    ports = {}
    if workload.ray_role == "head":
        ports["GCS"] = port("--port", RAY_GCS_PORT)
        ports["Ray Client"] = port("--ray-client-server-port", RAY_CLIENT_PORT)
        ports["dashboard"] = port("--dashboard-port", RAY_DASHBOARD_PORT)
    if "--metrics-export-port" in flags:
        ports["metrics"] = port("--metrics-export-port", 0)
    return ports
