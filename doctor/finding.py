"""The one Finding type every check produces, and the severity order."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from enum import StrEnum


class Severity(StrEnum):
    """Worst first: the order `--fail-on` and every report sort by."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Category(StrEnum):
    CONNECTIVITY = "connectivity"
    PERMISSIONS = "permissions"
    MEMORY = "memory"
    QUOTA = "quota"
    SECURITY = "security"
    JOBS = "jobs"
    AVAILABILITY = "availability"
    CONFIGURATION = "configuration"


SEVERITIES = tuple(severity.value for severity in Severity)
CATEGORIES = tuple(category.value for category in Category)


def severity_rank(severity: str) -> int:
    """0 for error, 1 for warning, 2 for info: lower is worse."""
    return SEVERITIES.index(severity)


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    category: str
    resource: str
    message: str
    evidence: str
    fix: str
    runbook: str

    @property
    def fingerprint(self) -> str:
        """Stable across runs, machines and working directories: what a baseline file and
        SARIF's partialFingerprints record. The object's identity (Kind/namespace/name), the
        code and the evidence; no input path enters it (a build file in the evidence is named
        by its repository path, doctor.locations.build_file_name)."""
        text = "\x1f".join((self.code, self.resource, self.evidence))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return {**asdict(self), "fingerprint": self.fingerprint}
