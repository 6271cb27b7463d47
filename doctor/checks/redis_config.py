"""Redis, live: persistence off, a maxmemory policy that evicts job data, evictions that
happened, and a server that accepts clients without a password."""

from __future__ import annotations

from doctor.inventory import Inventory
from doctor.registry import Hit, check

EVICTING = ("allkeys-lru", "allkeys-lfu", "allkeys-random")
LOOPBACK = {"127.0.0.1", "::1", "-::1", "localhost"}


def _redis(inventory: Inventory) -> dict:
    state = inventory.state.get("redis") or {}
    return state if state.get("reachable") else {}


def _resource(state: dict) -> str:
    url = str(state.get("url") or "")
    return "redis://" + url.split("://", 1)[-1].rsplit("@", 1)[-1].split("/", 1)[0]


@check(
    "REDIS001",
    "warning",
    "availability",
    "Redis persistence is off: a restart loses every job",
    "Run Redis with --appendonly yes on a persistent volume (the service's own Redis does).",
)
def persistence_off(inventory: Inventory):
    state = _redis(inventory)
    if not state:
        return
    info, config = state.get("info") or {}, state.get("config") or {}
    aof = int(info.get("aof_enabled", 1 if config.get("appendonly") == "yes" else 0))
    save = config.get("save")
    if aof or (save is None and info.get("rdb_last_save_time")) or save:
        return
    yield Hit(
        _resource(state),
        "Redis keeps the job store in memory only (no AOF, no RDB snapshots): a restart or "
        "eviction of its pod loses every queued and running job",
        f"aof_enabled: {aof}; save: {save!r}",
    )


@check(
    "REDIS002",
    "error",
    "availability",
    "Redis's maxmemory policy evicts job data",
    "Set maxmemory-policy noeviction (writes then fail loudly instead of losing jobs) and size "
    "maxmemory for the job store.",
)
def evicting_policy(inventory: Inventory):
    state = _redis(inventory)
    info, config = state.get("info") or {}, state.get("config") or {}
    policy = config.get("maxmemory-policy") or info.get("maxmemory_policy")
    if policy in EVICTING:
        yield Hit(
            _resource(state),
            f"maxmemory-policy {policy} evicts any key when memory runs out: job hashes, the "
            "queue and leases vanish and jobs are lost or stuck",
            f"maxmemory-policy: {policy}; "
            f"maxmemory: {config.get('maxmemory', info.get('maxmemory'))}",
        )


@check(
    "REDIS003",
    "warning",
    "availability",
    "Redis has evicted keys",
    "Give Redis more memory (maxmemory, the pod's limit) and set maxmemory-policy noeviction.",
)
def evictions(inventory: Inventory):
    state = _redis(inventory)
    evicted = int((state.get("info") or {}).get("evicted_keys") or 0)
    if evicted:
        yield Hit(
            _resource(state),
            f"Redis evicted {evicted} key(s) for memory since it started; job data may be gone",
            f"evicted_keys: {evicted}",
        )


@check(
    "REDIS004",
    "warning",
    "security",
    "Redis accepts clients without a password",
    "Set requirepass (from a Secret) and give clients MOCHI_REDIS_PASSWORD.",
)
def auth_disabled(inventory: Inventory):
    state = _redis(inventory)
    if not state or state.get("password_used"):
        return
    config = state.get("config") or {}
    if config.get("requirepass"):
        return
    binds = set(str(config.get("bind", "")).split())
    local_only = bool(binds) and binds <= LOOPBACK
    yield Hit(
        _resource(state),
        "Redis answered without a password: anyone who reaches it can read, change or delete "
        "every job" + (" (it listens on loopback only)" if local_only else ""),
        f"PING without AUTH succeeded; requirepass: {config.get('requirepass', 'unknown')!r}; "
        f"bind: {config.get('bind', 'unknown')!r}",
        severity="info" if local_only else None,
    )
