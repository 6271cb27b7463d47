"""The service, live: /healthz, /readyz (503 carries the reason) and /version."""

from __future__ import annotations

import httpx

from doctor.sources.probe import Deadline, Probe, describe, failure_kind


def read_service(api_url: str, deadline: Deadline) -> tuple[dict, Probe]:
    base = api_url.rstrip("/")
    state: dict = {"url": base}
    with httpx.Client(base_url=base, timeout=deadline.timeout()) as http:
        try:
            ready = http.get("/readyz", timeout=deadline.timeout())
        except httpx.HTTPError as error:
            state["reachable"] = False
            return state, Probe("api", base, False, failure_kind(error), describe(error))
        state["reachable"] = True
        state["readyz"] = {"status": ready.status_code, "body": _body(ready)}
        try:
            version = http.get("/version", timeout=deadline.timeout())
            state["version"] = _body(version)
        except httpx.HTTPError as error:
            state["version_error"] = describe(error)
    return state, Probe("api", base, True)


def _body(response: httpx.Response):
    try:
        return response.json()
    except ValueError:
        return response.text[:300]
