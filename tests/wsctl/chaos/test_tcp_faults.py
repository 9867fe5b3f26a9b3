"""TCP faults with Toxiproxy's semantics, timed with Toxiproxy-style tolerances."""

from __future__ import annotations

import asyncio
import random
import statistics
import time

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import Server

from tests.wsctl.chaos.conftest import TcpEcho, make_proxy, port_of, settle
from wsctl.chaos.faults import FAULTS
from wsctl.chaos.faults.latency import Latency
from wsctl.chaos.faults.slicer import Slicer, cut_points
from wsctl.chaos.proxy import Chaos, Toxic

TOLERANCE = 0.010  # Toxiproxy's latency tests allow jitter + 10 ms


def toxic(
    kind: str, stream: str = "downstream", name: str | None = None, **attributes: object
) -> Toxic:
    return Toxic(kind, FAULTS[kind].config(**attributes), name=name or "", stream=stream)


async def open_tcp(listen: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = listen.split(":")
    return await asyncio.open_connection(host, int(port))


async def close_tcp(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass


async def rtts(listen: str, count: int) -> list[float]:
    samples = []
    async with connect(f"ws://{listen}/", ping_interval=None) as ws:
        for _ in range(count):
            start = time.perf_counter()
            await ws.send("x")
            await ws.recv()
            samples.append(time.perf_counter() - start)
    return samples


async def test_latency_within_jitter_plus_10ms(chaos: Chaos, ws_echo: Server) -> None:
    """Round trips with latency 50±10 ms downstream stay within [40 ms, 60 ms + 10 ms]."""
    proxy = await make_proxy(chaos, port_of(ws_echo))
    proxy.add_toxic(toxic("latency", latency=50, jitter=10))
    samples = await rtts(proxy.listen, 8)
    assert min(samples) >= 0.040
    assert statistics.median(samples) <= 0.060 + TOLERANCE


async def test_latency_counts_time_already_spent(chaos: Chaos, ws_echo: Server) -> None:
    """Two stacked 60 ms latencies delay a chunk ~60 ms, not 120: arrival time is carried."""
    proxy = await make_proxy(chaos, port_of(ws_echo))
    proxy.add_toxic(toxic("latency", name="first", latency=60))
    proxy.add_toxic(toxic("latency", name="second", latency=60))
    samples = await rtts(proxy.listen, 5)
    assert min(samples) >= 0.060
    assert statistics.median(samples) <= 0.060 + TOLERANCE + 0.010


async def test_removed_latency_forwards_what_it_holds(chaos: Chaos, tcp_echo: TcpEcho) -> None:
    """Removing a 10 s latency releases the held bytes at once, complete and in order."""
    proxy = await make_proxy(chaos, tcp_echo.port)
    proxy.add_toxic(toxic("latency", stream="upstream", latency=10_000))
    reader, writer = await open_tcp(proxy.listen)
    for i in range(20):
        writer.write(b"%03d," % i)
        await asyncio.sleep(0.002)
    await asyncio.sleep(0.05)
    assert tcp_echo.received == [] and not any(tcp_echo.endings)
    start = time.monotonic()
    await proxy.remove_toxic("latency_upstream")
    expected = b"".join(b"%03d," % i for i in range(20))
    assert await asyncio.wait_for(reader.readexactly(len(expected)), 2) == expected
    assert time.monotonic() - start < 0.5
    await close_tcp(writer)


async def test_toxic_added_to_live_connection(chaos: Chaos, ws_echo: Server) -> None:
    """A toxic added while a connection is open applies to it, and its removal lifts it."""
    proxy = await make_proxy(chaos, port_of(ws_echo))
    async with connect(f"ws://{proxy.listen}/", ping_interval=None) as ws:

        async def rtt() -> float:
            start = time.perf_counter()
            await ws.send("x")
            await ws.recv()
            return time.perf_counter() - start

        assert await rtt() < 0.1
        proxy.add_toxic(toxic("latency", latency=200))
        # uvloop's timers run on libuv's millisecond clock, cached per loop iteration: a
        # 200 ms delay can end up to 1 ms early by perf_counter (seen: 0.19994 s in CI)
        assert await rtt() >= 0.2 - 0.001
        await proxy.remove_toxic("latency_downstream")
        assert await rtt() < 0.1


async def test_bandwidth_limits_rate(chaos: Chaos, tcp_echo: TcpEcho) -> None:
    """100 KB through ``rate`` 500 KB/s upstream takes about 0.2 s (never less)."""
    proxy = await make_proxy(chaos, tcp_echo.port)
    proxy.add_toxic(toxic("bandwidth", stream="upstream", rate=500))
    reader, writer = await open_tcp(proxy.listen)
    start = time.monotonic()
    writer.write(b"b" * 100_000)
    await asyncio.wait_for(reader.readexactly(100_000), 5)
    elapsed = time.monotonic() - start
    assert 0.19 <= elapsed <= 0.45
    await close_tcp(writer)


async def test_slow_close_delays_fin(chaos: Chaos, tcp_echo: TcpEcho) -> None:
    """With ``slow_close`` 150 ms downstream the client sees the server's FIN >= 150 ms later."""
    proxy = await make_proxy(chaos, tcp_echo.port)
    proxy.add_toxic(toxic("slow_close", delay=150))
    reader, writer = await open_tcp(proxy.listen)
    writer.write(b"bye")
    writer.write_eof()
    await asyncio.wait_for(tcp_echo.ended.wait(), 2)
    start = time.monotonic()
    assert await asyncio.wait_for(reader.read(-1), 2) == b"bye"
    assert time.monotonic() - start >= 0.14
    await close_tcp(writer)


async def test_timeout_drops_data_then_closes(chaos: Chaos, tcp_echo: TcpEcho) -> None:
    """``timeout`` 100 ms upstream: nothing reaches the server, and the client is closed."""
    proxy = await make_proxy(chaos, tcp_echo.port)
    proxy.add_toxic(toxic("timeout", stream="upstream", timeout=100))
    reader, writer = await open_tcp(proxy.listen)
    start = time.monotonic()
    writer.write(b"into the void")
    assert await asyncio.wait_for(reader.read(-1), 2) == b""
    assert 0.09 <= time.monotonic() - start <= 0.5
    await asyncio.wait_for(tcp_echo.ended.wait(), 2)
    assert tcp_echo.received == [b""]
    await close_tcp(writer)


async def test_timeout_zero_is_a_black_hole_until_removed(chaos: Chaos, tcp_echo: TcpEcho) -> None:
    """``timeout`` 0 keeps the connection open and silent; removing it closes it."""
    proxy = await make_proxy(chaos, tcp_echo.port)
    proxy.add_toxic(toxic("timeout", stream="upstream", timeout=0))
    reader, writer = await open_tcp(proxy.listen)
    writer.write(b"anyone?")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.3)
    await proxy.remove_toxic("timeout_upstream")
    assert await asyncio.wait_for(reader.read(-1), 2) == b""
    await close_tcp(writer)


async def test_reset_peer_resets_after_timeout(chaos: Chaos, tcp_echo: TcpEcho) -> None:
    """``reset_peer`` 100 ms: after data arrives, the client gets a connection reset."""
    proxy = await make_proxy(chaos, tcp_echo.port)
    proxy.add_toxic(toxic("reset_peer", stream="upstream", timeout=100))
    reader, writer = await open_tcp(proxy.listen)
    start = time.monotonic()
    writer.write(b"hello")
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(-1), 2)
    assert time.monotonic() - start >= 0.09
    await close_tcp(writer)


async def test_limit_data_closes_after_n_bytes(chaos: Chaos, tcp_echo: TcpEcho) -> None:
    """``limit_data`` 100 upstream: the server gets exactly 100 bytes, then the connection ends."""
    proxy = await make_proxy(chaos, tcp_echo.port)
    proxy.add_toxic(toxic("limit_data", stream="upstream", bytes=100))
    reader, writer = await open_tcp(proxy.listen)
    writer.write(bytes(range(60)))
    await asyncio.sleep(0.02)
    writer.write(bytes(range(60)))
    echoed = await asyncio.wait_for(reader.read(-1), 2)  # ends: the proxy closed it
    await asyncio.wait_for(tcp_echo.ended.wait(), 2)
    assert tcp_echo.received == [bytes(range(60)) + bytes(range(40))]
    assert tcp_echo.received[0].startswith(echoed)
    await close_tcp(writer)


def test_slicer_cut_points_cover_data_within_size_bounds() -> None:
    """Slices cover every byte once, each average_size ± size_variation (the last may be less)."""
    config = Slicer(average_size=100, size_variation=30)
    points = cut_points(10_000, config, random.Random(1))
    sizes = [b - a for a, b in zip(points, points[1:], strict=False)]
    assert points[0] == 0 and points[-1] == 10_000 and sum(sizes) == 10_000
    assert all(0 < s <= 130 for s in sizes)
    assert statistics.mean(sizes) == pytest.approx(100, rel=0.35)


async def test_slicer_delivers_in_pieces(chaos: Chaos, tcp_echo: TcpEcho) -> None:
    """``slicer`` makes the server read many small pieces, which add up to the original."""
    proxy = await make_proxy(chaos, tcp_echo.port)
    proxy.add_toxic(
        toxic("slicer", stream="upstream", average_size=10, size_variation=5, delay=2000)
    )
    reader, writer = await open_tcp(proxy.listen)
    start = time.monotonic()
    writer.write(b"s" * 200)
    assert await asyncio.wait_for(reader.readexactly(200), 3) == b"s" * 200
    assert time.monotonic() - start >= 20 * 0.002 * 0.9  # ~20 slices, 2 ms apart
    await close_tcp(writer)


async def test_toxicity_zero_never_applies(chaos: Chaos, tcp_echo: TcpEcho) -> None:
    """A toxic with toxicity 0 is listed but never reaches a connection."""
    proxy = await make_proxy(chaos, tcp_echo.port)
    proxy.add_toxic(Toxic("timeout", toxicity=0.0))
    reader, writer = await open_tcp(proxy.listen)
    writer.write(b"fine")
    assert await asyncio.wait_for(reader.readexactly(4), 2) == b"fine"
    assert "timeout" not in proxy.stats.applied
    await close_tcp(writer)


async def test_toxicity_is_drawn_once_per_connection(chaos: Chaos, tcp_echo: TcpEcho) -> None:
    """With toxicity 0.5 each connection is either always or never delayed, and both occur."""
    proxy = await make_proxy(chaos, tcp_echo.port)
    proxy.add_toxic(Toxic("latency", Latency(latency=60), toxicity=0.5))
    outcomes = []
    for _ in range(12):
        reader, writer = await open_tcp(proxy.listen)
        delayed = []
        for _ in range(3):
            start = time.monotonic()
            writer.write(b"?")
            await reader.readexactly(1)
            delayed.append(time.monotonic() - start >= 0.05)
        assert len(set(delayed)) == 1
        outcomes.append(delayed[0])
        await close_tcp(writer)
    assert 0 < sum(outcomes) < 12
    assert proxy.stats.applied["latency"] == sum(outcomes)


async def test_server_reset_propagates_to_client(chaos: Chaos) -> None:
    """An upstream RST reaches the client as a reset, not as a clean close."""

    async def rude(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        sock = writer.get_extra_info("socket")
        import socket
        import struct

        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    server = await asyncio.start_server(rude, "127.0.0.1", 0)
    try:
        proxy = await make_proxy(chaos, server.sockets[0].getsockname()[1])
        reader, writer = await open_tcp(proxy.listen)
        writer.write(b"!")
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(-1), 2)
        await close_tcp(writer)
    finally:
        server.close()
        await server.wait_closed()


async def test_disabled_proxy_closes_connections_and_stops_listening(
    chaos: Chaos, tcp_echo: TcpEcho
) -> None:
    """Disabling a proxy closes its connections and refuses new ones; enabling restores it."""
    proxy = await make_proxy(chaos, tcp_echo.port)
    listen = proxy.listen
    reader, writer = await open_tcp(listen)
    writer.write(b"1")
    await reader.readexactly(1)
    await chaos.update("p", enabled=False)
    assert await asyncio.wait_for(reader.read(-1), 2) == b""
    await close_tcp(writer)
    with pytest.raises(OSError):
        await open_tcp(listen)
    await chaos.update("p", enabled=True)
    assert proxy.listen == listen
    reader, writer = await open_tcp(listen)
    writer.write(b"2")
    assert await reader.readexactly(1) == b"2"
    await close_tcp(writer)
    assert await settle(lambda: proxy.stats.connections_total == 2)


async def test_unreachable_upstream_closes_client(chaos: Chaos) -> None:
    """If the upstream refuses, the client's connection is closed (as Toxiproxy does)."""
    import socket

    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        dead_port = placeholder.getsockname()[1]
    proxy = await make_proxy(chaos, dead_port)
    reader, writer = await open_tcp(proxy.listen)
    assert await asyncio.wait_for(reader.read(-1), 2) == b""
    await close_tcp(writer)
    assert await settle(lambda: not proxy.connections)


async def test_updated_toxic_applies_to_live_connection(chaos: Chaos, ws_echo: Server) -> None:
    """Updating a toxic's attributes (PATCH) changes it on open connections at once."""
    proxy = await make_proxy(chaos, port_of(ws_echo))
    proxy.add_toxic(toxic("latency", latency=200))
    async with connect(f"ws://{proxy.listen}/", ping_interval=None) as ws:

        async def rtt() -> float:
            start = time.perf_counter()
            await ws.send("x")
            await ws.recv()
            return time.perf_counter() - start

        assert await rtt() >= 0.2
        await proxy.update_toxic("latency_downstream", config=Latency(latency=0))
        assert await rtt() < 0.1
