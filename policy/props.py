"""A resource's props, as Pulumi hands them to a policy, turned into the plain object a manifest
file holds: what the doctor's inventory is built from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pulumi_policy.proxy import UnknownValueError

# Values of a Secret generated in the same update (a RandomPassword's result) are unknown at
# preview; the doctor reads Secret values only to mask them in what it prints.
SECRET_VALUES = ("data", "stringData")
# What the cluster reports, never what the program asks for: with it the checks would judge a
# rollout in progress (after `pulumi up` the props are the live object).
LIVE_ONLY_FIELDS = ("status",)


def manifest(props: Mapping) -> dict:
    """Plain dicts, lists and ints; an unknown value raises UnknownValueError (Pulumi reports
    the policy as not runnable at preview, naming the field), except among a Secret's values,
    where it is left out."""
    secret = props.get("kind") == "Secret"
    result = {}
    for key in props:
        if key in LIVE_ONLY_FIELDS:
            continue
        result[key] = (
            known_values(props, key) if secret and key in SECRET_VALUES else plain(props[key])
        )
    return result


def known_values(props: Mapping, key: str) -> dict:
    try:
        values = props[key]
    except UnknownValueError:
        return {}
    known = {}
    for name in values:
        try:
            known[name] = plain(values[name])
        except UnknownValueError:
            continue
    return known


def plain(value):
    """Pulumi's wire format carries every number as a float: whole ones become ints again, as a
    manifest writes replicas, ports and user ids."""
    if isinstance(value, Mapping):
        return {key: plain(value[key]) for key in value}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [plain(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
