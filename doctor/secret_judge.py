"""Whether a value can be a leaked secret: flags, numbers, paths, references and words such as
`true` are not; `changeme`, `<your-token>` are placeholders still to set; anything else is one.
The checks (SEC005) and the redaction of reports and snapshots judge values the same way."""

from __future__ import annotations

import re

REFERENCE = re.compile(r"\$\(|\$\{|^\$\w|\{\{|^!\w")
NUMBER = re.compile(r"[-+]?\d+(\.\d+)?[a-zA-Z]{0,2}")
NOT_SECRETS = {"true", "false", "yes", "no", "on", "off", "enabled", "disabled", "null", "none"}
PLACEHOLDERS = {
    "changeme", "changeit", "dummy", "example", "password", "passw0rd", "secret", "test",
    "testing", "todo", "tbd", "fake", "placeholder", "sample", "foo", "bar", "foobar",
    "mypassword", "mysecretpassword", "mysecret", "mytoken", "redacted", "replaceme",
    "notsecret", "notasecret", "insecure", "foobared",
}  # fmt: skip
PLACEHOLDER_SHAPES = re.compile(
    r"^<.*>$|^\[.*\]$|^x{3,}$|^\*{3,}$|^\.{3}$|^(your|my|replace|insert|enter|put)[-_ ]"
    r"|(^|[-_])(here|example|placeholder|changeme|dummy|replace[-_]?me)($|[-_])",
    re.IGNORECASE,
)


def judge(value: str, *, by_name: bool) -> str | None:
    """ "secret", "placeholder", or None when the value cannot be a leaked secret. `by_name`:
    only the name says it is a secret, so numbers (TTLs, lengths) and URLs are settings."""
    text = value.strip().strip("\"'")
    if not text or text.lower() in NOT_SECRETS or REFERENCE.search(text):
        return None
    if text.startswith(("/", "./", "../", "~/", "file:")):
        return None
    if by_name and (NUMBER.fullmatch(text) or "://" in text):
        return None
    normalized = re.sub(r"[-_ ]", "", text.lower())
    if normalized in PLACEHOLDERS or normalized.startswith("your"):
        return "placeholder"
    if PLACEHOLDER_SHAPES.search(text):
        return "placeholder"
    return "secret"
