"""Which checks run: `--only` and `--skip`, each a list of codes or categories."""

from __future__ import annotations

from difflib import get_close_matches

from doctor.finding import CATEGORIES
from doctor.registry import Check, all_checks


class SelectionError(ValueError):
    """A code or category that does not exist, or a selection that leaves no check."""


def parse_names(values: list[str]) -> list[str]:
    """`--only NET001,memory --only RAY` -> ["NET001", "memory", "RAY"] (repeatable, commas)."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def select_checks(only: list[str], skip: list[str]) -> list[Check]:
    """The checks named by `only` (all when empty), less those named by `skip`."""
    checks = all_checks()
    chosen = matching(checks, only, "--only") if only else set(c.code for c in checks)
    chosen -= matching(checks, skip, "--skip")
    if not chosen:
        raise SelectionError("--only and --skip leave no check to run")
    return [c for c in checks if c.code in chosen]


def matching(checks: list[Check], names: list[str], option: str) -> set[str]:
    codes = {c.code for c in checks}
    unknown = [n for n in names if n.upper() not in codes and n.lower() not in CATEGORIES]
    if unknown:
        guesses = {g for n in unknown for g in get_close_matches(n.upper(), codes, n=1)}
        hint = f" (did you mean {', '.join(sorted(guesses))}?)" if guesses else ""
        raise SelectionError(
            f"{option}: unknown check code or category {', '.join(unknown)}{hint}; "
            f"categories: {', '.join(CATEGORIES)}; codes: {', '.join(sorted(codes))}"
        )
    wanted = {n.upper() for n in names} | {n.lower() for n in names}
    return {c.code for c in checks if c.code in wanted or c.category in wanted}
