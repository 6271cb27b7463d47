"""Data survives `pulumi destroy`; a stack with typos or unset required values is refused whole.

The resource options are read where the Pulumi engine would get them: `render.OptionsMonitor`
is the SDK's own mock monitor, recording `protect` and `retainOnDelete` of each
RegisterResourceRequest (`Mocks.new_resource` is not handed the options).
"""

from __future__ import annotations

import json

import pulumi
import pytest
import yaml

from infra import config, naming, program, render
from infra.components import network_policies
from infra.manifests import one

from .conftest import PROD_SETTINGS as PROD

NAMESPACE = "kubernetes:core/v1:Namespace"
CLAIM = "kubernetes:core/v1:PersistentVolumeClaim"
REQUIRED_IN_PROD = {
    "mochi:apiImage",
    "mochi:workerImage",
    "mochi:sharedStorageClass",
    "mochi:ingressHost",
}


def _guarded(registrations) -> dict[tuple[str, str], tuple[bool, bool]]:
    """(type, name) -> (protect, retain_on_delete) of every resource that has either set."""
    return {
        (r.type, r.name): (r.protect, r.retain_on_delete)
        for r in registrations
        if r.protect or r.retain_on_delete
    }


def test_prod_protects_the_namespace_and_the_data_volumes(registrations):
    # protect is Pulumi.yaml's default: `pulumi destroy` and replacing these are refused.
    assert _guarded(registrations["prod"]) == {
        (NAMESPACE, "foundation-namespace"): (True, False),
        (CLAIM, "storage-videos"): (True, False),
        (CLAIM, "storage-model-cache"): (True, False),
    }


def test_guarded_resources_keep_the_urns_they_had_before_their_rename(registrations):
    # An existing stack knows them by these URNs: the aliases make `pulumi up` keep them,
    # protected, instead of replacing the Namespace and the claims (and deleting the data).
    aliases = {r.name: r.aliases for r in registrations["prod"] if r.protect}
    prefix = "urn:pulumi:prod::mochi::mochi:infra"
    assert aliases == {
        "foundation-namespace": (f"{prefix}:Foundation$kubernetes:core/v1:Namespace::namespace",),
        "storage-videos": (f"{prefix}:Storage${CLAIM}::videos",),
        "storage-model-cache": (f"{prefix}:Storage${CLAIM}::model-cache",),
    }


# Pulumi name now -> the name an existing stack knows it by (children of Addresses, Secrets,
# Foundation, Storage and NetworkPolicies took their component's name as prefix).
RENAMED = {
    **{f"secrets-{part}": part for part in ("redis-password", "ray-auth-token", "api-key")},
    **{f"secrets-{part}": part for part in ("redis", "ray-auth", "api-keys")},
    **{f"foundation-{part}": part for part in ("namespace", "quota", "limits")},
    **{f"addresses-{part}": part for part in ("redis", "ray-head", "api")},
    **{f"storage-{part}": part for part in ("videos", "model-cache")},
    **{f"network-policies-{name}": name for name in network_policies.policies()},
    "ray-kuberay-operator": "kuberay-operator",
}


def test_every_renamed_resource_is_aliased_to_its_former_urn(registrations):
    aliased = {r.name: r.aliases for r in registrations["prod"] if r.aliases}
    former = {name: tuple(urn.rsplit("::", 1)[1] for urn in urns) for name, urns in aliased.items()}
    assert former == {**{new: (old,) for new, old in RENAMED.items()}, "settings": ("settings",)}
    # The ConfigMap moved from Addresses into its own component under the same name.
    assert aliased["settings"] == (
        "urn:pulumi:prod::mochi::mochi:infra:Addresses$kubernetes:core/v1:ConfigMap::settings",
    )


def test_dev_is_a_throwaway_stack_nothing_guarded(registrations):
    assert _guarded(registrations["dev"]) == {}


def test_retain_leaves_the_data_in_the_cluster_when_pulumi_deletes_it():
    registrations = render.run_stack("prod", **PROD, **{"mochi:dataProtection": "retain"})
    assert _guarded(registrations) == {
        (NAMESPACE, "foundation-namespace"): (False, True),
        (CLAIM, "storage-videos"): (False, True),
        (CLAIM, "storage-model-cache"): (False, True),
    }


@pytest.mark.parametrize("stack", render.STACKS)
def test_redis_aof_claim_outlives_its_statefulset(objects, stack):
    redis = one(objects[stack], "StatefulSet", naming.REDIS)["spec"]
    assert redis["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }
    (template,) = redis["volumeClaimTemplates"]
    assert template["metadata"]["name"] == naming.REDIS_DATA


def test_data_protection_must_be_a_known_mode():
    problems = _problems({**render.stack_config("dev"), "mochi:dataProtection": "always"})
    assert problems["mochi:dataProtection"].message == "must be one of protect, retain, none"


def _problems(values: dict[str, str]) -> dict[str, config.ConfigProblem]:
    with pytest.raises(config.InvalidConfig) as raised:
        config.load(values.get, values)
    return {problem.key: problem for problem in raised.value.problems}


def test_prod_as_shipped_names_every_required_key_and_the_typos_at_once(
    tmp_path, capsys, monkeypatch
):
    root = _project_with_stack(tmp_path, "prod", "  mochi:typoKey: x\n  mochi:apiImag: a:1\n")
    monkeypatch.setattr(render, "REPO_ROOT", root)
    code = render.main(["render", "--stack", "prod", "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert code == 1
    assert error.startswith("6 problem(s) in the stack configuration:")
    for key in REQUIRED_IN_PROD:
        assert f"  - {key} is required: " in error
    assert "mochi:apiImage is required: the API image (images/api.Dockerfile) in the registry" in (
        error
    )
    assert "(registry.example.com is a placeholder)" in error
    assert "mochi:apiImag is not a config key of this project: did you mean mochi:apiImage?" in (
        error
    )
    assert "mochi:typoKey is not a config key of this project: remove it" in error
    assert "pulumi config set KEY VALUE --stack STACK" in error
    assert not (tmp_path / "out").exists()


def _project_with_stack(tmp_path, stack: str, extra_lines: str):
    (tmp_path / "Pulumi.yaml").write_text((render.REPO_ROOT / "Pulumi.yaml").read_text())
    shipped = (render.REPO_ROOT / f"Pulumi.{stack}.yaml").read_text()
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(shipped + extra_lines)
    return tmp_path


def test_prod_renders_once_the_required_values_are_passed_on_the_command_line(tmp_path, capsys):
    settings = [f"--config={key.removeprefix('mochi:')}={value}" for key, value in PROD.items()]
    out = tmp_path / "prod"
    assert render.main(["render", "--stack", "prod", "--out", str(out), *settings]) == 0
    assert "wrote 24 objects for stack prod" in capsys.readouterr().out
    images = {
        container["image"]
        for path in out.glob("*-deployment-*.yaml")
        for container in _containers(path)
    }
    assert images == {PROD["mochi:apiImage"], PROD["mochi:workerImage"]}


def _containers(path):
    return yaml.safe_load(path.read_text())["spec"]["template"]["spec"]["containers"]


def test_dev_renders_with_nothing_to_set(tmp_path, capsys):
    assert render.main(["render", "--stack", "dev", "--out", str(tmp_path / "dev")]) == 0
    assert "wrote 21 objects for stack dev" in capsys.readouterr().out


def test_a_malformed_config_flag_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        render.main(["render", "--stack", "dev", "--out", str(tmp_path), "--config", "apiImage"])
    assert exited.value.code == 2
    assert "'apiImage' is not KEY=VALUE" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("mochi:apiImage", "registry.example.com/mochi/mochi-api:0.1.0"),
        ("mochi:workerImage", "cr.example.org:5000/mochi-worker:0.1.0"),
        ("mochi:apiImage", ""),
        ("mochi:ingressHost", "mochi.example.com"),
    ],
)
def test_placeholders_are_refused_as_required(key, value):
    found = _problems(render.with_overrides(render.stack_config("dev"), {key: value}))
    assert isinstance(found[key], config.RequiredValue)
    assert str(found[key]).startswith(f"{key} is required: ")


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/acme/mochi-api:0.1.0",
        "localhost:5001/mochi-api:0.1.0",  # kind's local registry
        "mochi-api:0.1.0",  # loaded onto the nodes with `kind load`
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mochi-api@sha256:" + "0" * 64,
    ],
)
def test_real_registries_are_accepted(image):
    values = render.with_overrides(render.stack_config("dev"), {"mochi:apiImage": image})
    assert config.load(values.get, values).api_image == image


def test_shared_storage_class_is_required_only_for_read_write_many():
    many = {"mochi:outputAccessMode": "ReadWriteMany", "mochi:sharedStorageClass": ""}
    found = _problems(render.with_overrides(render.stack_config("dev"), many))
    assert "offers ReadWriteMany" in found["mochi:sharedStorageClass"].message
    dev = render.stack_config("dev")  # ReadWriteOnce on one node: the cluster default is fine
    assert config.load(dev.get, dev).shared_storage_class == ""


def test_pulumi_up_hands_over_the_keys_in_pulumi_config_and_a_typo_is_named(monkeypatch):
    # What pulumi-language-python does: the stack's whole config as JSON in PULUMI_CONFIG.
    values = {**render.stack_config("dev"), "mochi:rayWorkerMemroy": "8Gi"}
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(values))
    pulumi.runtime.set_all_config({})
    with pytest.raises(config.InvalidConfig) as raised:
        program.load_config()
    (problem,) = raised.value.problems
    assert str(problem) == (
        "mochi:rayWorkerMemroy is not a config key of this project: "
        "did you mean mochi:rayWorkerMemory?"
    )
    monkeypatch.delenv("PULUMI_CONFIG")
    pulumi.runtime.set_all_config(render.stack_config("dev"))
    assert program.load_config().namespace == "mochi-dev"


def test_other_namespaces_are_left_to_their_providers():
    values = {**render.stack_config("dev"), "kubernetes:context": "kind-mochi"}
    assert config.load(values.get, values).namespace == "mochi-dev"


def test_pulumi_up_reports_the_problems_as_one_error_without_a_traceback():
    # The language host logs a RunError's text alone; any other exception with its traceback.
    values = render.with_overrides(render.stack_config("prod"), {"mochi:typoKey": "x"})
    pulumi.runtime.set_all_config(values)
    with pytest.raises(pulumi.RunError) as raised:
        program.main()
    message = str(raised.value)
    assert message.startswith("5 problem(s) in the stack configuration:")
    assert all(key in message for key in REQUIRED_IN_PROD | {"mochi:typoKey"})
