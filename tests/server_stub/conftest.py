"""Fixtures for the reference server: in-process on port 0, or a real subprocess."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from server_stub import ReferenceServer, ServerConfig


@pytest.fixture
async def make_server() -> AsyncIterator[Callable[..., object]]:
    """Start in-process servers on 127.0.0.1:0 with the given config; stopped after the test."""
    servers: list[ReferenceServer] = []

    async def start(**options: object) -> ReferenceServer:
        options.setdefault("port", 0)
        server = ReferenceServer(ServerConfig(**options))  # type: ignore[arg-type]
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


class ServerProcess:
    """``python -m server_stub`` in a subprocess, with the URL from its first stdout line."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server_stub", "--port", "0", "--log-level", "warning", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"(wss?://[^\s;)]+)", line)
        if not match:
            self.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.proc.stderr.read()!r}")
        self.url = match.group(1)
        self.http = self.url.replace("ws", "http", 1)

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


@pytest.fixture
def server_process() -> Iterator[Callable[..., ServerProcess]]:
    """Start reference servers as real subprocesses; killed after the test, whatever happens."""
    procs: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        proc = ServerProcess(*args)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
