"""Every code has a runbook page with the four sections, and every page has a code."""

from __future__ import annotations

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
