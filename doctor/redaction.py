"""Masking secrets in text a report or a snapshot shows: passwords in URLs, inline
`password=...`, bearer tokens and the service's API keys keep two characters and their length."""

from __future__ import annotations

import re

URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<password>[^@\s/]+)(?=@)")
INLINE_SECRET = re.compile(
    r"(?P<head>(?:password|passwd|token|secret|api[_-]?key)[\"']?\s*[:=]\s*[\"']?)"
    r"(?P<password>[^\s\"',&;]+)",
    re.I,
)
BEARER = re.compile(r"(?P<head>Bearer\s+)(?P<password>[A-Za-z0-9._~+/=-]+)")
SERVICE_KEY = re.compile(r"(?P<head>)(?P<password>mk_[A-Za-z0-9_-]{16,})")


def mask(value: str) -> str:
    """Keep the first two characters and the length: what the report's evidence shows."""
    return value[:2] + "*" * (len(value) - 2) if len(value) > 4 else "*" * len(value)


def redact_text(text: str) -> str:
    for pattern in (URL_PASSWORD, INLINE_SECRET, BEARER, SERVICE_KEY):
        text = pattern.sub(lambda m: m.group("head") + mask(m.group("password")), text)
    return text
