"""What every fuzz module shares: the Hypothesis profiles, the example budget, and a
reference server in a child process that the examples hit and that must survive them.

Profiles (``HYPOTHESIS_PROFILE``): ``dev`` (the default: random, nothing stored), ``ci``
(the default when ``CI=true``: derandomized, so a CI failure reproduces) and ``long``
(20 times the examples, random: ``HYPOTHESIS_PROFILE=long pytest tests/fuzz``). No profile
writes a ``.hypothesis`` database into the repository.
"""

from __future__ import annotations

import os
import socket
import time

import psutil
from hypothesis import HealthCheck, settings

_COMMON = {"database": None, "deadline": None,
           "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
SCALE = {"dev": 1, "ci": 1, "long": 20}


def profile_name() -> str:
    """The profile this run uses: ``HYPOTHESIS_PROFILE``, else ``ci`` under CI, else ``dev``."""
    ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    return os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if ci else "dev")


def load_profile() -> None:
    """Register the three profiles and load the chosen one (called from conftest)."""
    settings.register_profile("dev", **_COMMON)
    settings.register_profile("ci", derandomize=True, print_blob=True, **_COMMON)
    settings.register_profile("long", **_COMMON)
    settings.load_profile(profile_name())


def budget(examples: int) -> settings:
    """Settings for a test worth ``examples`` examples in a normal run (more under ``long``)."""
    return settings(max_examples=examples * SCALE.get(profile_name(), 1), deadline=None)


def rss_kib(pid: int) -> int:
    """Resident memory of process ``pid`` in KiB."""
    return int(psutil.Process(pid).memory_info().rss // 1024)


def read_until_closed(sock: socket.socket, limit: int = 1 << 20, timeout: float = 5.0) -> bytes:
    """Everything ``sock`` receives until the peer closes (or ``limit`` bytes); raises
    TimeoutError if the peer neither answers nor closes within ``timeout``: silence."""
    data = bytearray()
    deadline = time.monotonic() + timeout
    while len(data) < limit:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        except TimeoutError:
            raise TimeoutError(f"no close within {timeout}s; got {bytes(data[:200])!r}") from None
        if not chunk:
            break
        data += chunk
    return bytes(data)
