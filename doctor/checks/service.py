"""The service, live: the API not ready (with its own reason) and an output directory that the
doctor's write probe (or the probe inside a worker or API pod) cannot write."""

from __future__ import annotations

from doctor.finding import Category, Severity
from doctor.inventory import Inventory
from doctor.live_state import component_resource
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
    service = inventory.live.service
    if service is None or not service.readyz or service.readyz.get("status") == 200:
        return
    ready = service.readyz
    body = ready.get("body")
    reason = body.get("reason") if isinstance(body, dict) else body
    yield Hit(
        component_resource("api", service.url),
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
    for probe in inventory.live.probes or ():
        if probe.component != "output" or probe.ok:
            continue
        where = probe.where or "doctor"
        yield Hit(
            probe.resource or f"path://{probe.target}",
            f"writing a file in the output directory {probe.target} "
            f"{'from the doctor' if where == 'doctor' else 'inside ' + where} failed: videos "
            "cannot be saved, every job fails at its last step",
            str(probe.detail or probe.kind)[:400],
        )
