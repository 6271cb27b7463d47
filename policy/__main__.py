"""`pulumi preview --policy-pack policy`: the rules of policy/rules.py, mandatory."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import (  # noqa: E402
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policy.rules import RULES, config_map_data, ray_worker_memory  # noqa: E402


def _validator(check):
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if not args.resource_type.startswith("kubernetes:"):
            return
        for message in check(args.props):
            report_violation(message)

    return validate


def _kubernetes(resources) -> list:
    return [r for r in resources if r.resource_type.startswith("kubernetes:")]


def validate_ray_worker_memory(args: StackValidationArgs, report_violation: ReportViolation):
    """A stack policy: a Ray pod's pipelines per pod come from MOCHI_GPUS_PER_WORKER in the
    settings ConfigMap its envFrom names, another object of the stack."""
    resources = _kubernetes(args.resources)
    config_maps = config_map_data([dict(r.props) for r in resources])
    for resource in resources:
        for message in ray_worker_memory(dict(resource.props), config_maps):
            report_violation(message, resource.urn)


def _policy(name: str, description: str, check):
    if name == "ray-worker-memory":
        return StackValidationPolicy(
            name=name, description=description, validate=validate_ray_worker_memory
        )
    return ResourceValidationPolicy(name=name, description=description, validate=_validator(check))


PolicyPack(
    name="mochi-policies",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[_policy(name, description, check) for name, (description, check) in RULES.items()],
)
