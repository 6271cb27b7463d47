"""Settings of every service process, read from MOCHI_* environment variables.

This is the contract infra/ renders into the ConfigMap and Secrets, and doctor/ reads back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

API_PORT = 8000
REDIS_PORT = 6379
RAY_GCS_PORT = 6379
RAY_CLIENT_PORT = 10001
RAY_DASHBOARD_PORT = 8265
RAY_METRICS_PORT = 8080
SUPERVISOR_HEALTH_PORT = 8081
CONTAINER_UID = 1000
CONTAINER_GID = 1000
# Redis `appendfsync`: always fsyncs every write before the reply, so nothing acknowledged is
# lost; everysec can lose up to ~2 s of acknowledged writes, on a node crash and, while a busy
# disk holds its background fsync back, on a process crash (SIGKILL, OOM kill) too.
APPENDFSYNC_MODES = ("always", "everysec")
STALL_FLOOR_SECONDS = 60.0
DIT_PRECISIONS = ("bf16", "fp8")


@dataclass(frozen=True)
class Settings:
    # redis://host:port/db; the password comes from MOCHI_REDIS_PASSWORD (a Secret), never the URL.
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_password: str = field(default="", repr=False)
    # How the Redis the local stack starts syncs its AOF (one of APPENDFSYNC_MODES).
    redis_appendfsync: str = "always"
    # Shared volume, mounted at this same path in the API and the workers.
    output_dir: str = "/data/videos"
    # `tiny`, `genmo/mochi-1-preview`, or a local directory holding a diffusers MochiPipeline.
    model: str = "tiny"
    model_cache_dir: str = ""
    # Worker actors in the pool; each holds one pipeline on gpus_per_worker GPUs (0: CPU).
    workers: int = 1
    gpus_per_worker: float = 0.0
    # Ranks that run one job together (context parallelism), each a pipeline on gpus_per_worker
    # GPUs, all on one node; `workers` then counts groups. 1: a job runs on one actor.
    gpus_per_job: int = 1
    # The DiT's linear layers: bf16 as loaded, or fp8 (GPUs of compute capability 8.9+ only).
    dit_precision: str = "bf16"
    # Memory of one GPU of a worker, in GiB; 0 means CPU workers (admission then uses host RAM).
    worker_gpu_memory_gib: float = 0.0
    worker_host_memory_gib: float = 8.0
    lease_seconds: float = 30.0
    max_attempts: int = 3
    reaper_interval_seconds: float = 2.0
    reaper_enabled: bool = True
    worker_ttl_seconds: float = 15.0
    # Dashboard address of the Ray cluster the supervisor submits the pool driver to.
    ray_dashboard_url: str = "http://127.0.0.1:8265"
    # Comma-separated `account:key` pairs hashed into Redis at API start-up (from a Secret).
    bootstrap_api_keys: str = field(default="", repr=False)
    max_queued_per_account: int = 1000
    rate_limit_per_minute: int = 600
    torch_compile: bool = False
    torch_threads: int = 1
    # Finished jobs (record, list entry, idempotency key, video, attempt files) live this long.
    result_ttl_seconds: int = 7 * 24 * 3600
    # Files no job owns (`.partial`, lost attempts') are swept once older than this.
    orphan_grace_seconds: int = 3600
    # A job running longer than this is stopped (0: no deadline).
    job_timeout_seconds: float = 0.0
    # A job with no denoising step for this long is stopped (0: from the memory model's
    # step-time estimate, never under STALL_FLOOR_SECONDS).
    stall_timeout_seconds: float = 0.0
    # The API refuses new submissions (503, Retry-After) once Redis uses this share of maxmemory.
    redis_high_water: float = 0.9
    # Swagger UI at /docs (it loads its assets from a CDN); the OpenAPI JSON is always served.
    docs_enabled: bool = False
    # Failed authentications (401) one client address may make per minute, then 429 (0: off).
    auth_failures_per_minute: int = 60
    # Tests only (empty in service): a job with exactly this prompt blocks inside its first
    # denoising step for test_hang_seconds, as a hung native call would, for the watchdog tests.
    test_hang_prompt: str = ""
    test_hang_seconds: float = 3600.0

    def __post_init__(self) -> None:
        """Every rule on a setting's value, here and nowhere else: each process refuses bad
        settings when it reads them."""
        _one_of("redis_appendfsync", self.redis_appendfsync, APPENDFSYNC_MODES)
        _one_of("dit_precision", self.dit_precision, DIT_PRECISIONS)
        if self.gpus_per_job < 1:
            raise SettingsError(f"MOCHI_GPUS_PER_JOB={self.gpus_per_job} must be at least 1")
        for name in ("stall_timeout_seconds", "job_timeout_seconds"):
            if getattr(self, name) < 0:
                raise SettingsError(
                    f"MOCHI_{name.upper()}={getattr(self, name)} must be 0 (see its doc) or more"
                )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values = {}
        for setting in fields(cls):
            raw = environ.get("MOCHI_" + setting.name.upper())
            if raw is None:
                continue
            values[setting.name] = _parse(setting.name, raw, type(setting.default))
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in another process."""
        return {
            "MOCHI_" + setting.name.upper(): _format(getattr(self, setting.name))
            for setting in fields(self)
        }


class SettingsError(ValueError):
    pass


def check_one_of(label: str, value: str, allowed: tuple[str, ...]) -> None:
    """The rule of a setting that takes one of a few values, for Settings and for code that is
    handed the value directly; `label` names the setting as that caller knows it."""
    if value not in allowed:
        raise SettingsError(f"{label}={value!r} must be one of " + ", ".join(allowed))


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    check_one_of(f"MOCHI_{name.upper()}", value, allowed)


def _parse(name: str, raw: str, kind: type):
    try:
        if kind is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        return kind(raw)
    except ValueError:
        raise SettingsError(
            f"MOCHI_{name.upper()}={raw!r} is not a valid {kind.__name__}"
        ) from None


def _format(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
