"""Peers for chaos tests: real sockets on 127.0.0.1, port 0, plain ``websockets`` servers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from websockets.asyncio.server import Server, ServerConnection, serve

from wsctl.chaos.proxy import Chaos, Proxy
from wsctl.chaos.server import ChaosServer


async def echo(ws: ServerConnection) -> None:
    with contextlib.suppress(Exception):
        async for message in ws:
            await ws.send(message)


class TcpEcho:
    """A raw TCP echo server that also records what it received and how each peer ended."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.received: list[bytes] = []
        self.endings: list[str] = []
        self.ended = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = bytearray()
        try:
            while data := await reader.read(65536):
                buf += data
                writer.write(data)
                await writer.drain()
            self.endings.append("eof")
            writer.write_eof()
        except ConnectionResetError:
            self.endings.append("reset")
        except OSError:
            self.endings.append("error")
        finally:
            self.received.append(bytes(buf))
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self.ended.set()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])


@pytest.fixture
async def ws_echo() -> AsyncIterator[Server]:
    async with serve(echo, "127.0.0.1", 0) as server:
        yield server


@pytest.fixture
async def tcp_echo() -> AsyncIterator[TcpEcho]:
    peer = TcpEcho()
    peer.server = await asyncio.start_server(peer.handle, "127.0.0.1", 0)
    yield peer
    peer.server.close()
    await peer.server.wait_closed()


@pytest.fixture
async def api_client() -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of a chaos API served on port 0 in the test's loop."""
    async with ChaosServer(api="127.0.0.1:0") as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            yield client


@pytest.fixture
async def chaos() -> AsyncIterator[Chaos]:
    instance = Chaos()
    yield instance
    await instance.close()


def port_of(server: Server) -> int:
    return int(server.sockets[0].getsockname()[1])


async def make_proxy(chaos: Chaos, upstream_port: int, name: str = "p") -> Proxy:
    return await chaos.create(name=name, upstream=f"127.0.0.1:{upstream_port}")


async def settle(predicate: object, timeout: float = 3.0) -> bool:
    """Poll ``predicate()`` until true or ``timeout``; returns its last value."""
    assert callable(predicate)
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True
