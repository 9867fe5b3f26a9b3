"""The conformance suite every fault, and the bare proxy, must pass."""

from __future__ import annotations

import asyncio
import os
import random

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import Server

from tests.wsctl.chaos.conftest import TcpEcho, make_proxy, port_of, settle
from wsctl.chaos.faults import FAULTS
from wsctl.chaos.proxy import Chaos, Proxy, Toxic

# Faults that only delay or reshape data: bytes must arrive complete and in order.
DELAYING = {
    "none": None,
    "latency": {"latency": 5, "jitter": 2},
    "bandwidth": {"rate": 20_000},
    "slow_close": {"delay": 20},
    "slicer": {"average_size": 700, "size_variation": 300, "delay": 10},
    "frame_delay": {"delay": 5},
    "drop_pongs": {},
}
# Every fault, with attributes that let a short connection finish.
ALL = {
    **DELAYING,
    "timeout": {"timeout": 20},
    "reset_peer": {"timeout": 5},
    "limit_data": {"bytes": 10},
    "drop_frames": {},
    "close": {"code": 1013},
    "cut": {},
}


def add_both_ways(proxy: Proxy, kind: str, attributes: dict[str, int] | None) -> None:
    if attributes is None:
        return
    for stream in ("upstream", "downstream"):
        proxy.add_toxic(Toxic(kind, FAULTS[kind].config(**attributes), stream=stream))


@pytest.mark.parametrize("kind", list(DELAYING))
async def test_bytes_complete_and_in_order(kind: str, chaos: Chaos, tcp_echo: TcpEcho) -> None:
    """1 MiB through the proxy and back arrives complete and in order, both ways."""
    proxy = await make_proxy(chaos, tcp_echo.port)
    add_both_ways(proxy, kind, DELAYING[kind])
    payload = random.Random(7).randbytes(1 << 20)
    host, port = proxy.listen.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))

    async def send() -> None:
        for i in range(0, len(payload), 50_000):
            writer.write(payload[i : i + 50_000])
            await writer.drain()
        writer.write_eof()

    sender = asyncio.create_task(send())
    echoed = await asyncio.wait_for(reader.read(-1), 20)  # until the proxy passes EOF back
    await sender
    writer.close()
    await writer.wait_closed()
    await asyncio.wait_for(tcp_echo.ended.wait(), 5)
    assert tcp_echo.received == [payload]
    assert echoed == payload


@pytest.mark.parametrize("kind", list(DELAYING))
async def test_server_close_propagates(kind: str, chaos: Chaos, tcp_echo: TcpEcho) -> None:
    """A FIN from the client reaches the server, and the server's FIN reaches the client."""
    proxy = await make_proxy(chaos, tcp_echo.port)
    add_both_ways(proxy, kind, DELAYING[kind])
    host, port = proxy.listen.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"last words")
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(-1), 5) == b"last words"
    await asyncio.wait_for(tcp_echo.ended.wait(), 5)
    assert tcp_echo.endings == ["eof"]
    writer.close()
    await writer.wait_closed()
    assert await settle(lambda: not proxy.connections)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("kind", list(ALL))
async def test_no_leak_after_500_connections(kind: str, chaos: Chaos, tcp_echo: TcpEcho) -> None:
    """After 500 connections come and go, no task, connection or descriptor is left over."""
    proxy = await make_proxy(chaos, tcp_echo.port)
    add_both_ways(proxy, kind, ALL[kind])
    host, port = proxy.listen.split(":")
    await asyncio.sleep(0)
    tasks_before, fds_before = len(asyncio.all_tasks()), open_fds()

    async def one() -> None:
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
        except OSError:
            return
        try:
            writer.write(b"ping" * 8)
            writer.write_eof()
            await asyncio.wait_for(reader.read(-1), 5)
        except (OSError, TimeoutError):
            pass
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass

    for _ in range(5):
        await asyncio.gather(*(one() for _ in range(100)))
    assert proxy.stats.connections_total == 500
    assert await settle(lambda: not proxy.connections and not proxy._tasks, 5)
    assert await settle(lambda: len(asyncio.all_tasks()) <= tasks_before, 5)
    assert await settle(lambda: open_fds() <= fds_before, 5)


@pytest.mark.parametrize("kind", list(ALL))
async def test_close_propagates_with_every_fault(
    kind: str, chaos: Chaos, tcp_echo: TcpEcho
) -> None:
    """Whatever the fault, a client's close reaches the server and the server's the client."""
    proxy = await make_proxy(chaos, tcp_echo.port)
    add_both_ways(proxy, kind, ALL[kind])
    host, port = proxy.listen.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write_eof()
    try:
        await asyncio.wait_for(reader.read(-1), 3)  # b"" (FIN) ...
    except ConnectionResetError:  # ... or RST, for the faults whose job is to reset
        pass
    await asyncio.wait_for(tcp_echo.ended.wait(), 3)
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    assert await settle(lambda: not proxy.connections)


async def test_no_leak_with_websocket_clients_through_frame_faults(
    chaos: Chaos, ws_echo: Server
) -> None:
    """300 WebSocket sessions through frame-parsing faults leave no task or descriptor."""
    proxy = await make_proxy(chaos, port_of(ws_echo))
    for kind, attributes in (("drop_pongs", {}), ("frame_delay", {"delay": 1})):
        add_both_ways(proxy, kind, attributes)
    await asyncio.sleep(0)
    tasks_before, fds_before = len(asyncio.all_tasks()), open_fds()

    async def session(i: int) -> bool:
        async with connect(f"ws://{proxy.listen}/", ping_interval=None) as ws:
            await ws.send(f"m{i}")
            return await ws.recv() == f"m{i}"

    for start in range(0, 300, 100):
        assert all(await asyncio.gather(*(session(i) for i in range(start, start + 100))))
    assert proxy.stats.connections_total == 300
    assert await settle(lambda: not proxy.connections and not proxy._tasks, 5)
    assert await settle(lambda: len(asyncio.all_tasks()) <= tasks_before, 5)
    assert await settle(lambda: open_fds() <= fds_before, 5)
