"""Fuzz tests: Hypothesis profiles, and one reference server per module in a child process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fuzz.support import load_profile
from tests.serverproc import ServerProcess

load_profile()


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """A reference server (a real process: its RSS and log are its own) shared by a module's
    examples, so that what one example leaves behind meets the next."""
    proc = ServerProcess("--log-level", "warning", "--close-timeout", "1s")
    yield proc
    proc.close()
