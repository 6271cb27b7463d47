"""The typed stack configuration, and every rule it must pass before any resource exists.

Defaults and descriptions live once, in Pulumi.yaml; this module parses the values Pulumi hands
the program (strings) into `StackConfig` and checks them against the memory model and quotas.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields

from service.config import APPENDFSYNC_MODES
from service.image_refs import ImageRef

PROJECT = "mochi"
RAY_MODES = ("kuberay", "plain")
ACCESS_MODES = ("ReadWriteMany", "ReadWriteOnce")
# How the Namespace and the volumes that hold data survive `pulumi destroy` and replacements.
DATA_PROTECTION = ("protect", "retain", "none")
# Domains reserved for documentation (RFC 2606, RFC 6761): a value under one is a placeholder.
PLACEHOLDER_DOMAINS = ("example.com", "example.net", "example.org", "example", "invalid")


@dataclass(frozen=True)
class StackConfig:
    namespace: str
    api_image: str
    worker_image: str
    redis_image: str
    model: str
    bootstrap_account: str
    api_replicas: int
    api_cpu: str
    api_memory: str
    ingress_host: str
    ingress_class_name: str
    redis_cpu: str
    redis_memory: str
    redis_storage: str
    redis_appendfsync: str
    result_ttl_seconds: int
    orphan_grace_seconds: int
    job_timeout_seconds: int
    stall_timeout_seconds: int
    redis_high_water: float
    docs_enabled: bool
    storage_class: str
    shared_storage_class: str
    output_storage: str
    output_access_mode: str
    model_cache_storage: str
    prefill_model_cache: bool
    ray_mode: str
    install_kuberay_operator: bool
    ray_head_cpu: str
    ray_head_memory: str
    ray_head_object_store_memory: str
    ray_worker_replicas: int
    ray_worker_cpu: str
    ray_worker_memory: str
    ray_object_store_memory: str
    ray_shm_size: str
    gpus_per_worker: int
    gpus_per_pipeline: int
    gpus_per_job: int
    dit_precision: str
    gpu_memory_gib: int
    gpus_per_node: int
    gpu_node_selector: str
    quota_requests_cpu: str
    quota_requests_memory: str
    quota_limits_memory: str
    quota_gpus: int
    quota_pods: int
    quota_storage: str
    data_protection: str

    @property
    def model_cache_enabled(self) -> bool:
        return bool(self.model_cache_storage)

    @property
    def ingress_enabled(self) -> bool:
        return bool(self.ingress_host)

    @property
    def pipelines_per_worker(self) -> int:
        """Actors (one whole pipeline each) per Ray worker pod: gpusPerWorker / gpusPerPipeline;
        a CPU pod holds one job's ranks (gpusPerJob, 1 by default).

        Validation rejects a gpusPerWorker that gpusPerPipeline does not divide.
        """
        if self.gpus_per_worker <= 0 or self.gpus_per_pipeline <= 0:
            return max(1, self.gpus_per_job)
        return max(1, self.gpus_per_worker // self.gpus_per_pipeline)

    @property
    def groups_per_worker(self) -> int:
        """Jobs one worker pod runs at once: its actors in groups of gpusPerJob ranks, each group
        packed on the pod. Validation rejects a gpusPerJob that does not divide the actors."""
        return self.pipelines_per_worker // max(1, self.gpus_per_job)

    @property
    def pool_workers(self) -> int:
        """MOCHI_WORKERS: the pool's groups (its actors when gpusPerJob is 1) on every pod."""
        return self.ray_worker_replicas * self.groups_per_worker

    @property
    def gpu_node_labels(self) -> dict[str, str]:
        if not self.gpu_node_selector:
            return {}
        key, _, value = self.gpu_node_selector.partition("=")
        return {key: value}


def config_key(field_name: str) -> str:
    """`ray_worker_memory` -> `mochi:rayWorkerMemory`, the key users set with `pulumi config`."""
    head, *rest = field_name.split("_")
    return f"{PROJECT}:" + head + "".join(part.capitalize() for part in rest)


def _folded(key: str) -> str:
    """The name of a key as typos compare it: `api_image`, `APIImage` and `apiImage` are equal."""
    return key.partition(":")[2].replace("_", "").replace("-", "").lower()


@dataclass(frozen=True)
class ConfigProblem:
    key: str
    value: object
    message: str

    def __str__(self) -> str:
        return f"{self.key} = {self.value!r}: {self.message}"


@dataclass(frozen=True)
class RequiredValue(ConfigProblem):
    """A value the stack must set itself: no default or placeholder can stand for it."""

    def __str__(self) -> str:
        return f"{self.key} is required: {self.message}"


@dataclass(frozen=True)
class UnknownKey(ConfigProblem):
    """A key of the project's namespace that no setting reads (a typo, or a removed key)."""

    def __str__(self) -> str:
        return f"{self.key} is not a config key of this project: {self.message}"


SET_HINT = (
    "Set a value with `pulumi config set KEY VALUE --stack STACK` "
    "(or `python -m infra render ... --config KEY=VALUE`)."
)


class InvalidConfig(ValueError):
    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        lines = [f"{len(problems)} problem(s) in the stack configuration:"]
        lines += [f"  - {problem}" for problem in problems]
        if any(isinstance(problem, RequiredValue) for problem in problems):
            lines.append(SET_HINT)
        super().__init__("\n".join(lines))


def load(get: Callable[[str], str | None], keys: Iterable[str] = ()) -> StackConfig:
    """Parse every setting through `get` (pulumi.Config or a dict), then validate.

    `keys` are all the keys the stack sets; those of this project no setting reads are reported
    with the rest. Every problem is raised at once.
    """
    values: dict[str, object] = {}
    problems: list[ConfigProblem] = unknown_keys(keys)
    parse_problems: list[ConfigProblem] = []
    for setting in fields(StackConfig):
        key = config_key(setting.name)
        raw = get(key)
        if raw is None:
            parse_problems.append(
                RequiredValue(key, None, "declare it in Pulumi.yaml with a default, or set it")
            )
            continue
        try:
            values[setting.name] = _parse(raw, setting.type)
        except ValueError:
            parse_problems.append(ConfigProblem(key, raw, f"is not a valid {setting.type}"))
    if parse_problems:
        raise InvalidConfig(problems + parse_problems)
    config = StackConfig(**values)
    from infra.validation import validate  # the rules need sizing, which needs StackConfig

    problems += validate(config) + choice_problems(config)
    if problems:
        raise InvalidConfig(problems)
    return config


def choice_problems(config: StackConfig) -> list[ConfigProblem]:
    if config.redis_appendfsync in APPENDFSYNC_MODES:
        return []
    message = f"must be one of {', '.join(APPENDFSYNC_MODES)}"
    return [ConfigProblem(config_key("redis_appendfsync"), config.redis_appendfsync, message)]


def unknown_keys(keys: Iterable[str]) -> list[ConfigProblem]:
    """Keys in the `mochi:` namespace that are no setting, each with the nearest known key."""
    known = {_folded(key): key for key in map(config_key, (s.name for s in fields(StackConfig)))}
    problems = []
    for key in sorted(set(keys)):
        namespace, _, _ = key.partition(":")
        if namespace == PROJECT and key not in known.values():
            problems.append(UnknownKey(key, None, _nearest(key, known)))
    return problems


def _nearest(key: str, known: dict[str, str]) -> str:
    close = difflib.get_close_matches(_folded(key), list(known), n=1, cutoff=0.6)
    if close:
        return f"did you mean {known[close[0]]}?"
    return "remove it, or see the keys Pulumi.yaml declares"


def _parse(raw: str, kind: str) -> object:
    if kind == "int":
        return int(str(raw))
    if kind == "float":
        return float(str(raw))
    if kind == "bool":
        text = str(raw).lower()
        if text not in ("true", "false"):
            raise ValueError(raw)
        return text == "true"
    return str(raw)


DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def is_dns_label(name: str) -> bool:
    return len(name) <= 63 and bool(DNS_LABEL.match(name))


def is_pinned_image(image: ImageRef) -> bool:
    """A sha256 digest, or an explicit tag other than `latest`."""
    if image.digest and image.digest.startswith("sha256:"):
        return True
    return bool(image.tag) and image.tag != "latest"


def is_placeholder_host(host: str) -> bool:
    name = host.split(":", 1)[0].lower().rstrip(".")
    return any(name == domain or name.endswith("." + domain) for domain in PLACEHOLDER_DOMAINS)
