"""Run every check on an inventory, then apply suppressions (annotations, baseline)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from doctor.finding import Finding, severity_rank
from doctor.inventory import Inventory
from doctor.registry import all_checks
from doctor.sources.files import InputError


@dataclass(frozen=True)
class Suppressed:
    finding: Finding
    how: str  # "annotation" | "baseline"
    reason: str


@dataclass
class Result:
    findings: list[Finding]
    suppressed: list[Suppressed] = field(default_factory=list)

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


def diagnose(inventory: Inventory, baseline: dict[str, str] | None = None) -> Result:
    findings: list[Finding] = []
    seen: set[str] = set()
    for check in all_checks():
        for finding in check.findings(inventory):
            if finding.fingerprint not in seen:
                seen.add(finding.fingerprint)
                findings.append(finding)
    result = Result([])
    for finding in findings:
        ignored = inventory.ignored_codes(finding.resource)
        if finding.code in ignored:
            result.suppressed.append(Suppressed(finding, "annotation", ignored[finding.code]))
        elif baseline and finding.fingerprint in baseline:
            result.suppressed.append(Suppressed(finding, "baseline", baseline[finding.fingerprint]))
        else:
            result.findings.append(finding)
    result.findings.sort(key=lambda f: (severity_rank(f.severity), f.category, f.code, f.resource))
    return result
