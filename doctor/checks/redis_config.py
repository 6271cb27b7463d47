"""Redis, live: persistence off, a maxmemory policy that evicts job data, evictions that
happened, a server that accepts clients without a password, and memory without headroom."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import wraps

from doctor.finding import Category, Severity
from doctor.inventory import Inventory
from doctor.live_state import component_resource
from doctor.registry import Hit, check
from doctor.state import RedisState
from service.config import Settings

EVICTING = ("allkeys-lru", "allkeys-lfu", "allkeys-random")
LOOPBACK = {"127.0.0.1", "::1", "-::1", "localhost"}
HIGH_WATER_SETTING = "MOCHI_REDIS_HIGH_WATER"


def on_reached_redis(run: Callable[[RedisState, Inventory], Iterator[Hit]]):
    """The check, run on the Redis the read reached; nothing when it did not (NET006 says why)."""

    @wraps(run)
    def check_redis(inventory: Inventory) -> Iterator[Hit]:
        redis = inventory.live.redis
        if redis is not None and redis.reachable:
            yield from run(redis, inventory)

    return check_redis


def _resource(redis: RedisState) -> str:
    return component_resource("redis", redis.url)


@check(
    code="REDIS001",
    severity=Severity.WARNING,
    category=Category.AVAILABILITY,
    summary="Redis persistence is off: a restart loses every job",
    fix="Run Redis with --appendonly yes on a persistent volume (the service's own Redis does).",
    needs_live=True,
)
@on_reached_redis
def persistence_off(redis: RedisState, inventory: Inventory):
    appendonly = 1 if redis.config.get("appendonly") == "yes" else 0
    aof = int(redis.info.get("aof_enabled", appendonly))
    save = redis.config.get("save")
    if aof or (save is None and redis.info.get("rdb_last_save_time")) or save:
        return
    yield Hit(
        _resource(redis),
        "Redis keeps the job store in memory only (no AOF, no RDB snapshots): a restart or "
        "eviction of its pod loses every queued and running job",
        f"aof_enabled: {aof}; save: {save!r}",
    )


@check(
    code="REDIS002",
    severity=Severity.ERROR,
    category=Category.AVAILABILITY,
    summary="Redis's maxmemory policy evicts job data",
    fix="Set maxmemory-policy noeviction (writes then fail loudly instead of losing jobs) and size "
    "maxmemory for the job store.",
    needs_live=True,
)
@on_reached_redis
def evicting_policy(redis: RedisState, inventory: Inventory):
    policy = redis.maxmemory_policy
    if policy in EVICTING:
        yield Hit(
            _resource(redis),
            f"maxmemory-policy {policy} evicts any key when memory runs out: job hashes, the "
            "queue and leases vanish and jobs are lost or stuck",
            f"maxmemory-policy: {policy}; maxmemory: {redis.maxmemory}",
        )


@check(
    code="REDIS003",
    severity=Severity.WARNING,
    category=Category.AVAILABILITY,
    summary="Redis has evicted keys",
    fix="Give Redis more memory (maxmemory, the pod's limit) and set maxmemory-policy noeviction.",
    needs_live=True,
)
@on_reached_redis
def evictions(redis: RedisState, inventory: Inventory):
    evicted = int(redis.info.get("evicted_keys") or 0)
    if evicted:
        yield Hit(
            _resource(redis),
            f"Redis evicted {evicted} key(s) for memory since it started; job data may be gone",
            f"evicted_keys: {evicted}",
        )


@check(
    code="REDIS004",
    severity=Severity.WARNING,
    category=Category.SECURITY,
    summary="Redis accepts clients without a password",
    fix="Set requirepass (from a Secret) and give clients MOCHI_REDIS_PASSWORD.",
    needs_live=True,
)
@on_reached_redis
def auth_disabled(redis: RedisState, inventory: Inventory):
    config = redis.config
    if redis.password_used or config.get("requirepass"):
        return
    binds = set(str(config.get("bind", "")).split())
    local_only = bool(binds) and binds <= LOOPBACK
    yield Hit(
        _resource(redis),
        "Redis answered without a password: anyone who reaches it can read, change or delete "
        "every job" + (" (it listens on loopback only)" if local_only else ""),
        f"PING without AUTH succeeded; requirepass: {config.get('requirepass', 'unknown')!r}; "
        f"bind: {config.get('bind', 'unknown')!r}",
        severity=Severity.INFO if local_only else None,
    )


@check(
    code="REDIS006",
    severity=Severity.WARNING,
    category=Category.MEMORY,
    summary="Redis's memory has no headroom: unbounded, evicting, or above the high-water mark",
    fix="Run Redis with maxmemory below its container limit (about 80%) and maxmemory-policy "
    "noeviction; when used memory is near maxmemory, raise the limit (mochi:redisMemory) or "
    "shorten retention (MOCHI_RESULT_TTL_SECONDS).",
    needs_live=True,
)
@on_reached_redis
def memory_headroom(redis: RedisState, inventory: Inventory):
    used = _bytes(redis.info.get("used_memory"))
    maxmemory = _bytes(redis.maxmemory)
    policy = redis.maxmemory_policy
    figures = f"used_memory: {_mib(used)}; maxmemory: {_mib(maxmemory)}; policy: {policy}"
    resource = _resource(redis)
    if maxmemory == 0:
        yield Hit(
            resource,
            "Redis has no maxmemory: it grows until its container's memory limit and the kernel "
            "OOM-kills it, where a bounded Redis would refuse writes (and a killed Redis must "
            "load its whole append-only file back into the same memory to restart)",
            figures,
        )
    if policy and policy != "noeviction" and policy not in EVICTING:  # REDIS002 has allkeys-*
        yield Hit(
            resource,
            f"maxmemory-policy {policy} evicts keys that carry a TTL when memory runs out: "
            "finished jobs' results and idempotency keys vanish before their retention, and a "
            "retried submission becomes a second job",
            figures,
        )
    high_water, source = _high_water(inventory)
    if maxmemory and used is not None and used >= high_water * maxmemory:
        yield Hit(
            resource,
            f"Redis holds {used / maxmemory:.0%} of its maxmemory, at or above the API's "
            f"high-water mark ({high_water:.0%}, {source}): new submissions are refused with 503 "
            "until retention frees memory",
            f"{figures}; high water: {high_water:g} x maxmemory = {_mib(high_water * maxmemory)}",
            severity=Severity.ERROR,
        )


def _high_water(inventory: Inventory) -> tuple[float, str]:
    """The API's high-water mark: from a ConfigMap of the read that sets it, else the default."""
    for config_map in inventory.of("ConfigMap"):
        value = (config_map.get("data") or {}).get(HIGH_WATER_SETTING)
        try:
            share = float(value)
        except (TypeError, ValueError):
            continue
        if 0 < share <= 1:
            return share, f"ConfigMap {config_map['metadata'].get('name')} {HIGH_WATER_SETTING}"
    return Settings().redis_high_water, "the service's default"


def _bytes(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _mib(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"{value / 2**20:.1f} MiB ({int(value)} bytes)"
