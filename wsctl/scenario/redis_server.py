"""A private ``redis-server`` for one run: Debian's binary on a free port of 127.0.0.1,
persistence off (``--save "" --appendonly no``), its working directory a scratch one.

``store: redis`` in a scenario starts one per run (``stage.py``) and stops it after;
tests start their own the same way (tests/redisproc.py). ``stop()`` SIGKILLs it (its data
is gone: persistence is off) and ``start()`` brings it back empty on the same port. The
process dies with the one that started it (``PR_SET_PDEATHSIG``), so a run that is itself
killed leaves no Redis behind. ``start()`` blocks (~20 ms); a run calls ``spawn()`` in
its loop's thread (the death signal follows the thread that forked) and waits for
``ready()`` in another.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from wsctl.errors import RunFailed
from wsctl.scenario.service import _die_with_parent, free_port

# Why a run (or a test) that needs a private Redis cannot have one.
MISSING = ("redis-server is not installed (Debian/Ubuntu package redis-server: "
           "apt-get install redis-server)")


def binary() -> str | None:
    """The ``redis-server`` on PATH (None: not installed)."""
    return shutil.which("redis-server")


def missing() -> str | None:
    """Why a run cannot have a Redis store of its own here (None: it can): no
    ``redis-server``, or no redis-py for the server to reach it with."""
    if binary() is None:
        return MISSING
    if importlib.util.find_spec("redis") is None:
        return "the redis package is not installed (pip install 'wsctl[redis]')"
    return None


class RedisServer:
    """``redis-server --port PORT --bind 127.0.0.1 --save "" --appendonly no --dir DIR``;
    ``RunFailed`` when the binary is absent or it will not answer PING."""

    def __init__(self, directory: Path | str) -> None:
        found = binary()
        if found is None:
            raise RunFailed(MISSING)
        self.binary = found
        self.dir = Path(directory)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.dir)]

    def start(self, timeout: float = 10.0) -> None:
        """Start it (empty) and wait until it answers PING."""
        self.spawn()
        self.ready(timeout)

    def spawn(self) -> None:
        """Start the process; ``ready()`` waits for it."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if os.uname().sysname == "Linux" else None)

    def ready(self, timeout: float = 10.0) -> None:
        """Wait until it answers PING; ``RunFailed`` (and stopped) if it exits or is
        silent for ``timeout`` s."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.ping():
                return
            time.sleep(0.02)
        code = self.proc.poll()
        self.stop()
        raise RunFailed(f"redis-server did not start on port {self.port}" +
                        (f" (exit {code})" if code is not None else f" within {timeout:g}s"))

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), 0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """SIGKILL it and reap it; its data is gone (persistence is off)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


__all__ = ["MISSING", "RedisServer", "binary", "missing"]
