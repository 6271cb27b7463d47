"""Severity words of the text report in colour, on a terminal only: never when NO_COLOR is set
(https://no-color.org), with --no-color, for TERM=dumb, or when the report goes to a file or a
pipe. It wraps the finished text, so the report's layout stays the renderer's alone."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TextIO

SGR = {"ERROR": "1;31", "WARNING": "33", "INFO": "36"}  # bold red, yellow, cyan
RESET = "\x1b[0m"
# A finding's first line: indent, the severity in capitals, then the code.
SEVERITY_WORD = re.compile(r"^(\s+)(ERROR|WARNING|INFO)(?= )", re.MULTILINE)


def wanted(stream: TextIO, disabled: bool = False, environ: Mapping[str, str] = os.environ) -> bool:
    if disabled or environ.get("NO_COLOR") or environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def paint(text: str) -> str:
    return SEVERITY_WORD.sub(lambda m: f"{m[1]}\x1b[{SGR[m[2]]}m{m[2]}{RESET}", text)
