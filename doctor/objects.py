"""Reading the metadata every Kubernetes object shares: namespace, name, resource id, and
whether a label selector matches a set of labels."""

from __future__ import annotations

DEFAULT_NAMESPACE = "default"


def namespace_of(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("namespace") or DEFAULT_NAMESPACE


def name_of(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("name") or "<unnamed>"


def resource_id(obj: dict) -> str:
    return f"{obj.get('kind')}/{namespace_of(obj)}/{name_of(obj)}"


def labels_match(selector: dict, labels: dict) -> bool:
    """A Service-style selector (plain map) or a LabelSelector (matchLabels/matchExpressions)."""
    if not selector:
        return True
    if "matchLabels" in selector or "matchExpressions" in selector:
        for key, value in (selector.get("matchLabels") or {}).items():
            if labels.get(key) != value:
                return False
        for expression in selector.get("matchExpressions") or []:
            key, op = expression.get("key"), expression.get("operator")
            values = expression.get("values") or []
            if op == "In" and labels.get(key) not in values:
                return False
            if op == "NotIn" and labels.get(key) in values:
                return False
            if op == "Exists" and key not in labels:
                return False
            if op == "DoesNotExist" and key in labels:
                return False
        return True
    return all(labels.get(key) == value for key, value in selector.items())
