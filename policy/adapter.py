"""The policy pack's one rule: the doctor's findings on a stack's Kubernetes objects, as
violations.

A stack policy sees every resource at once, which the checks need (the ConfigMap an envFrom
names, the Services, the NetworkPolicies). The inventory is built from the resources' props
as `doctor diagnose --manifests` builds it from files, and the same checks run on it: those
that read live state find none in it and stay silent."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from doctor.diagnose import Result, diagnose
from doctor.inventory import Inventory, Origin
from doctor.objects import resource_id
from policy.gaps import GAPS
from policy.props import manifest

KUBERNETES = "kubernetes:"


@dataclass(frozen=True)
class Violation:
    code: str  # the doctor's (RAY001), or the name of a rule of policy.gaps
    resource: str  # Kind/namespace/name, as the doctor names it
    severity: str  # error | warning | info
    message: str  # what the pack reports: code, resource, message, evidence, fix
    urn: str | None  # the resource of the stack the finding names; None: the stack's


def kubernetes_objects(resources: Iterable) -> list[tuple[dict, str]]:
    """(object, urn) of each Kubernetes object among the stack's resources; a Helm Release
    or a provider holds no `kind` and is not one."""
    found = []
    for resource in resources:
        if resource.resource_type.startswith(KUBERNETES) and "kind" in resource.props:
            found.append((manifest(resource.props), resource.urn))
    return found


def inventory_of(objects: list[tuple[dict, str]]) -> Inventory:
    inventory = Inventory(source="manifests")
    for obj, urn in objects:
        inventory.add(obj, Origin(urn))
    return inventory


def stack_violations(resources: Iterable) -> list[Violation]:
    objects = kubernetes_objects(resources)
    urns = {resource_id(obj): urn for obj, urn in objects}
    inventory = inventory_of(objects)
    result = diagnose(inventory)
    return findings(result, urns) + gaps(inventory, urns) + not_checked(result)


def findings(result: Result, urns: dict[str, str]) -> list[Violation]:
    return [
        Violation(
            f.code,
            f.resource,
            f.severity,
            f"{f.code} {f.resource}: {f.message} (evidence: {f.evidence}) fix: {f.fix} "
            f"[{f.runbook}]",
            urns.get(f.resource),
        )
        for f in result.findings
    ]


def gaps(inventory: Inventory, urns: dict[str, str]) -> list[Violation]:
    """The former pack's rules the doctor lacks (policy.gaps): mandatory, as they were."""
    return [
        Violation(
            gap.name,
            hit.resource,
            "error",
            f"{gap.name} {hit.resource}: {hit.message} (evidence: {hit.evidence}) "
            f"[a pack rule until the doctor's {gap.successor} covers it]",
            urns.get(hit.resource),
        )
        for gap in GAPS
        for hit in gap.run(inventory)
    ]


def not_checked(result: Result) -> list[Violation]:
    """A check that cannot run here (Ray not installed, say) is said, never silently missing."""
    return [
        Violation(
            skipped.code, "", "warning", f"{skipped.code} not checked: {skipped.reason}", None
        )
        for skipped in result.skipped_checks
    ]
