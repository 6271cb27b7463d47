"""REDIS006: a Redis whose memory is unbounded (maxmemory 0), evicts keys with a TTL
(volatile-*), or holds more than the API's high-water mark of maxmemory. On recorded live
state (and a snapshot written from it), and on a real redis-server changed with CONFIG SET."""

from __future__ import annotations

import pytest
import redis

from doctor.diagnose import diagnose
from doctor.inventory import Inventory
from doctor.registry import all_checks
from doctor.sources import load_snapshot
from doctor.sources.probe import Deadline
from doctor.sources.record import write_snapshot
from doctor.sources.redis_live import read_redis
from doctor.state import RedisState
from service.processes import LOCAL_REDIS_MAXMEMORY_BYTES

MIB = 2**20
HEADROOM = [c for c in all_checks() if c.code == "REDIS006"]


def recorded(used: int, maxmemory: int, policy: str = "noeviction", **config_map) -> Inventory:
    inventory = Inventory(source="live")
    inventory.live.redis = RedisState(
        url="redis://redis:6379/0",
        reachable=True,
        password_used=True,
        info={"used_memory": used, "maxmemory": maxmemory, "maxmemory_policy": policy},
        config={"maxmemory": str(maxmemory), "maxmemory-policy": policy},
    )
    if config_map:
        inventory.add(
            {
                "kind": "ConfigMap",
                "metadata": {"name": "mochi-settings", "namespace": "mochi"},
                "data": config_map,
            }
        )
    return inventory


def headroom(inventory: Inventory) -> list:
    return diagnose(inventory, checks=HEADROOM).findings


def test_bounded_noeviction_with_room_is_quiet():
    assert headroom(recorded(used=100 * MIB, maxmemory=409 * MIB)) == []


def test_unbounded_redis_is_reported_with_its_figures():
    (finding,) = headroom(recorded(used=300 * MIB, maxmemory=0))
    assert (finding.severity, finding.category) == ("warning", "memory")
    assert finding.resource == "redis://redis:6379"
    assert "no maxmemory" in finding.message and "OOM-kills" in finding.message
    assert finding.evidence == (
        "used_memory: 300.0 MiB (314572800 bytes); maxmemory: 0.0 MiB (0 bytes); policy: noeviction"
    )
    assert finding.runbook == "runbooks/REDIS006.md"


@pytest.mark.parametrize("policy", ["volatile-lru", "volatile-ttl", "volatile-random"])
def test_a_policy_that_evicts_keys_with_a_ttl_is_reported(policy):
    (finding,) = headroom(recorded(used=10 * MIB, maxmemory=409 * MIB, policy=policy))
    assert f"maxmemory-policy {policy}" in finding.message
    assert "idempotency keys" in finding.message
    assert f"policy: {policy}" in finding.evidence


def test_allkeys_policies_are_left_to_redis002():
    inventory = recorded(used=10 * MIB, maxmemory=409 * MIB, policy="allkeys-lru")
    codes = {f.code for f in diagnose(inventory).findings}
    assert "REDIS002" in codes and "REDIS006" not in codes


def test_above_the_high_water_mark_is_an_error_naming_the_share():
    (finding,) = headroom(recorded(used=380 * MIB, maxmemory=400 * MIB))
    assert finding.severity == "error"
    assert "holds 95% of its maxmemory" in finding.message
    assert "high-water mark (90%, the service's default)" in finding.message
    assert "503" in finding.message
    assert finding.evidence.endswith("high water: 0.9 x maxmemory = 360.0 MiB (377487360 bytes)")


def test_the_high_water_mark_comes_from_the_deployed_configmap():
    quiet = recorded(used=300 * MIB, maxmemory=400 * MIB)  # 75%: under the default 90%
    assert headroom(quiet) == []
    lowered = recorded(used=300 * MIB, maxmemory=400 * MIB, MOCHI_REDIS_HIGH_WATER="0.7")
    (finding,) = headroom(lowered)
    assert "ConfigMap mochi-settings MOCHI_REDIS_HIGH_WATER" in finding.message


def test_unreachable_redis_says_nothing_here():
    inventory = Inventory(source="live")
    inventory.live.redis = RedisState(url="redis://redis:6379/0", reachable=False)
    assert headroom(inventory) == []


def test_a_written_snapshot_diagnoses_the_same(tmp_path):
    inventory = recorded(used=380 * MIB, maxmemory=400 * MIB, policy="volatile-lru")
    write_snapshot(inventory, str(tmp_path))
    offline = load_snapshot(str(tmp_path))
    assert [(f.message, f.evidence) for f in headroom(offline)] == [
        (f.message, f.evidence) for f in headroom(inventory)
    ]
    assert len(headroom(offline)) == 2


def live_headroom(server) -> list:
    state, jobs, probe = read_redis(server.url, server.password, Deadline(5))
    assert probe.ok, probe
    inventory = Inventory(source="live")
    inventory.live.redis = RedisState.from_json(state)
    return headroom(inventory)


def test_live_redis_as_the_local_stack_starts_it_and_changed_with_config_set(redis_server):
    client = redis_server.client()
    assert client.config_get("maxmemory") == {"maxmemory": str(LOCAL_REDIS_MAXMEMORY_BYTES)}
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert live_headroom(redis_server) == []

    client.config_set("maxmemory", 0)
    (unbounded,) = live_headroom(redis_server)
    assert "no maxmemory" in unbounded.message
    assert "maxmemory: 0.0 MiB (0 bytes)" in unbounded.evidence

    client.config_set("maxmemory", LOCAL_REDIS_MAXMEMORY_BYTES)
    client.config_set("maxmemory-policy", "volatile-lfu")
    (evicting,) = live_headroom(redis_server)
    assert "maxmemory-policy volatile-lfu" in evicting.message

    client.config_set("maxmemory-policy", "noeviction")
    used = client.info("memory")["used_memory"]
    client.config_set("maxmemory", int(used / 0.95))
    (full,) = live_headroom(redis_server)
    assert full.severity == "error" and "of its maxmemory" in full.message
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        client.set("filler", "x" * 10 * MIB)  # noeviction: refused, nothing evicted
    client.close()
