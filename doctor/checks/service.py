"""The service, live: the API not ready (with its own reason) and an output directory that the
doctor's write probe (or the probe inside a worker or API pod) cannot write."""

from __future__ import annotations

from doctor.finding import Category, Severity
from doctor.inventory import Inventory
from doctor.live_state import resource_of
from doctor.registry import Hit, check


@check(
    code="AVAIL007",
    severity=Severity.ERROR,
    category=Category.AVAILABILITY,
    summary="The API reports itself not ready (/readyz 503)",
    fix=(
        "Fix what the reason names: Redis unreachable (NET006), no worker heartbeat (RAY008, "
        "RAY009)."
    ),
    needs_live=True,
)
def api_not_ready(inventory: Inventory):
    service = inventory.state.get("service") or {}
    ready = service.get("readyz") or {}
    if not ready or ready.get("status") == 200:
        return
    body = ready.get("body")
    reason = body.get("reason") if isinstance(body, dict) else body
    yield Hit(
        resource_of({"component": "api", "target": service.get("url", "")}),
        f"the API is not ready and its load balancer sends it no traffic: {reason}",
        f"GET /readyz: {ready.get('status')} {body}"[:400],
    )


@check(
    code="PERM005",
    severity=Severity.ERROR,
    category=Category.PERMISSIONS,
    summary="A write probe in the output directory failed",
    fix="Make the output directory a writable directory for the containers' user: the shared "
    "volume mounted there, owned by (or fsGroup of) that user.",
    needs_live=True,
)
def output_not_writable(inventory: Inventory):
    for probe in inventory.state.get("probes") or []:
        if probe.get("component") != "output" or probe.get("ok"):
            continue
        where = probe.get("where") or "doctor"
        yield Hit(
            probe.get("resource") or f"path://{probe.get('target')}",
            f"writing a file in the output directory {probe.get('target')} "
            f"{'from the doctor' if where == 'doctor' else 'inside ' + where} failed: videos "
            "cannot be saved, every job fails at its last step",
            str(probe.get("detail") or probe.get("kind"))[:400],
        )
