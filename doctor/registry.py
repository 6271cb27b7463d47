"""One registry of checks. A check is a function of the inventory that yields Hits; the
registry turns each Hit into a Finding with the check's code, category and runbook, its text
redacted: whatever a check quotes (argv, env, config text, logs), no report format prints a
password, token or a value of one of the input's Secrets."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from doctor.finding import Category, Finding, Severity
from doctor.inventory import Inventory
from doctor.redaction import redact_report_text


@dataclass(frozen=True)
class Hit:
    resource: str
    message: str
    evidence: str
    fix: str | None = None  # the check's default fix when None
    severity: Severity | None = None  # the check's severity when None


@dataclass(frozen=True)
class Check:
    code: str
    severity: Severity
    category: Category
    summary: str
    fix: str
    run: Callable[[Inventory], Iterable[Hit]]
    # Reads live state (Ray, Redis, the job store, probes): skipped on manifests alone.
    needs_live: bool = False

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
                severity=Severity(hit.severity or self.severity).value,
                category=Category(self.category).value,
                resource=hit.resource,
                message=redacted(hit.message),
                evidence=redacted(hit.evidence),
                fix=redacted(hit.fix or self.fix),
                runbook=self.runbook,
            )
            for hit in self.run(inventory)
        ]


REGISTRY: dict[str, Check] = {}


def check(
    *,
    code: str,
    severity: Severity,
    category: Category,
    summary: str,
    fix: str,
    needs_live: bool = False,
):
    """Register a check under a stable code, with what it needs."""

    def register(run: Callable[[Inventory], Iterable[Hit]]):
        if code in REGISTRY:
            raise ValueError(f"duplicate check code {code}")
        REGISTRY[code] = Check(
            code, Severity(severity), Category(category), summary, fix, run, needs_live
        )
        return run

    return register


def all_checks() -> list[Check]:
    """Every check of doctor.checks.CHECK_MODULES, by code."""
    from doctor.checks import CHECK_MODULES

    assert CHECK_MODULES  # importing the modules filled REGISTRY
    return [REGISTRY[code] for code in sorted(REGISTRY)]
