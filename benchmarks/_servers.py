"""Start and stop the server process a benchmark measures (shared by the scripts here)."""

from __future__ import annotations

import re
import subprocess

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
