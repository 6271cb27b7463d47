"""Redis runs with maxmemory below its container limit and noeviction; the service's retention,
watchdog, high-water and /docs settings are config keys, validated, and reach the ConfigMap in
the form service.config.Settings reads."""

from __future__ import annotations

import dataclasses

import pytest

from infra import config, naming, render, sizing
from infra.components.settings import NOT_IN_CONFIG_MAP
from infra.manifests import one
from service import quantities
from service.config import Settings

from .conftest import SETTINGS


def rendered(stack: str = "dev", **overrides: object) -> list[dict]:
    return render.kubernetes_objects(render.run_stack(stack, **{**SETTINGS[stack], **overrides}))


def redis_container(objects: list[dict]) -> dict:
    (redis,) = [o for o in objects if o["kind"] == "StatefulSet" and "redis" in str(o["metadata"])]
    (container,) = redis["spec"]["template"]["spec"]["containers"]
    return container


def settings_data(objects: list[dict]) -> dict[str, str]:
    return one(objects, "ConfigMap", naming.SETTINGS_CONFIG_MAP)["data"]


@pytest.mark.parametrize(("memory", "maxmemory"), [("512Mi", "409mb"), ("2Gi", "1638mb")])
def test_redis_maxmemory_is_four_fifths_of_its_limit_with_noeviction(memory, maxmemory):
    container = redis_container(rendered(**{"mochi:redisMemory": memory}))
    command = container["command"][-1]
    assert f"--maxmemory {maxmemory} --maxmemory-policy noeviction" in command
    assert container["resources"]["limits"]["memory"] == memory


def test_prod_redis_as_shipped_is_bounded():
    command = redis_container(rendered("prod"))["command"][-1]
    assert "--maxmemory 3276mb" in command  # Pulumi.prod.yaml: redisMemory 4Gi


def test_defaults_reach_the_configmap_as_the_service_reads_them():
    data = settings_data(rendered())
    settings = Settings.from_env({k: v for k, v in data.items() if k.startswith("MOCHI_")})
    assert settings.result_ttl_seconds == 7 * 24 * 3600
    assert settings.orphan_grace_seconds == 3600
    assert settings.job_timeout_seconds == 0
    assert settings.stall_timeout_seconds == 0
    assert settings.redis_high_water == 0.9
    assert settings.docs_enabled is False


def test_every_setting_is_rendered_or_left_out_with_its_reason():
    """A setting added to service.config.Settings is either in the ConfigMap (prod and dev) or
    named in NOT_IN_CONFIG_MAP with why; nothing is both, nothing is neither."""
    names = {setting.name for setting in dataclasses.fields(Settings)}
    for stack in ("dev", "prod"):
        data = settings_data(rendered(stack))
        rendered_names = {k.removeprefix("MOCHI_").lower() for k in data if k.startswith("MOCHI_")}
        assert names - rendered_names == set(NOT_IN_CONFIG_MAP), stack
        assert not rendered_names & set(NOT_IN_CONFIG_MAP), stack
        assert all(NOT_IN_CONFIG_MAP.values())
        Settings.from_env(data)  # every rendered value is one the service accepts


def test_operator_values_reach_the_configmap():
    data = settings_data(
        rendered(
            **{
                "mochi:resultTtlSeconds": 86400,
                "mochi:orphanGraceSeconds": 600,
                "mochi:jobTimeoutSeconds": 1800,
                "mochi:stallTimeoutSeconds": 300,
                "mochi:redisHighWater": "0.75",
                "mochi:docsEnabled": True,
            }
        )
    )
    settings = Settings.from_env({k: v for k, v in data.items() if k.startswith("MOCHI_")})
    assert (settings.result_ttl_seconds, settings.orphan_grace_seconds) == (86400, 600)
    assert (settings.job_timeout_seconds, settings.stall_timeout_seconds) == (1800, 300)
    assert settings.redis_high_water == 0.75
    assert settings.docs_enabled is True


def problems(**overrides: object) -> dict[str, str]:
    values = render.with_overrides(render.stack_config("dev"), {**SETTINGS["dev"], **overrides})
    with pytest.raises(config.InvalidConfig) as raised:
        config.load(values.get)
    return {problem.key: str(problem) for problem in raised.value.problems}


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("mochi:resultTtlSeconds", 10, "must be at least 60"),
        ("mochi:resultTtlSeconds", "week", "is not a valid int"),
        ("mochi:orphanGraceSeconds", 0, "must be at least 60"),
        ("mochi:jobTimeoutSeconds", 5, "must be 0 (no deadline) or at least 60 seconds"),
        ("mochi:jobTimeoutSeconds", -1, "must be 0 (no deadline) or at least 60 seconds"),
        ("mochi:stallTimeoutSeconds", 30, "must be 0 (derived from the memory model) or at least"),
        ("mochi:redisHighWater", "1.5", "above 0 and at most 1"),
        ("mochi:redisHighWater", "0", "above 0 and at most 1"),
        ("mochi:redisHighWater", "nan", "above 0 and at most 1"),
        ("mochi:redisHighWater", "high", "is not a valid float"),
        ("mochi:redisMemory", "64Mi", "maxmemory of 51 MiB (80% of the limit), below the 64 MiB"),
    ],
)
def test_bad_values_name_key_value_and_limit(key, value, expected):
    found = problems(**{key: value})
    assert expected in found[key], found[key]
    assert found[key].startswith(f"{key} = ") and str(value) in found[key]


def test_every_bad_setting_is_reported_at_once():
    found = problems(
        **{"mochi:resultTtlSeconds": 1, "mochi:jobTimeoutSeconds": 1, "mochi:redisHighWater": "2"}
    )
    assert {"mochi:resultTtlSeconds", "mochi:jobTimeoutSeconds", "mochi:redisHighWater"} <= set(
        found
    )


def test_maxmemory_share_leaves_room_below_the_limit():
    values = render.with_overrides(render.stack_config("dev"), SETTINGS["dev"])
    stack = config.load(values.get)
    limit_mib = quantities.gib(stack.redis_memory) * 1024
    assert sizing.redis_maxmemory_mib(stack) < limit_mib
    assert sizing.redis_maxmemory_mib(stack) >= 0.75 * limit_mib
