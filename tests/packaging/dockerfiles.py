"""How an image installs the project, read from its Dockerfile: the stages, what each COPYs and
the pip commands of its RUN lines, so the packaging tests follow the Dockerfiles as they change.

Only the instructions the images use are read (FROM ... AS, WORKDIR, COPY, RUN); the rest
(ENV, USER, CMD, ...) do not change what pip installs."""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SHELL_AND = re.compile(r"&&|;")
PIP = ("pip", "pip3")


@dataclass(frozen=True)
class Copy:
    sources: tuple[str, ...]  # in the build context, or in stage `from_stage`
    dest: str  # absolute, in the image
    from_stage: str | None

    @property
    def into_folder(self) -> bool:
        return self.dest.endswith("/") or len(self.sources) > 1


@dataclass
class Stage:
    name: str | None
    workdir: str = "/"
    copies: list[Copy] = field(default_factory=list)
    pip_commands: list[list[str]] = field(default_factory=list)  # pip's arguments


def instructions(text: str) -> Iterator[tuple[str, str]]:
    """(KEYWORD, arguments) of each instruction: continued lines joined, comments dropped."""
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        pending = ""
        yield keyword.upper(), arguments.strip()


def pip_commands(run: str) -> list[list[str]]:
    """The arguments of every `pip ...` in a RUN line (shell form, commands joined by && or ;)."""
    commands = []
    for part in SHELL_AND.split(run):
        words = shlex.split(part)
        while words and words[0].startswith("--"):  # RUN's own flags (--mount=...)
            words.pop(0)
        if words and words[0] in PIP:
            commands.append(words[1:])
    return commands


def _copy(arguments: str, workdir: str) -> Copy:
    words = shlex.split(arguments)
    flags = dict(word[2:].partition("=")[::2] for word in words if word.startswith("--"))
    paths = [word for word in words if not word.startswith("--")]
    dest = posixpath.join(workdir, paths[-1])
    if paths[-1].endswith(("/", "/.")) or paths[-1] == ".":
        dest = posixpath.normpath(dest) + "/"
    return Copy(tuple(paths[:-1]), dest, flags.get("from"))


def parse(path: Path) -> list[Stage]:
    stages: list[Stage] = []
    for keyword, arguments in instructions(path.read_text()):
        if keyword == "FROM":
            words = arguments.split()
            named = len(words) >= 3 and words[1].upper() == "AS"
            stages.append(Stage(words[2] if named else None))
        elif keyword == "WORKDIR":
            stages[-1].workdir = posixpath.join(stages[-1].workdir, arguments)
        elif keyword == "COPY":
            stages[-1].copies.append(_copy(arguments, stages[-1].workdir))
        elif keyword == "RUN":
            stages[-1].pip_commands.extend(pip_commands(arguments))
    return stages
