"""Values the API server would refuse, and checks that could not run.

CONF001: a quantity that is not one (`64GB`), a count that is not an integer (a
`{{ .Values.replicas }}` that survived rendering). The other checks skip such a value; this one
names the file, the object and the field. CONF002: a check that raised; doctor.diagnose runs
each check isolated and reports the failure with `could_not_run`.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterator

from doctor.finding import Category, Finding, Severity
from doctor.inventory import WORKLOAD_KINDS, Inventory, Workload
from doctor.kuberay import KUBERAY_KINDS
from doctor.objects import resource_id
from doctor.registry import REGISTRY, Check, Hit, check
from doctor.sources.files import TEMPLATE_MARK
from service.quantities import is_quantity

CHECKED_KINDS = frozenset(
    (
        *WORKLOAD_KINDS,
        "Pod",
        *KUBERAY_KINDS,
        "Service",
        "Endpoints",
        "Ingress",
        "HTTPRoute",
        "GRPCRoute",
        "NetworkPolicy",
        "ConfigMap",
        "Secret",
        "PersistentVolumeClaim",
        "ResourceQuota",
        "Namespace",
        "Node",
        "Event",
    )
)
"""Every kind some check reads; objects of other kinds are counted as not checked."""

COUNT_FIELDS = {
    "replicas",
    "minReplicas",
    "maxReplicas",
    "parallelism",
    "completions",
    "numOfHosts",
    "containerPort",
}
INT_OR_PERCENT_FIELDS = {"maxSurge", "maxUnavailable"}
PERCENT = re.compile(r"\d+%")
ENV_PLACEHOLDER = re.compile(r"\$\{?\w+\}?")  # envsubst, Terraform templatefile
CONTAINER_LISTS = {"containers", "initContainers", "ephemeralContainers"}


@check(
    code="CONF001",
    severity=Severity.ERROR,
    category=Category.CONFIGURATION,
    summary="A value is not what Kubernetes accepts (a quantity, an integer)",
    fix="Write the value as Kubernetes reads it: a quantity such as 64Gi, 64G, 500m or 1e3 (there "
    "is no B suffix), an integer for counts; render templates before checking them.",
)
def invalid_values(inventory: Inventory):
    for kind in sorted(CHECKED_KINDS):
        for obj in inventory.of(kind):
            origin = inventory.origin.get(resource_id(obj))
            where = f" (in {origin})" if origin else ""
            for path, value, expected in refused_values(obj):
                placeholder = is_placeholder(value)
                yield Hit(
                    resource_id(obj),
                    f"{path}: {str(value)!r} is not {expected}{where}{_hint(value)}; the API "
                    "server refuses the object, and the doctor's other checks skip this value",
                    f"{path}: {value}",
                    # The file is meant to be rendered (helm, envsubst): what it will hold then
                    # is unknown, so the doctor cannot call it wrong.
                    severity=Severity.WARNING if placeholder else None,
                )


def refused_values(obj: dict) -> Iterator[tuple[str, object, str]]:
    """(field path, value, what it should be) of every value the API server would refuse."""
    if obj.get("kind") == "ResourceQuota":
        hard = (obj.get("spec") or {}).get("hard") or {}
        for key, value in hard.items():
            if not is_quantity(value):
                yield f"spec.hard.{key}", value, "a Kubernetes quantity"
    yield from _walk(obj.get("spec"), "spec")


def _walk(value, path: str) -> Iterator[tuple[str, object, str]]:
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")
        return
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        here = f"{path}.{key}"
        if key in COUNT_FIELDS and not _is_int(item):
            yield here, item, "an integer"
        elif key in INT_OR_PERCENT_FIELDS and not (_is_int(item) or PERCENT.fullmatch(str(item))):
            yield here, item, "an integer or a percentage"
        elif key == "sizeLimit" and not is_quantity(item):
            yield here, item, "a Kubernetes quantity"
        elif key == "resources" and _is_requirements(item):
            yield from _requirements(item, here)
        else:
            yield from _walk(item, here)


def _is_requirements(value) -> bool:
    """Container or claim resources (requests/limits maps), not KubeRay's rayStartParams
    `resources` string or a Ray group's custom resources."""
    return isinstance(value, dict) and any(
        isinstance(value.get(k), dict) for k in ("requests", "limits")
    )


def _requirements(resources: dict, path: str) -> Iterator[tuple[str, object, str]]:
    for kind in ("requests", "limits"):
        for name, value in (resources.get(kind) or {}).items():
            if not is_quantity(value):
                yield f"{path}.{kind}.{name}", value, "a Kubernetes quantity"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_placeholder(value) -> bool:
    """A value left for a template engine: `{{ .Values.x }}`, `$REPLICAS`, `${replicas}`."""
    text = str(value)
    return bool(TEMPLATE_MARK.search(text) or ENV_PLACEHOLDER.fullmatch(text))


def _hint(value) -> str:
    text = str(value)
    if is_placeholder(text):
        return (
            ": an unrendered template value (render it first: `helm template …`, `envsubst`, "
            "then `| doctor diagnose --manifests -`)"
        )
    if text.endswith("B") and is_quantity(text[:-1]):
        return f": Kubernetes has no B suffix, write {text[:-1]} (powers of 10) or {text[:-1]}i"
    return ""


@check(
    code="CONF002",
    severity=Severity.WARNING,
    category=Category.CONFIGURATION,
    summary="A check could not run on this input; its findings are missing from the report",
    fix="Report the doctor bug with the evidence; until then, read the object by hand for what "
    "the check looks for (`doctor explain CODE`).",
)
def failed_checks(inventory: Inventory):
    """Found by doctor.diagnose, which runs every check isolated (see could_not_run)."""
    return ()


def could_not_run(failed: Check, error: Exception) -> Finding:
    """The CONF002 finding of a check that raised, naming the object it was reading."""
    meta = REGISTRY["CONF002"]
    obj = _object_being_read(error)
    on = f" on {obj}" if obj else ""
    detail = f"{type(error).__name__}: {error}"
    return Finding(
        code=meta.code,
        severity=meta.severity,
        category=meta.category,
        resource=obj or f"Check/-/{failed.code}",
        message=f"check {failed.code} could not run{on}: {detail}; the rest of the report "
        f"is complete, but {failed.code}'s findings are missing",
        evidence=f"{detail} ({_where(error)})",
        fix=meta.fix.replace("CODE", failed.code),
        runbook=meta.runbook,
    )


def _frames(error: Exception) -> list[tuple]:
    """(frame, line) of the traceback below the catching frame, innermost first."""
    return list(reversed(list(traceback.walk_tb(error.__traceback__))[1:]))


def _module(frame) -> str:
    return frame.f_globals.get("__name__", "")


def _object_being_read(error: Exception) -> str | None:
    for frame, _ in _frames(error):
        for value in frame.f_locals.values():
            if isinstance(value, Workload):
                return value.resource
            if _is_object(value):
                return resource_id(value)
    return None


def _where(error: Exception) -> str:
    """The innermost line of the doctor's own code (else of any) that raised."""
    frames = _frames(error)
    own = [(f, line) for f, line in frames if _module(f).startswith("doctor.")]
    frame, line = (own or frames)[0]
    return f"{_module(frame)}:{line} in {frame.f_code.co_name}"


def _is_object(value) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("kind"), str)
        and isinstance(value.get("metadata"), dict)
    )
