"""Browser tests: Debian's Chromium driven by Playwright for Python, against the reference
server running as a real subprocess (so it can be SIGKILLed, paused and restarted).

Without /usr/bin/chromium (or $WSCTL_CHROMIUM) every test here is skipped with a reason
shown in pytest's summary; CI installs the chromium package so they run there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serverproc import ServerProcess

CHROMIUM = os.environ.get("WSCTL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

# One time unit for every real-time test here: the server pings every second and gives a
# peer one more second, and the dashboard uses the same heartbeat (from the welcome).
HEARTBEAT_S = 1.0
SERVER_ARGS = ("--job-rate", "5", "--ping-interval", "1s", "--ping-timeout", "1s",
               "--log-level", "warning")


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start reference servers (``port=`` to reuse one); all killed after the test."""
    procs: list[ServerProcess] = []

    def start(*args: str, port: int = 0) -> ServerProcess:
        proc = ServerProcess(*SERVER_ARGS, *args, port=port, log_path=tmp_path / "server.log")
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.close()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """Chromium through Playwright, shared by the browser tests; skipped visibly when absent.

    Package scope: Playwright's sync API runs its own event loop, which is stopped before
    any pytest-asyncio test outside tests/e2e starts its own.
    """
    if not Path(CHROMIUM).exists():
        pytest.skip(f"browser tests need Chromium at {CHROMIUM}: apt-get install chromium "
                    "(or set WSCTL_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests need Playwright for Python: pip install -e '.[test]'")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context and page; uncaught page errors fail the test."""
    context = browser.new_context(viewport={"width": 1100, "height": 820})
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as test-artifacts/<name>.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
