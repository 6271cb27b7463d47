"""Secrets written as plain values in pod specs and ConfigMaps."""

from __future__ import annotations

import re

from doctor.inventory import Inventory, name_of, namespace_of
from doctor.registry import Hit, check

SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL)"
)
URL_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]*://[^:/@\s]*:(?P<password>[^@/\s]+)@")


def _mask(value: str) -> str:
    return f"{value[:2]}*** ({len(value)} chars)" if len(value) > 4 else "***"


@check(
    "SEC005",
    "error",
    "security",
    "A secret is written as a plain value in a pod spec or ConfigMap",
    "Move it to a Secret and reference it with valueFrom.secretKeyRef (or envFrom.secretRef).",
)
def plain_secrets(inventory: Inventory):
    for workload in inventory.workloads:
        for container in workload.all_containers:
            for item in container.get("env") or []:
                name, value = item.get("name", ""), item.get("value")
                if not value:
                    continue
                match = URL_PASSWORD.search(str(value))
                if SECRET_NAME.search(name.upper()) or match:
                    shown = _mask(match.group("password") if match else str(value))
                    yield Hit(
                        workload.resource,
                        f"env {name} of container {container.get('name')} holds a secret in the "
                        "pod spec, readable by anyone who can read the workload",
                        f"{name}={shown}",
                    )
    for cm in inventory.of("ConfigMap"):
        for key, value in (cm.get("data") or {}).items():
            match = URL_PASSWORD.search(str(value))
            if (SECRET_NAME.search(key.upper()) and str(value)) or match:
                yield Hit(
                    f"ConfigMap/{namespace_of(cm)}/{name_of(cm)}",
                    f"ConfigMap key {key} holds a secret; ConfigMaps are not access-controlled "
                    "like Secrets",
                    f"{key}: {_mask(match.group('password') if match else str(value))}",
                )
