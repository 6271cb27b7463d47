"""Where an input file is, named the same from any working directory: relative to its
repository's root (the git top-level that holds it, else the current directory), normalised,
with forward slashes. Reports and fingerprints use these names, never the path as typed."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path, PurePosixPath


def repository_root(folder: Path) -> Path:
    """The nearest folder at or above `folder` holding `.git` (a folder, or a file in a
    worktree or submodule), else the current directory."""
    return _git_top_level(folder) or Path.cwd().resolve()


@lru_cache(maxsize=256)
def _git_top_level(folder: Path) -> Path | None:
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def resolved(path: str) -> Path:
    """Absolute, `..` removed and symlinks resolved: GitHub cannot show a result reported
    through a symlink."""
    return Path(os.path.abspath(path)).resolve()


def repository_path(path: str) -> str | None:
    """The file's path from its repository root (`deploy/api.yaml`), or None when the file
    lies outside that root."""
    absolute = resolved(path)
    try:
        return absolute.relative_to(repository_root(absolute.parent)).as_posix()
    except ValueError:
        return None


def artifact_uri(path: str) -> str:
    """A relative URI for a report: the repository path, or for a file outside the root its
    absolute path without the leading `/` (a report never holds an absolute path)."""
    named = repository_path(path)
    if named is not None:
        return named
    return PurePosixPath(*resolved(path).parts[1:]).as_posix()


def build_file_name(path: str) -> str:
    """How a Dockerfile or requirements file is named in findings (and so in fingerprints):
    its repository path, or the path as given when it lies outside the repository."""
    return repository_path(path) or path
