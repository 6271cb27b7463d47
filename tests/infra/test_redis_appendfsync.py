"""mochi:redisAppendfsync: validated to always|everysec and rendered into Redis's command."""

from __future__ import annotations

import pytest

from infra import config, render

from .conftest import SETTINGS


def redis_command(**overrides: object) -> str:
    objects = render.kubernetes_objects(render.run_stack("dev", **overrides))
    (redis,) = [o for o in objects if o["kind"] == "StatefulSet" and "redis" in str(o["metadata"])]
    (container,) = redis["spec"]["template"]["spec"]["containers"]
    return container["command"][-1]


def test_default_is_always():
    assert "--appendfsync always" in redis_command()


def test_everysec_is_rendered_into_the_redis_command():
    command = redis_command(**{"mochi:redisAppendfsync": "everysec"})
    assert "--appendfsync everysec" in command and "always" not in command


@pytest.mark.parametrize("value", ["no", "Always", ""])
def test_other_values_are_refused_naming_key_and_choices(value):
    values = render.with_overrides(
        render.stack_config("dev"), {**SETTINGS["dev"], "mochi:redisAppendfsync": value}
    )
    with pytest.raises(config.InvalidConfig) as raised:
        config.load(values.get)
    assert "mochi:redisAppendfsync" in str(raised.value)
    assert "must be one of always, everysec" in str(raised.value)
