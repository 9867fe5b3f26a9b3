"""Start and stop the server process a benchmark measures (shared by the scripts here)."""

from __future__ import annotations

import contextlib
import re
import subprocess

import psutil

URL = re.compile(r"ws://127\.0\.0\.1:\d+")


def start(command: list[str]) -> tuple[subprocess.Popen[str], str]:
    """Start ``command`` (a server that prints its ws:// URL first) and return it and the URL."""
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True)
    assert server.stdout is not None
    line = server.stdout.readline()
    match = URL.search(line)
    if not match:
        stop(server)
        raise SystemExit(f"server did not start ({' '.join(command)}): {line!r}")
    return server, match.group(0)


def stop(server: subprocess.Popen[str]) -> None:
    """SIGTERM (graceful), SIGKILL after 15 s, reap, close the pipe."""
    server.terminate()
    try:
        server.wait(15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    if server.stdout:
        server.stdout.close()


def tree_cpu(proc: psutil.Process | None) -> float:
    """CPU seconds (user + system) of ``proc`` and its live descendants, with what each has
    reaped of its own children (socat forks one per connection); 0 for None."""
    if proc is None:
        return 0.0
    total = 0.0
    with contextlib.suppress(psutil.Error):
        for p in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = p.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
    return total
