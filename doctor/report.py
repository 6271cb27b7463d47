"""Render a Result as text, JSON, JUnit XML or SARIF 2.1.0."""

from __future__ import annotations

import json
import textwrap
from collections import defaultdict
from xml.etree import ElementTree

from doctor.diagnose import Result
from doctor.finding import CATEGORIES
from doctor.registry import all_checks

SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def summary(result: Result) -> dict:
    by_category: dict[str, int] = defaultdict(int)
    for finding in result.findings:
        by_category[finding.category] += 1
    return {
        **{
            f"{severity}s" if severity != "info" else "info": n
            for severity, n in result.counts().items()
        },
        "total": len(result.findings),
        "suppressed": len(result.suppressed),
        "by_category": dict(sorted(by_category.items())),
        "checks_run": len(all_checks()),
        "not_checked": result.not_checked,
        "skipped": [skipped.to_dict() for skipped in result.skipped],
    }


def input_notes(result: Result) -> list[str]:
    """What the doctor did not check, one line each: skipped files, then unknown kinds."""
    notes = [f"skipped: {skipped}" for skipped in result.skipped]
    if result.not_checked:
        objects = sum(result.not_checked.values())
        kinds = ", ".join(result.not_checked)
        notes.append(f"not checked: {objects} object(s) of kinds {kinds} (no check reads them)")
    return notes


def to_json(result: Result) -> str:
    return json.dumps(
        {
            "findings": [f.to_dict() for f in result.findings],
            "summary": summary(result),
            "suppressed": [
                {**s.finding.to_dict(), "suppressed_by": s.how, "reason": s.reason}
                for s in result.suppressed
            ],
        },
        indent=2,
    )


def to_text(result: Result, width: int = 100) -> str:
    lines = []
    by_category = defaultdict(list)
    for finding in result.findings:
        by_category[finding.category].append(finding)
    for category in CATEGORIES:
        findings = by_category.get(category)
        if not findings:
            continue
        counts = defaultdict(int)
        for finding in findings:
            counts[finding.severity] += 1
        tally = ", ".join(f"{n} {sev}" for sev, n in counts.items())
        lines.append(f"== {category} ({tally}) ==")
        for f in findings:
            lines.append(f"  {f.severity.upper():7} {f.code:8} {f.resource}")
            for label, text in (("", f.message), ("evidence: ", f.evidence), ("fix: ", f.fix)):
                lines.extend(
                    textwrap.wrap(
                        label + text, width, initial_indent=" " * 19, subsequent_indent=" " * 21
                    )
                )
            lines.append(f"{' ' * 19}runbook: {f.runbook}")
        lines.append("")
    lines.extend(input_notes(result))
    counts = result.counts()
    lines.append(
        f"{counts['error']} errors, {counts['warning']} warnings, {counts['info']} info"
        f" ({len(result.suppressed)} suppressed)"
    )
    for s in result.suppressed:
        lines.append(f"  suppressed by {s.how}: {s.finding.code} {s.finding.resource}: {s.reason}")
    return "\n".join(lines) + "\n"


def to_junit(result: Result) -> str:
    checks = all_checks()
    by_code = defaultdict(list)
    for finding in result.findings:
        by_code[finding.code].append(finding)
    # One test case per check: it fails when the check has findings, listing each of them.
    notes = input_notes(result)
    suite = ElementTree.Element(
        "testsuite",
        name="doctor",
        tests=str(len(checks) + len(notes)),
        failures=str(len(by_code)),
        errors="0",
        skipped=str(len(notes)),
    )
    # What was not checked: a skipped test case each, so CI shows it beside the checks.
    for note in notes:
        case = ElementTree.SubElement(suite, "testcase", classname="doctor.input", name=note)
        ElementTree.SubElement(case, "skipped", message=note)
    for check in checks:
        case = ElementTree.SubElement(
            suite,
            "testcase",
            classname=f"doctor.{check.category}",
            name=f"{check.code} {check.summary}",
        )
        findings = by_code.get(check.code)
        if findings:
            failure = ElementTree.SubElement(
                case,
                "failure",
                message=f"{len(findings)} finding(s): {findings[0].message}"[:500],
                type=findings[0].severity,
            )
            failure.text = "\n\n".join(
                f"[{f.severity}] {f.resource}\n{f.message}\nevidence: {f.evidence}\nfix: {f.fix}\n"
                f"runbook: {f.runbook}"
                for f in findings
            )
    return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def to_sarif(result: Result, origins: dict[str, str]) -> str:
    checks = all_checks()
    rules = [
        {
            "id": c.code,
            "name": c.code,
            "shortDescription": {"text": c.summary},
            "help": {"text": c.fix},
            "helpUri": c.runbook,
            "defaultConfiguration": {"level": SARIF_LEVEL[c.severity]},
            "properties": {"category": c.category},
        }
        for c in checks
    ]
    results = []
    for f in result.findings:
        location: dict = {"logicalLocations": [{"fullyQualifiedName": f.resource}]}
        if f.resource in origins:
            location["physicalLocation"] = {"artifactLocation": {"uri": origins[f.resource]}}
        results.append(
            {
                "ruleId": f.code,
                "level": SARIF_LEVEL[f.severity],
                "message": {"text": f"{f.message} (evidence: {f.evidence})"},
                "locations": [location],
                "partialFingerprints": {"doctor/v1": f.fingerprint},
            }
        )
    document = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {"name": "doctor", "informationUri": "runbooks/", "rules": rules}
                },
                "results": results,
                "invocations": [
                    {
                        "executionSuccessful": True,
                        "toolExecutionNotifications": [
                            {"level": "warning", "message": {"text": note}}
                            for note in input_notes(result)
                        ],
                    }
                ],
            }
        ],
    }
    return json.dumps(document, indent=2)
