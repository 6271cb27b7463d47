"""Every setting of the service (service.config.Settings) is accounted for in the stack: in the
settings ConfigMap, in a Secret the pods read as env, or left out with a reason."""

from __future__ import annotations

import dataclasses

import pytest

from infra import naming, render
from infra.components.settings import FROM_SECRETS, LEFT_OUT, config_map_data, env_name
from infra.manifests import all_containers, one
from service.config import Settings

from .conftest import SETTINGS

SETTING_NAMES = [setting.name for setting in dataclasses.fields(Settings)]


def secret_env_names(objects: list[dict]) -> set[str]:
    """Env names any container takes from a Secret."""
    return {
        env["name"]
        for _, _, container in all_containers(objects)
        for env in container.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    }


@pytest.mark.parametrize("stack", render.STACKS)
def test_every_setting_is_in_the_configmap_a_secret_or_the_exclusion_table(stack):
    objects = render.kubernetes_objects(render.run_stack(stack, **SETTINGS[stack]))
    config_map = set(one(objects, "ConfigMap", naming.SETTINGS_CONFIG_MAP)["data"])
    secrets = secret_env_names(objects)
    for name in SETTING_NAMES:
        places = [
            where
            for where, found in (
                ("ConfigMap", env_name(name) in config_map),
                ("Secret", env_name(name) in secrets and name in FROM_SECRETS),
                ("left out", name in LEFT_OUT),
            )
            if found
        ]
        assert len(places) == 1, f"{name}: {places or 'nowhere'}"
    assert set(FROM_SECRETS) <= set(SETTING_NAMES) and set(LEFT_OUT) <= set(SETTING_NAMES)
    assert all(reason.strip() for reason in {**FROM_SECRETS, **LEFT_OUT}.values())


def test_a_setting_neither_rendered_nor_excluded_stops_the_program():
    values = {name: "x" for name in SETTING_NAMES if name not in {**FROM_SECRETS, **LEFT_OUT}}
    del values["model"]
    with pytest.raises(ValueError, match="'model' is neither given a value"):
        config_map_data(values)


def test_a_value_for_no_setting_is_refused():
    values = {name: "x" for name in SETTING_NAMES if name not in {**FROM_SECRETS, **LEFT_OUT}}
    with pytest.raises(ValueError, match="not_a_setting"):
        config_map_data({**values, "not_a_setting": "1"})
