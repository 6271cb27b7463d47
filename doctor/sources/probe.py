"""Deadlines and probe outcomes (doctor.state.Probe) shared by every live source.

Every network call gets `deadline.timeout(limit)`: its own limit, never past the run's deadline.
A failure is named the way a person fixes it: dns, refused, timeout, tls, auth, http, error.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from doctor.state import Probe

PROBE_TIMEOUT = 5.0  # one probe's own limit; the run's --timeout caps it further
MIN_TIMEOUT = 0.05


class Deadline:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.ends = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.ends - time.monotonic())

    def timeout(self, limit: float = PROBE_TIMEOUT) -> float:
        return max(MIN_TIMEOUT, min(limit, self.remaining()))

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0


def failure_kind(error: BaseException) -> str:
    """dns | refused | timeout | tls | auth | error, from the exception and its causes."""
    seen: set[int] = set()
    current: BaseException | None = error
    texts = []
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            return "dns"
        if isinstance(current, ConnectionRefusedError):
            return "refused"
        if isinstance(current, ssl.SSLError):
            return "tls"
        if isinstance(current, TimeoutError | socket.timeout):
            return "timeout"
        texts.append(f"{type(current).__name__} {current}".lower())
        current = current.__cause__ or current.__context__
    text = " ".join(texts)
    for kind, needles in (
        (
            "dns",
            (
                "name or service not known",
                "nodename nor servname",
                "temporary failure in name",
                "no address associated",
                "getaddrinfo",
            ),
        ),
        ("refused", ("connection refused", "errno 111", "econnrefused")),
        ("tls", ("ssl", "certificate", "tls")),
        (
            "auth",
            (
                "noauth",
                "wrongpass",
                "authentication",
                "invalid password",
                "unauthorized",
                "forbidden",
            ),
        ),
        ("timeout", ("timed out", "timeout")),
    ):
        if any(needle in text for needle in needles):
            return kind
    return "error"


def describe(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text}"[:300]


def tcp_probe(component: str, host: str, port: int, deadline: Deadline, **extra) -> Probe:
    target = f"{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=deadline.timeout()):
            return Probe(component, target, True, **extra)
    except OSError as error:
        return Probe(component, target, False, failure_kind(error), describe(error), **extra)


def redact_url(url: str) -> str:
    """The URL without its password (user names stay: they help and are not secret)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:" if parts.username else ":"
    return urlunsplit(parts._replace(netloc=f"{user}<redacted>@{netloc}"))


def run_with_deadline(
    tasks: dict[str, Callable[[], object]], deadline: Deadline
) -> tuple[dict[str, object], dict[str, BaseException], list[str]]:
    """Run each task in a daemon thread; return (results, errors, names still running at the
    deadline). A task that never returns is abandoned, never joined: the run still ends."""
    results: dict[str, object] = {}
    errors: dict[str, BaseException] = {}
    done = threading.Condition()

    def runner(name: str, task: Callable[[], object]) -> None:
        try:
            value = task()
        except BaseException as error:  # noqa: BLE001 - every failure becomes a finding
            with done:
                errors[name] = error
                done.notify_all()
            return
        with done:
            results[name] = value
            done.notify_all()

    for name, task in tasks.items():
        threading.Thread(
            target=runner, args=(name, task), name=f"doctor-{name}", daemon=True
        ).start()
    with done:
        while len(results) + len(errors) < len(tasks) and not deadline.expired:
            done.wait(timeout=min(0.1, deadline.remaining()) or 0.01)
        pending = [n for n in tasks if n not in results and n not in errors]
        return dict(results), dict(errors), pending
