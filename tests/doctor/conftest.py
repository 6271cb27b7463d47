from __future__ import annotations

from pathlib import Path

import pytest

from doctor.diagnose import diagnose
from doctor.inventory import Inventory
from doctor.sources import load_manifests, load_snapshot

FIXTURES = Path(__file__).parent / "fixtures"


def run(manifests: list[str] = (), snapshot: str | None = None):
    inventory = Inventory()
    if manifests:
        load_manifests([str(FIXTURES / m) for m in manifests], inventory)
    if snapshot:
        load_snapshot(str(FIXTURES / snapshot), inventory)
    return diagnose(inventory)


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def results():
    """Each fixture set diagnosed once per session."""
    return {
        "before": run(["report_before"]),
        "after": run(["report_after"]),
        "kuberay": run(["kuberay"]),
        "snapshot_faulty": run(snapshot="snapshot_faulty"),
        "after+healthy": run(["report_after"], snapshot="snapshot_healthy"),
    }
