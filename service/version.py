"""The installed package's version, for both CLIs' `--version` and the doctor's reports."""

from __future__ import annotations

from importlib import metadata

import service

DISTRIBUTION = "mochi-k8s"


def package_version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return service.__version__
