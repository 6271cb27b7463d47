"""Browser fixtures: the real embedded stack (Redis, Ray, one tiny-model actor, the API) and
a real headless Debian Chromium driven by Playwright, with a fresh profile."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from service.config import Settings
from service.local_stack import LocalStack
from service.processes import free_port

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Chromium logs every refused request to the console; the tests that provoke one expect it.
REFUSED_REQUEST = re.compile(r"Failed to load resource: the server responded with a status of 4")


def pytest_terminal_summary(terminalreporter):
    if ARTIFACTS.is_dir() and any(ARTIFACTS.glob("*.png")):
        terminalreporter.write_line(f"web page screenshots: {ARTIFACTS}")


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """The real embedded stack, as `mochi local` runs it, with one tiny-model actor."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")
    # Short: Ray's socket paths under it must stay within AF_UNIX's 107 bytes.
    base = tmp_path_factory.mktemp("w")
    settings = replace(Settings(), workers=1, lease_seconds=3.0, reaper_interval_seconds=0.5)
    local = LocalStack(base_dir=base, api_port=free_port(), settings=settings)
    with pytest.MonkeyPatch.context() as patch:
        # Nothing to drain in a throwaway cluster: stop in seconds, not Ray's 30 s default.
        patch.setenv("RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S", "0")
        local.start(progress=lambda line: None)
        yield local
        local.stop()


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1100, "height": 1000},
        )
        yield context
        context.close()


class Tab:
    """One browser tab (its own sessionStorage) that records console errors."""

    def __init__(self, page, stack, name: str):
        self.page, self.stack, self.name = page, stack, name
        self.console_errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.console_errors.append(f"page error: {error}"))

    def _console(self, message) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def open(self) -> None:
        self.page.goto(self.stack.api_url + "/")

    def sign_in(self, key: str | None = None) -> None:
        self.page.get_by_label("API key", exact=True).fill(key or self.stack.api_key)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.locator("#workspace").wait_for(state="visible")

    def screenshot(self, label: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{self.name}-{label}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def unexpected_console_errors(self, refused_requests: bool = False) -> list[str]:
        return [
            text
            for text in self.console_errors
            if not (refused_requests and REFUSED_REQUEST.search(text))
        ]


@pytest.fixture
def tab(request, browser_context, stack):  # the browser first: it may skip
    page = browser_context.new_page()
    name = request.node.name.removeprefix("test_")
    tab = Tab(page, stack, name)
    yield tab
    tab.screenshot("final")
    page.close()


@pytest.fixture(scope="session", autouse=True)
def fresh_artifacts():
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    yield
