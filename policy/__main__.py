"""`pulumi preview --policy-pack policy`: the doctor's findings on the stack, with its codes.

Pulumi sets the enforcement level per policy, so there are two stack policies over the same
findings: errors are mandatory, warnings advisory. Info findings are not reported: the doctor
itself never fails on them, and notes on every preview would teach people to skip the pack's
output (`doctor diagnose --manifests` lists them)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import (  # noqa: E402
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)

from policy.adapter import stack_violations  # noqa: E402

LEVELS = {"error": EnforcementLevel.MANDATORY, "warning": EnforcementLevel.ADVISORY}
DESCRIPTIONS = {
    "error": "The doctor's static checks: errors (each names its code and runbooks/CODE.md).",
    "warning": "The doctor's static checks: warnings (each names its code and runbooks/CODE.md).",
}


def validator(severity: str):
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for violation in stack_violations(args.resources):
            if violation.severity == severity:
                report_violation(violation.message, violation.urn)

    return validate


def policies() -> list[StackValidationPolicy]:
    return [
        StackValidationPolicy(
            name=f"doctor-{severity}s",
            description=DESCRIPTIONS[severity],
            enforcement_level=level,
            validate=validator(severity),
        )
        for severity, level in LEVELS.items()
    ]


if __name__ == "__main__":
    PolicyPack(name="mochi-policies", policies=policies())
