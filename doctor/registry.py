"""One registry of checks. A check is a function of the inventory that yields Hits; the
registry turns each Hit into a Finding with the check's code, category and runbook, its text
redacted: whatever a check quotes (argv, env, config text, logs), no report format prints a
password, token or a value of one of the input's Secrets."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from doctor.finding import CATEGORIES, SEVERITIES, Finding
from doctor.inventory import Inventory
from doctor.redaction import redact_report_text


@dataclass(frozen=True)
class Hit:
    resource: str
    message: str
    evidence: str
    fix: str | None = None  # the check's default fix when None
    severity: str | None = None  # the check's severity when None


@dataclass(frozen=True)
class Check:
    code: str
    severity: str
    category: str
    summary: str
    fix: str
    run: Callable[[Inventory], Iterable[Hit]]

    @property
    def runbook(self) -> str:
        return f"runbooks/{self.code}.md"

    def findings(self, inventory: Inventory) -> list[Finding]:
        known = inventory.known_secrets

        def redacted(text: str) -> str:
            return redact_report_text(text, known)

        return [
            Finding(
                code=self.code,
                severity=hit.severity or self.severity,
                category=self.category,
                resource=hit.resource,
                message=redacted(hit.message),
                evidence=redacted(hit.evidence),
                fix=redacted(hit.fix or self.fix),
                runbook=self.runbook,
            )
            for hit in self.run(inventory)
        ]


REGISTRY: dict[str, Check] = {}


def check(code: str, severity: str, category: str, summary: str, fix: str):
    """Register a check under a stable code."""
    assert severity in SEVERITIES and category in CATEGORIES, (code, severity, category)

    def register(run: Callable[[Inventory], Iterable[Hit]]):
        if code in REGISTRY:
            raise ValueError(f"duplicate check code {code}")
        REGISTRY[code] = Check(code, severity, category, summary, fix, run)
        return run

    return register


def all_checks() -> list[Check]:
    import doctor.checks  # noqa: F401  (registers every check module)

    return [REGISTRY[code] for code in sorted(REGISTRY)]
