"""Every code has a runbook page with the four sections, and every page has a code."""

from __future__ import annotations

import re
from pathlib import Path

from doctor.registry import all_checks

RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"
SECTIONS = ("## Meaning", "## Impact", "## Diagnosis", "## Mitigation")


def test_every_code_has_a_page_and_every_page_a_code():
    codes = {check.code for check in all_checks()}
    pages = {page.stem for page in RUNBOOKS.glob("*.md") if page.stem != "README"}
    assert codes - pages == set(), "codes without a runbook page"
    assert pages - codes == set(), "runbook pages without a code"


def test_pages_have_the_sections_and_commands():
    for check in all_checks():
        text = (RUNBOOKS / f"{check.code}.md").read_text()
        assert text.startswith(f"# {check.code}"), check.code
        positions = [text.find(section) for section in SECTIONS]
        assert all(p > 0 for p in positions) and positions == sorted(positions), check.code
        assert "```" in text.split("## Diagnosis", 1)[1], f"{check.code}: no commands"


# The line under the title: the check's severity first (a page may say in brackets when a
# finding is raised at another), then its category.
SEVERITY_LINE = re.compile(
    r"^Severity: \*\*(?P<severity>\w+)\*\*.* · Category: \*\*(?P<category>\w+)\*\*$"
)
FIX_LINE = "The doctor's own fix line: "


def test_pages_say_what_the_registry_says():
    for check in all_checks():
        lines = (RUNBOOKS / f"{check.code}.md").read_text().splitlines()
        assert lines[0] == f"# {check.code}: {check.summary}", check.code
        stated = next(SEVERITY_LINE.match(line) for line in lines if line.startswith("Severity:"))
        assert (stated["severity"], stated["category"]) == (check.severity, check.category), (
            check.code
        )
        fixes = [line.removeprefix(FIX_LINE) for line in lines if line.startswith(FIX_LINE)]
        assert fixes == [check.fix], check.code
