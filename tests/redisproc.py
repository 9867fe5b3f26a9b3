"""A throwaway ``redis-server`` for tests: Debian's binary on a free port, persistence off,
in a temporary directory; ``stop()`` ends it (and ``start()`` brings it back empty on the
same port, for tests of a Redis that goes away). Tests skip when the binary is absent."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisProcess:
    """``redis-server --port PORT --save "" --appendonly no`` in a temporary directory."""

    def __init__(self) -> None:
        if REDIS_SERVER is None:
            pytest.skip("redis-server is not installed (Debian package redis-server)")
        self.dir = tempfile.TemporaryDirectory(prefix="wsctl-redis-")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self, timeout: float = 10.0) -> None:
        """Start it (empty) and wait until it accepts connections."""
        assert REDIS_SERVER is not None
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir.name],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        """SIGKILL it and reap it; its data is gone (persistence is off)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        self.dir.cleanup()


@pytest.fixture
def redis_server() -> Iterator[RedisProcess]:
    """A private redis-server for one test, stopped after it."""
    server = RedisProcess()
    try:
        yield server
    finally:
        server.close()


_shared: RedisProcess | None = None


def shared_redis() -> RedisProcess:
    """One redis-server for the whole test session (started on first use, stopped at
    exit); tests keep apart by key prefix."""
    global _shared
    if _shared is None:
        import atexit

        _shared = RedisProcess()
        atexit.register(_shared.close)
    return _shared
