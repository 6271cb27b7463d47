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
)

from policy.rules import RULES  # noqa: E402


def _validator(check):
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if not args.resource_type.startswith("kubernetes:"):
            return
        for message in check(args.props):
            report_violation(message)

    return validate


PolicyPack(
    name="mochi-policies",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        ResourceValidationPolicy(name=name, description=description, validate=_validator(check))
        for name, (description, check) in RULES.items()
    ],
)
