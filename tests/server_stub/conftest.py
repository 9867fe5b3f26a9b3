"""Fixtures for the reference server: in-process on port 0, or a real subprocess."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from server_stub import ReferenceServer, ServerConfig
from tests.serverproc import ServerProcess


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


@pytest.fixture
def server_process() -> Iterator[Callable[..., ServerProcess]]:
    """Start reference servers as real subprocesses; killed after the test, whatever happens."""
    procs: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        proc = ServerProcess("--log-level", "warning", *args)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.close()
