import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # the policy pack is not an installed package
    sys.path.insert(0, str(REPO_ROOT))

from infra import render  # noqa: E402

# What a user sets before deploying prod: Pulumi.prod.yaml ships placeholders the program refuses.
PROD_SETTINGS = {
    "mochi:apiImage": "registry.acme.internal/mochi/mochi-api:0.1.0",
    "mochi:workerImage": "registry.acme.internal/mochi/mochi-worker:0.1.0",
    "mochi:sharedStorageClass": "cephfs",
    "mochi:ingressHost": "mochi.acme.internal",
}
SETTINGS = {"dev": {}, "prod": PROD_SETTINGS}


@pytest.fixture(scope="session")
def registrations() -> dict[str, list[render.Registration]]:
    return {stack: render.run_stack(stack, **SETTINGS[stack]) for stack in render.STACKS}


@pytest.fixture(scope="session")
def objects(registrations) -> dict[str, list[dict]]:
    return {stack: render.kubernetes_objects(regs) for stack, regs in registrations.items()}
