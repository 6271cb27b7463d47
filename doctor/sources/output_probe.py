"""A write probe in the output directory, as the user the doctor runs as: create a file, write,
fsync, remove. The same script runs inside pods for --probe-from-pod."""

from __future__ import annotations

import os
import tempfile

from doctor.sources.probe import Probe, describe

# Runs with `python3 -c` in a container: prints one line, ok or the error.
POD_SCRIPT = """
import os, sys, tempfile
path = sys.argv[1]
try:
    fd, name = tempfile.mkstemp(prefix='.doctor-probe-', dir=path)
    os.write(fd, b'ok'); os.fsync(fd); os.close(fd); os.unlink(name)
    print('ok uid=%d' % os.getuid())
except OSError as error:
    print('failed uid=%d %s: %s' % (os.getuid(), type(error).__name__, error))
"""


def write_probe(path: str, where: str = "doctor", resource: str = "") -> Probe:
    try:
        fd, name = tempfile.mkstemp(prefix=".doctor-probe-", dir=path)
        try:
            os.write(fd, b"ok")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(name)
    except OSError as error:
        detail = f"uid {os.getuid()}: {describe(error)}"
        return Probe("output", path, False, "error", detail, where, resource)
    return Probe("output", path, True, None, f"uid {os.getuid()}", where, resource)


def parse_pod_answer(path: str, answer: str, where: str, resource: str) -> Probe:
    line = answer.strip().splitlines()[-1] if answer.strip() else "no answer"
    ok = line.startswith("ok")
    return Probe("output", path, ok, None if ok else "error", line[:300], where, resource)
