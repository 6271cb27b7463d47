"""An existing stack keeps every resource across the restructuring of the components: each URN
it holds (urns/<variant>.txt, recorded from the program before the children were renamed) is,
now, the URN of exactly one resource or one of its aliases, resolved as the Pulumi engine
resolves them (its own alias specs, and those inherited from its parent's aliases). An old URN
no resource claims is one `pulumi up` would delete and create anew: for the protected Namespace
and claims it would refuse, for the generated passwords it would make new ones.

URNs are built as the engine builds them (a parent's qualified type, none under the stack),
not as the SDK's mock monitor does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi
import pytest

from infra import program, render
from infra.components.base import Component

from .conftest import PROD_SETTINGS

URNS = Path(__file__).parent / "urns"
ROOT_STACK = "pulumi:pulumi:Stack"
PLAIN = {"mochi:rayMode": "plain", "mochi:installKuberayOperator": "false"}
VARIANTS = {"prod": PROD_SETTINGS, "prod-plain": {**PROD_SETTINGS, **PLAIN}}


@dataclass(frozen=True)
class AliasSpec:
    name: str
    type: str
    parent: str  # the old parent's engine URN; "" for the resource's current parent
    no_parent: bool


@dataclass(frozen=True)
class Registered:
    type: str
    name: str
    parent: str  # the parent's URN; "" for the stack itself
    urn: str
    alias_specs: tuple[AliasSpec, ...]


def _urn(stack: str, qualified_type: str, name: str) -> str:
    return f"urn:pulumi:{stack}::{render.PROJECT}::{qualified_type}::{name}"


def _qualified_type(parent_urn: str, type_: str) -> str:
    parent_type = parent_urn.split("::")[2] if parent_urn else ""
    if not parent_type or parent_type == ROOT_STACK:
        return type_
    return f"{parent_type}${type_}"


class EngineUrns(render.OptionsMonitor):
    """The mock engine, also keeping each resource's engine URN and alias specs."""

    def __init__(self, mocks, stack: str):
        super().__init__(mocks)
        self.stack = stack
        self.by_mock_urn: dict[str, Registered] = {}

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        parent = self.by_mock_urn.get(request.parent)
        parent_urn = parent.urn if parent else ""
        qualified = _qualified_type(parent_urn, request.type)
        specs = tuple(
            AliasSpec(
                alias.spec.name,
                alias.spec.type,
                self.by_mock_urn[alias.spec.parentUrn].urn if alias.spec.parentUrn else "",
                alias.spec.noParent,
            )
            for alias in request.aliases
            if alias.HasField("spec")
        )
        self.by_mock_urn[response.urn] = Registered(
            request.type, request.name, parent_urn,
            _urn(self.stack, qualified, request.name), specs,
        )  # fmt: skip
        return response


def _own_aliases(stack: str, resource: Registered) -> list[str]:
    """The engine's collapseAliasToUrn for each alias spec of the resource."""
    urns = []
    for spec in resource.alias_specs:
        parent = "" if spec.no_parent else (spec.parent or resource.parent)
        type_ = spec.type or resource.type
        urns.append(_urn(stack, _qualified_type(parent, type_), spec.name or resource.name))
    return urns


def _inherited(child_type: str, child_name: str, parent_name: str, parent_alias: str) -> str:
    """The engine's inheritedChildAlias: a `<parent>-part` name follows the parent's old name."""
    if child_name.startswith(parent_name):
        child_name = parent_alias.rsplit("::", 1)[1] + child_name[len(parent_name) :]
    return f"{parent_alias.rsplit('::', 1)[0]}${child_type}::{child_name}"


def aliases(stack: str, resources: dict[str, Registered]) -> dict[str, list[str]]:
    """Engine URN -> every alias URN the engine derives for it, parents first."""
    by_urn = {resource.urn: resource for resource in resources.values()}
    derived: dict[str, list[str]] = {}
    for resource in resources.values():  # registration order: a parent precedes its children
        own = _own_aliases(stack, resource)
        found = list(own)
        parent = by_urn.get(resource.parent)
        for parent_alias in derived.get(resource.parent, []):
            found.append(_inherited(resource.type, resource.name, parent.name, parent_alias))
            for alias in own:
                old_type = alias.split("::")[2].split("$")[-1]
                old_name = alias.rsplit("::", 1)[1]
                found.append(_inherited(old_type, old_name, parent.name, parent_alias))
        derived[resource.urn] = found
    return derived


def claims(stack: str, settings: dict[str, str]) -> dict[str, set[str]]:
    """Each URN of the recorded stack -> the resources of the program now that claim it."""
    mocks = render.RecordingMocks()
    monitor = EngineUrns(mocks, stack)
    pulumi.runtime.set_mocks(
        mocks, project=render.PROJECT, stack=stack, preview=False, monitor=monitor
    )
    pulumi.runtime.set_all_config(render.with_overrides(render.stack_config(stack), settings))

    @pulumi.runtime.test
    def run():
        return pulumi.Output.all(*program.build(program.load_config()).values())

    run()
    found: dict[str, set[str]] = {}
    for urn, alias_urns in aliases(stack, monitor.by_mock_urn).items():
        for old in {urn, *alias_urns}:
            found.setdefault(old, set()).add(urn)
    return found


def recorded(variant: str) -> set[str]:
    lines = (URNS / f"{variant}.txt").read_text().splitlines()
    return {line for line in lines if line and not line.startswith("#")}


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_urn_of_an_existing_stack_is_claimed_by_exactly_one_resource(variant):
    old = recorded(variant)
    found = claims("prod", VARIANTS[variant])
    assert sorted(old - set(found)) == []
    assert {urn: found[urn] for urn in old if len(found[urn]) > 1} == {}


def test_without_the_aliases_the_protected_data_would_be_replaced(monkeypatch):
    child_opts = Component.child_opts

    def without_aliases(self, old_name=None, old_parent=None, **options):
        return child_opts(self, **options)

    monkeypatch.setattr(Component, "child_opts", without_aliases)
    lost = recorded("prod") - set(claims("prod", PROD_SETTINGS))
    prefix = "urn:pulumi:prod::mochi::mochi:infra"
    assert {
        f"{prefix}:Foundation$kubernetes:core/v1:Namespace::namespace",
        f"{prefix}:Storage$kubernetes:core/v1:PersistentVolumeClaim::videos",
        f"{prefix}:Secrets$random:index/randomPassword:RandomPassword::redis-password",
    } <= lost
