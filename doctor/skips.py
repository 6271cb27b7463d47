"""Checks that cannot run where the doctor runs (an optional package is not installed) raise
CheckSkipped; the result lists them with the reason, so a missing package never hides a check."""

from __future__ import annotations

from dataclasses import dataclass


class CheckSkipped(Exception):
    """Raised by a check that cannot run here; the message says why and how to enable it."""


@dataclass(frozen=True)
class SkippedCheck:
    code: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "reason": self.reason}

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"
