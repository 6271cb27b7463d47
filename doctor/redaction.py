"""Masking secrets in text a report or a snapshot shows: passwords in URLs, inline
`password=...`, secret flags of a command line (`--requirepass X`, `redis-cli -a X`), redis.conf
directives (`requirepass X`), bearer tokens and the service's API keys keep two characters and
their length. Masking is idempotent: a masked text masked again is the same text."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable

from doctor.secret_judge import judge

REDACTED = "<redacted>"
# Secret values shorter than these are not searched for: a 3-character value equals too many
# ordinary strings (ports, flags), and masking those would change the findings.
EQUAL_LENGTH = 6
CONTAINED_LENGTH = 8
# A word that, ending a name, says the name holds a secret (flags, keys of `key=value`).
SECRET_WORD = (
    r"(?:requirepass|masterauth|pass(?:word|wd)?|auth|token|secret|credentials?"
    r"|api[_-]?key|apikey|secret[_-]?key|private[_-]?key|access[_-]?key)"
)
# An env variable whose name holds any of these words has its value masked (REDISCLI_AUTH).
SECRET_ENV_NAME = re.compile(r"AUTH|PASS|SECRET|TOKEN|KEY|CREDENTIAL", re.I)
# A value that names where the secret is rather than being it: $(VAR), ${VAR}, $VAR, {{ x }}.
VALUE = r"(?P<password>(?![-$]|\{\{)[^\s\"',&;|]+)"

URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<password>[^@\s/]+)(?=@)")
INLINE_SECRET = re.compile(
    rf"(?P<head>\b(?:[\w.-]*?[_.-])?{SECRET_WORD}[\"']?\s*[:=]\s*[\"']?){VALUE}", re.I
)
SECRET_FLAG = re.compile(
    rf"(?P<head>--(?:[A-Za-z0-9]+[-_])*{SECRET_WORD}(?:=|\s+)[\"']?){VALUE}", re.I
)
REDIS_CLI_AUTH = re.compile(rf"(?P<head>\bredis-cli\b[^\n;&|]*?\s-a\s+[\"']?){VALUE}")
CONFIG_DIRECTIVE = re.compile(
    rf"(?P<head>^[ \t]*(?:requirepass|masterauth|password)[ \t]+[\"']?){VALUE}", re.I | re.M
)
ACL_PASSWORD = re.compile(r"(?P<head>^[ \t]*user[ \t][^\n]*?[ \t]>)(?P<password>\S+)", re.M)
BEARER = re.compile(r"(?P<head>Bearer\s+)(?P<password>[A-Za-z0-9._~+/=-]+)")
SERVICE_KEY = re.compile(r"(?P<head>)(?P<password>mk_[A-Za-z0-9_-]{16,})")
# Every pattern needs one of these: text without any (ids, states, names) is left as it is.
MAY_HOLD_SECRET = re.compile(r"[:=\s>]|--|mk_")
PATTERNS = (
    URL_PASSWORD,
    INLINE_SECRET,
    SECRET_FLAG,
    REDIS_CLI_AUTH,
    CONFIG_DIRECTIVE,
    ACL_PASSWORD,
    BEARER,
    SERVICE_KEY,
)


def mask(value: str, *, length_in_words: bool = False) -> str:
    """Keep the first two characters of a value longer than four, and its length: as stars
    (`s3******`), or said in words (`s3*** (8 chars)`) where a check's evidence quotes a leaked
    value and its reader should not count stars."""
    head = value[:2] if len(value) > 4 else ""
    if length_in_words:
        return f"{head}*** ({len(value)} chars)" if head else "***"
    return head + "*" * (len(value) - len(head))


def redact_text(text: str, shown: Callable[[str], bool] = lambda value: False) -> str:
    """Mask every secret the patterns find; `shown(value)` keeps a value that is no secret
    (a placeholder the report prints anyway)."""
    if not MAY_HOLD_SECRET.search(text):
        return text
    for pattern in PATTERNS:
        text = pattern.sub(lambda m: m.group("head") + _masked(m.group("password"), shown), text)
    return text


def redact_argv(words: list[str], shown: Callable[[str], bool] = lambda value: False) -> list[str]:
    """A command line as a list: the word after a secret flag (`--requirepass`, redis-cli's
    `-a`) is masked as well as what each word holds itself (`--requirepass=X`, `sh -c '...'`)."""
    return [
        _masked(word, shown)
        if i and _flag(words, i - 1) and re.fullmatch(VALUE, word)
        else redact_text(word, shown)
        for i, word in enumerate(words)
    ]


def _flag(words: list[str], i: int) -> bool:
    word = words[i]
    if word == "-a":
        return any(w.rsplit("/", 1)[-1] == "redis-cli" for w in words[:i])
    return bool(re.fullmatch(rf"--(?:[A-Za-z0-9]+[-_])*{SECRET_WORD}", word, re.I))


def _masked(value: str, shown: Callable[[str], bool]) -> str:
    return value if shown(value) else mask(value)


def shown(value: str) -> bool:
    """A value the report itself prints: a placeholder, a reference, a path, a flag word."""
    return judge(value, by_name=False) != "secret"


class KnownSecrets:
    """The values of a read's Secrets, masked wherever they are the whole text or, for a long
    one, part of it. It holds them in memory only, for as long as the read or the report needs
    them; its repr counts them and never shows one."""

    def __init__(self, values: Iterable[str] = ()):
        kept = {v for v in values if len(v) >= EQUAL_LENGTH and v != REDACTED}
        self._values = sorted(kept, key=len, reverse=True)

    def __repr__(self) -> str:
        return f"KnownSecrets({len(self._values)} values)"

    def mask_in(self, text: str) -> str:
        for secret in self._values:
            if text == secret or (len(secret) >= CONTAINED_LENGTH and secret in text):
                text = text.replace(secret, mask(secret))
        return text


def secret_values(secrets: Iterable[dict]) -> set[str]:
    """The values Secret objects hold: `data` decoded, and `stringData`."""
    values = set()
    for secret in secrets:
        for encoded in (secret.get("data") or {}).values():
            values.add(_decoded(str(encoded)))
        values.update(str(v) for v in (secret.get("stringData") or {}).values())
    return values


def _decoded(encoded: str) -> str:
    try:
        return base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return encoded


def redact_report_text(text: str, known: KnownSecrets) -> str:
    """What a finding may print: the patterns' secrets and the known values masked."""
    return known.mask_in(redact_text(text, shown))
