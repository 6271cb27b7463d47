"""Render a Result as text, JSON, JUnit XML or SARIF 2.1.0 (as GitHub code scanning reads it:
every result located in a file relative to the repository root where the input has one)."""

from __future__ import annotations

import argparse
import json
import re
import textwrap
from collections import defaultdict
from urllib.parse import urlsplit
from xml.etree import ElementTree

from doctor.diagnose import Result
from doctor.finding import CATEGORIES, Finding, severity_rank
from doctor.inventory import Origin
from doctor.locations import artifact_uri
from doctor.objects import DEFAULT_NAMESPACE
from doctor.registry import Check, all_checks
from doctor.sources.files import STDIN_NAME
from doctor.state import LiveState
from service.version import package_version

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
        "hidden": dict(result.hidden),
        "checks_run": len(result.checks),
        "not_checked": result.not_checked,
        "skipped": [skipped.to_dict() for skipped in result.skipped],
        "skipped_checks": [check.to_dict() for check in result.skipped_checks],
    }


def input_notes(result: Result, with_checks: bool = True) -> list[str]:
    """What the doctor did not check, one line each: skipped files, checks that could not run
    here (unless with_checks is False), then unknown kinds."""
    notes = [f"skipped: {skipped}" for skipped in result.skipped]
    if with_checks:
        notes += [f"check skipped: {check}" for check in result.skipped_checks]
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
    hidden = sum(result.hidden.values())
    below = f", {hidden} below --min-severity" if hidden else ""
    lines.append(
        f"{counts['error']} errors, {counts['warning']} warnings, {counts['info']} info"
        f" ({len(result.suppressed)} suppressed{below})"
    )
    for s in result.suppressed:
        lines.append(f"  suppressed by {s.how}: {s.finding.code} {s.finding.resource}: {s.reason}")
    return "\n".join(lines) + "\n"


def to_junit(result: Result, fail_on: str = "error", live: LiveState | None = None) -> str:
    """One test case per check: skipped when it could not run (not selected, or it reads live
    state and `live`, the inventory's, holds none), an error when it crashed (CONF002), a
    failure when it has findings at or above fail_on; those below it go to its system-out."""
    live_state = live is None or live.feeds_live_checks
    crashed = crashed_checks(result.findings)
    by_code = defaultdict(list)
    for finding in result.findings:
        if finding not in crashed.values():
            by_code[finding.code].append(finding)
    suite = ElementTree.Element("testsuite", name="doctor")
    # What was not checked: a skipped test case each, so CI shows it beside the checks.
    for note in input_notes(result, with_checks=False):
        case = ElementTree.SubElement(suite, "testcase", classname="doctor.input", name=note)
        ElementTree.SubElement(case, "skipped", message=note)
    ran = {check.code for check in result.checks}
    unable = {skipped.code: skipped.reason for skipped in result.skipped_checks}
    for check in all_checks():
        case = ElementTree.SubElement(
            suite, "testcase", classname=f"doctor.{check.category}", name=check_title(check)
        )
        if reason := unable.get(check.code) or not_run_reason(check, ran, live_state):
            ElementTree.SubElement(case, "skipped", message=reason)
        elif check.code in crashed:
            error = crashed[check.code]
            element = ElementTree.SubElement(case, "error", message=error.message[:500])
            element.set("type", error.code)
            element.text = finding_text(error)
        else:
            add_outcome(case, by_code.get(check.code, []), fail_on)
    for kind in ("failure", "error", "skipped"):
        suite.set(f"{kind}s" if kind != "skipped" else kind, str(len(suite.findall(f"*/{kind}"))))
    suite.set("tests", str(len(suite)))
    return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


# CONF002's message names the check that raised (doctor.checks.input_values.could_not_run).
CRASHED_CHECK = re.compile(r"check (\S+) could not run")


def crashed_checks(findings: list[Finding]) -> dict[str, Finding]:
    """Check code -> the CONF002 finding saying it raised."""
    crashed = {}
    for finding in findings:
        match = CRASHED_CHECK.match(finding.message) if finding.code == "CONF002" else None
        if match:
            crashed.setdefault(match.group(1), finding)
    return crashed


def not_run_reason(check: Check, ran: set[str], live_state: bool) -> str | None:
    if check.code not in ran:
        return "not selected (--only/--skip)"
    if check.needs_live and not live_state:
        return (
            "reads live state (Ray, Redis, the job store, probes), which this input does not "
            "hold: run it against the live system or a `doctor snapshot` folder"
        )
    return None


def add_outcome(case: ElementTree.Element, findings: list[Finding], fail_on: str) -> None:
    """A failure listing the findings at or above fail_on; the others in system-out."""
    threshold = -1 if fail_on == "never" else severity_rank(fail_on)  # never: none fails
    failing = [f for f in findings if severity_rank(f.severity) <= threshold]
    below = [f for f in findings if f not in failing]
    if failing:
        failure = ElementTree.SubElement(
            case,
            "failure",
            message=f"{len(failing)} finding(s): {failing[0].message}"[:500],
            type=failing[0].severity,
        )
        failure.text = "\n\n".join(finding_text(f) for f in failing)
    if below:
        out = ElementTree.SubElement(case, "system-out")
        out.text = f"below --fail-on {fail_on}:\n\n" + "\n\n".join(finding_text(f) for f in below)


def check_title(check: Check) -> str:
    return f"{check.code} {check.summary}"


def finding_text(f: Finding) -> str:
    return (
        f"[{f.severity}] {f.resource}\n{f.message}\nevidence: {f.evidence}\nfix: {f.fix}\n"
        f"runbook: {f.runbook}"
    )


# -- SARIF ------------------------------------------------------------------------------------
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
# GitHub code scanning shows 1024 characters of a rule's descriptions.
DESCRIPTION_LIMIT = 1024
PROBLEM_SEVERITY = {"error": "error", "warning": "warning", "info": "recommendation"}


def runbook_base(value: str) -> str:
    """--runbook-url BASE: an absolute http(s) URL, under which CODE.md is each runbook."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(
            f"must be an absolute http(s) URL, such as https://host/runbooks (got {value!r})"
        )
    return value.rstrip("/")


def to_sarif(result: Result, origins: dict[str, Origin], runbook_url: str | None = None) -> str:
    checks = all_checks()
    index = {check.code: position for position, check in enumerate(checks)}
    locator = Locator(origins)
    driver = {"name": "doctor", "rules": [sarif_rule(c, runbook_url) for c in checks]}
    driver["version"] = package_version()
    if runbook_url:
        driver["informationUri"] = f"{runbook_url}/"
    document = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": driver},
                "results": [
                    sarif_result(f, index[f.code], locator.location(f.resource))
                    for f in result.findings
                ],
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


def sarif_rule(check: Check, runbook_url: str | None) -> dict:
    page = runbook_page(check.code)
    rule = {
        "id": check.code,
        "name": check.code,
        "shortDescription": {"text": clip(check.summary)},
        "fullDescription": {"text": clip(runbook_section(page, "Meaning") or check.summary)},
        "help": {"text": page or check.fix, "markdown": page or check.fix},
        "defaultConfiguration": {"level": SARIF_LEVEL[check.severity]},
        "properties": {
            "category": check.category,
            "tags": ["kubernetes", check.category],
            "problem.severity": PROBLEM_SEVERITY[check.severity],
        },
    }
    if runbook_url:
        rule["helpUri"] = f"{runbook_url}/{check.code}.md"
    return rule


def runbook_page(code: str) -> str:
    # Read where `doctor explain` reads them; imported here, as doctor.cli imports this module.
    from doctor.cli import RUNBOOKS

    page = RUNBOOKS / f"{code}.md"
    return page.read_text(encoding="utf-8") if page.is_file() else ""


def runbook_section(page: str, title: str) -> str:
    """The text of a runbook's `## title` section, on one line."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", page, re.M | re.S)
    return " ".join(match.group(1).split()) if match else ""


def clip(text: str, limit: int = DESCRIPTION_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def sarif_result(finding: Finding, rule_index: int, location: dict) -> dict:
    return {
        "ruleId": finding.code,
        "ruleIndex": rule_index,
        "level": SARIF_LEVEL[finding.severity],
        "message": {"text": f"{finding.message} (evidence: {finding.evidence})"},
        "locations": [location],
        # GitHub matches alerts across runs by primaryLocationLineHash ("HASH:occurrence"):
        # the doctor's own fingerprint (object identity and finding), so a moved line or
        # another working directory keeps the alert.
        "partialFingerprints": {
            "primaryLocationLineHash": f"{finding.fingerprint}:1",
            "doctor/v1": finding.fingerprint,
        },
    }


class Locator:
    """Each finding's location: its object's logical location (Kind/namespace/name) and, where
    the object was read from a file, that file and line. A finding on what the input does not
    declare (a namespace with no Namespace object, an object an operator creates, a crashed
    check) points at the first object read from a file in its namespace, else the first one."""

    def __init__(self, origins: dict[str, Origin]):
        self.origins = {rid: o for rid, o in origins.items() if is_file(o)}
        self.first_in: dict[str, Origin] = {}
        for rid, origin in self.origins.items():
            self.first_in.setdefault(rid.split("/")[1] if rid.count("/") >= 2 else "", origin)
        self.first = next(iter(self.origins.values()), None)

    def location(self, resource: str) -> dict:
        kind, _, rest = resource.partition("/")
        namespace, _, name = rest.partition("/")
        location: dict = {
            "logicalLocations": [
                {
                    "name": name or resource,
                    "fullyQualifiedName": resource,
                    "kind": "resource",
                    "properties": {"kind": kind, "namespace": namespace or DEFAULT_NAMESPACE},
                }
            ]
        }
        origin = self.origins.get(resource) or self.first_in.get(namespace) or self.first
        if origin is not None:
            location["physicalLocation"] = {
                "artifactLocation": {"uri": artifact_uri(origin.path)},
                "region": {"startLine": max(origin.line, 1)},
            }
        return location


def is_file(origin: Origin) -> bool:
    return origin.path != STDIN_NAME and not origin.path.startswith("live:")
