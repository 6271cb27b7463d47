"""Run the selected checks (every one by default) on an inventory, each isolated, then apply
suppressions (annotations, baseline) and the minimum severity. The result also says what the
doctor did not check: skipped files, unknown kinds, findings below the minimum severity, checks
that cannot run here (an optional package missing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from doctor.checks.input_values import CHECKED_KINDS, could_not_run
from doctor.finding import Finding, severity_rank
from doctor.inventory import Inventory
from doctor.registry import Check, all_checks
from doctor.skips import CheckSkipped, SkippedCheck
from doctor.sources.files import InputError, SkippedFile


@dataclass(frozen=True)
class Suppressed:
    finding: Finding
    how: str  # "annotation" | "baseline"
    reason: str


@dataclass
class Result:
    findings: list[Finding]
    suppressed: list[Suppressed] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    not_checked: dict[str, int] = field(default_factory=dict)  # kind -> objects of it
    checks: list[Check] = field(default_factory=all_checks)  # the checks that ran
    hidden: dict[str, int] = field(default_factory=dict)  # severity -> findings below the minimum
    skipped_checks: list[SkippedCheck] = field(default_factory=list)  # could not run here, why

    def counts(self) -> dict[str, int]:
        counts = {"error": 0, "warning": 0, "info": 0}
        for finding in self.findings:
            counts[finding.severity] += 1
        return counts

    def worst_rank(self) -> int | None:
        return min((severity_rank(f.severity) for f in self.findings), default=None)


def load_baseline(path: str) -> dict[str, str]:
    """Fingerprint -> reason, from a baseline file (YAML or JSON)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise InputError(f"{path}: cannot read baseline: {error}") from None
    except yaml.YAMLError as error:
        raise InputError(f"{path}: baseline is not valid YAML/JSON: {error}") from None
    entries = (data or {}).get("accepted") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise InputError(f"{path}: baseline needs a list under 'accepted'")
    baseline = {}
    for entry in entries:
        if not isinstance(entry, dict) or "fingerprint" not in entry:
            raise InputError(f"{path}: every accepted entry needs a fingerprint: {entry!r}")
        baseline[str(entry["fingerprint"])] = str(entry.get("reason") or "accepted")
    return baseline


def baseline_document(findings: list[Finding], reason: str) -> dict:
    return {
        "accepted": [
            {
                "fingerprint": f.fingerprint,
                "code": f.code,
                "resource": f.resource,
                "evidence": f.evidence,
                "reason": reason,
            }
            for f in findings
        ]
    }


def diagnose(
    inventory: Inventory,
    baseline: dict[str, str] | None = None,
    checks: list[Check] | None = None,
    min_severity: str = "info",
) -> Result:
    """`checks` (default: all) run; findings less severe than `min_severity` are only counted."""
    checks = all_checks() if checks is None else checks
    findings: list[Finding] = []
    seen: set[str] = set()
    skipped_checks: list[SkippedCheck] = []
    for check in checks:
        try:
            check_findings = run_isolated(check, inventory)
        except CheckSkipped as skip:
            skipped_checks.append(SkippedCheck(check.code, str(skip)))
            continue
        for finding in check_findings:
            if finding.fingerprint not in seen:
                seen.add(finding.fingerprint)
                findings.append(finding)
    result = Result(
        [],
        skipped=list(inventory.skipped),
        not_checked=not_checked(inventory),
        checks=checks,
        skipped_checks=skipped_checks,
    )
    for finding in findings:
        ignored = inventory.ignored_codes(finding.resource)
        if finding.code in ignored:
            result.suppressed.append(Suppressed(finding, "annotation", ignored[finding.code]))
        elif baseline and finding.fingerprint in baseline:
            result.suppressed.append(Suppressed(finding, "baseline", baseline[finding.fingerprint]))
        elif severity_rank(finding.severity) > severity_rank(min_severity):
            result.hidden[finding.severity] = result.hidden.get(finding.severity, 0) + 1
        else:
            result.findings.append(finding)
    result.findings.sort(key=lambda f: (severity_rank(f.severity), f.category, f.code, f.resource))
    return result


def run_isolated(check: Check, inventory: Inventory) -> list[Finding]:
    """A check's findings; one that raises becomes a CONF002 finding, the others still run.
    CheckSkipped is no bug: it goes through to diagnose(), which lists the check as skipped."""
    try:
        return check.findings(inventory)
    except CheckSkipped:
        raise
    except Exception as error:  # any bug of one check on unforeseen input
        return [could_not_run(check, error)]


def not_checked(inventory: Inventory) -> dict[str, int]:
    """Objects of kinds no check reads, by kind: counted in the report, not dropped unseen."""
    return {
        kind: len(objects)
        for kind, objects in sorted(inventory.objects.items())
        if objects and kind not in CHECKED_KINDS
    }
