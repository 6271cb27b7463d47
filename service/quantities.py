"""Kubernetes quantities ("64Gi", "500m", "1e3", "1Ei"), parsed one way for the whole project:
infra's config rules and manifests, the doctor's checks and the policy pack all read them here.

On `kubernetes.utils.parse_quantity`, held to the API server's grammar first: that function
also takes forms the server refuses ("1K", "1_000", "NaN", "1e3Gi"). The API image has no
`kubernetes` package, so code the API imports must import this module lazily.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal
from functools import lru_cache

from kubernetes.utils import parse_quantity

GIB = Decimal(2**30)
# <signedNumber><suffix>, as apimachinery's resource.Quantity reads it.
QUANTITY = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?")


class InvalidQuantity(ValueError):
    """A value that is not a Kubernetes quantity; the message names the value."""

    def __init__(self, value: object):
        self.value = value
        super().__init__(f"{str(value)!r} is not a Kubernetes quantity")


def parse(value: str | int | float) -> Decimal:
    """The exact value of a quantity: `parse("500m") == Decimal("0.5")`."""
    if isinstance(value, bool):  # YAML `yes`/`true`: a boolean is not a number to Kubernetes
        raise InvalidQuantity(value)
    return _parse_text(str(value))


@lru_cache(maxsize=4096)  # a large dump repeats a handful of values thousands of times
def _parse_text(text: str) -> Decimal:
    if not QUANTITY.fullmatch(text):
        raise InvalidQuantity(text)
    return parse_quantity(text)


def is_quantity(value: object) -> bool:
    """Whether the API server would take the value as a quantity."""
    try:
        parse(value)
    except InvalidQuantity:
        return False
    return True


def byte_count(value: str | int | float) -> int:
    """A memory quantity in whole bytes, rounded up as Kubernetes rounds: `byte_count("1Ki")`
    is 1024."""
    return int(parse(value).to_integral_value(rounding=ROUND_CEILING))


def gib(value: str | int | float) -> float:
    """A memory or storage quantity in GiB: `gib("512Mi") == 0.5`."""
    return float(parse(value) / GIB)


def cores(value: str | int | float) -> float:
    """A CPU quantity in cores: `cores("500m") == 0.5`."""
    return float(parse(value))
