"""Bench connect failures through both transports and the engine, on real local sockets:
the same kinds (wsctl.errors) the probes use, counted as errors.<kind>."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from wsctl.bench.engine import Engine, to_metrics
from wsctl.bench.plan import BenchPlan
from wsctl.bench.transport import get_transport
from wsctl.errors import CONNECT_KINDS, ConnectError

pytestmark = pytest.mark.timeout(30)

TRANSPORTS = ["websockets"] + (["picows"] if importlib.util.find_spec("picows") else [])
WAIT = 5.0  # generous bound for one event on a loaded machine; never a figure

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Ignore:
    """A receiver for connects that are expected to fail."""

    def on_message(self, data: str | bytes, at: float) -> None:
        raise AssertionError("no message expected")

    def on_close(self, code: int | None, reason: str) -> None:
        pass


def closed_port() -> int:
    """A 127.0.0.1 port with nothing listening on it (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def answer_503(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\n"
                 b"Content-Length: 0\r\n\r\n")
    await writer.drain()
    writer.close()


async def accept_then_drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.close()


async def answer_garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def listening(handler: Handler) -> AsyncIterator[str]:
    """A raw TCP server on 127.0.0.1 running ``handler``; yields its ws:// URL."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    finally:
        server.close()
        await server.wait_closed()


async def fail(transport: str, url: str) -> ConnectError:
    with pytest.raises(ConnectError) as caught:
        await get_transport(transport).connect(url, Ignore(), timeout=WAIT)
    return caught.value


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_closed_port_is_refused_and_free(transport: str) -> None:
    """Nothing listening on 127.0.0.1 -> kind refused, which cost the server nothing."""
    error = await fail(transport, f"ws://127.0.0.1:{closed_port()}/")
    assert error.kind == "refused" and not error.costs_server


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_http_503_is_a_status_with_its_retry_after(transport: str) -> None:
    """An upgrade answered HTTP 503 + Retry-After: 7 -> status_503 with a 7 s hint."""
    async with listening(answer_503) as url:
        error = await fail(transport, url)
    assert (error.kind, error.retry_after) == ("status_503", 7.0)
    assert error.costs_server


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_accept_then_drop_is_dropped(transport: str) -> None:
    """A server that accepts, reads the request and hangs up -> dropped (it cost work)."""
    async with listening(accept_then_drop) as url:
        error = await fail(transport, url)
    assert error.kind == "dropped" and error.costs_server


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_non_http_answer_is_protocol(transport: str) -> None:
    """Something other than HTTP answering the upgrade -> protocol."""
    async with listening(answer_garbage) as url:
        error = await fail(transport, url)
    assert error.kind == "protocol"


async def test_engine_counts_real_refused_connects_by_kind() -> None:
    """The engine against a closed port: errors.refused counts every attempt, and every
    other fixed kind is in the metrics at zero (measured, not missing)."""
    plan = BenchPlan(url=f"ws://127.0.0.1:{closed_port()}/", connections=3,
                     connect_rate=100.0, message_rate=0.0, duration=0.5, drain=0.0,
                     transport="websockets")
    rec = await asyncio.wait_for(Engine(plan).run(), WAIT)
    metrics = to_metrics(rec, mode="echo", measured=plan.duration)
    assert metrics.counters["errors.refused"] == 3 == metrics.counters["connections.failed"]
    assert {f"errors.{k}" for k in CONNECT_KINDS} <= set(metrics.counters)
    assert sum(v for k, v in metrics.counters.items() if k.startswith("errors.")) == 3
