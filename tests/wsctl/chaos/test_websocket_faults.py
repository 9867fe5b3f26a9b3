"""WebSocket-aware faults against a real ``websockets`` client and server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from tests.wsctl.chaos.conftest import make_proxy, port_of, settle
from wsctl.chaos.faults import FAULTS
from wsctl.chaos.proxy import Chaos, Toxic


def toxic(kind: str, stream: str = "downstream", **attributes: object) -> Toxic:
    return Toxic(kind, FAULTS[kind].config(**attributes), stream=stream)


async def ticker(ws: ServerConnection) -> None:
    """Sends ``tick N`` every 20 ms and echoes what it receives."""

    async def ticks() -> None:
        n = 0
        while True:
            n += 1
            await ws.send(f"tick {n}")
            await asyncio.sleep(0.02)

    task = asyncio.create_task(ticks())
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await task


@pytest.fixture
async def ticking() -> AsyncIterator[Server]:
    async with serve(ticker, "127.0.0.1", 0) as server:
        yield server


async def test_drop_pongs_fails_client_keepalive(chaos: Chaos, ws_echo: Server) -> None:
    """With pongs dropped the client's keepalive fails (1011) within interval + timeout."""
    proxy = await make_proxy(chaos, port_of(ws_echo))
    proxy.add_toxic(toxic("drop_pongs"))
    interval, timeout = 0.2, 0.2
    async with connect(f"ws://{proxy.listen}/", ping_interval=interval, ping_timeout=timeout) as ws:
        start = time.monotonic()
        with pytest.raises(ConnectionClosedError) as raised:
            await asyncio.wait_for(ws.recv(), 3)
        elapsed = time.monotonic() - start
    assert raised.value.sent is not None and raised.value.sent.code == 1011
    assert elapsed < interval + timeout + 0.3
    assert proxy.stats.applied["drop_pongs"] >= 2  # activation + at least one pong dropped


async def test_pongs_pass_without_the_fault(chaos: Chaos, ws_echo: Server) -> None:
    """Control for the keepalive test: with no fault the same keepalive holds the line."""
    proxy = await make_proxy(chaos, port_of(ws_echo))
    async with connect(f"ws://{proxy.listen}/", ping_interval=0.1, ping_timeout=0.1) as ws:
        await asyncio.sleep(0.5)
        await ws.send("still here")
        assert await asyncio.wait_for(ws.recv(), 2) == "still here"


async def test_close_1013_reaches_client(chaos: Chaos, ws_echo: Server) -> None:
    """An injected close frame with 1013 and a reason is what the client sees."""
    proxy = await make_proxy(chaos, port_of(ws_echo))
    async with connect(f"ws://{proxy.listen}/") as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        proxy.add_toxic(toxic("close", code=1013, reason="retry in 500ms"))
        with pytest.raises(ConnectionClosed) as raised:
            await asyncio.wait_for(ws.recv(), 3)
    assert raised.value.rcvd is not None
    assert (raised.value.rcvd.code, raised.value.rcvd.reason) == (1013, "retry in 500ms")
    assert await settle(lambda: not proxy.connections)


async def test_close_upstream_reaches_server(chaos: Chaos) -> None:
    """``close`` upstream sends a (masked) close frame the server accepts as the client's."""
    seen: list[int | None] = []

    async def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.recv()
        seen.append(ws.close_code)

    async with serve(handler, "127.0.0.1", 0) as server:
        proxy = await make_proxy(chaos, port_of(server))
        proxy.add_toxic(toxic("close", stream="upstream", code=1001))
        async with connect(f"ws://{proxy.listen}/") as ws:
            with contextlib.suppress(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 3)
        assert await settle(lambda: bool(seen))
    assert seen == [1001]


async def test_cut_gives_client_1006(chaos: Chaos, ws_echo: Server) -> None:
    """``cut`` resets the connection: the client sees an abnormal closure, 1006."""
    proxy = await make_proxy(chaos, port_of(ws_echo))
    async with connect(f"ws://{proxy.listen}/") as ws:
        await ws.send("a")
        assert await ws.recv() == "a"
        proxy.add_toxic(toxic("cut"))
        with pytest.raises(ConnectionClosedError) as raised:
            await asyncio.wait_for(ws.recv(), 3)
        assert ws.close_code == 1006
    assert raised.value.rcvd is None


async def test_drop_frames_silences_data_but_keeps_connection(
    chaos: Chaos, ticking: Server
) -> None:
    """``drop_frames``: data stops, pings still answered, data resumes once removed."""
    proxy = await make_proxy(chaos, port_of(ticking))
    # No compression: dropping frames from a deflate stream with context takeover would
    # (rightly) break the client's inflater once frames flow again.
    async with connect(f"ws://{proxy.listen}/", ping_interval=None, compression=None) as ws:
        assert (await asyncio.wait_for(ws.recv(), 2)).startswith("tick")
        proxy.add_toxic(toxic("drop_frames"))
        await asyncio.sleep(0.05)
        for _ in range(20):  # drain what was already on the client's side
            try:
                await asyncio.wait_for(ws.recv(), 0.1)
            except TimeoutError:
                break
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)
        pong = await ws.ping()
        await asyncio.wait_for(pong, 2)  # the connection is alive
        await proxy.remove_toxic("drop_frames_downstream")
        assert (await asyncio.wait_for(ws.recv(), 2)).startswith("tick")
    assert proxy.stats.applied["drop_frames"] > 5


async def test_drop_frames_recognises_compressed_frames(chaos: Chaos, ticking: Server) -> None:
    """Compressed (permessage-deflate) data frames are recognised and dropped too."""
    proxy = await make_proxy(chaos, port_of(ticking))
    async with connect(f"ws://{proxy.listen}/", ping_interval=None) as ws:
        assert ws.protocol.extensions  # deflate was negotiated
        proxy.add_toxic(toxic("drop_frames"))
        await asyncio.sleep(0.05)
        for _ in range(20):
            try:
                await asyncio.wait_for(ws.recv(), 0.1)
            except TimeoutError:
                break
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)
        await asyncio.wait_for(await ws.ping(), 2)


async def test_drop_frames_upstream_parses_masked_frames(chaos: Chaos, ws_echo: Server) -> None:
    """Upstream (masked) data frames are dropped; the client's pings still get pongs."""
    proxy = await make_proxy(chaos, port_of(ws_echo))
    async with connect(f"ws://{proxy.listen}/", ping_interval=None, compression=None) as ws:
        proxy.add_toxic(toxic("drop_frames", stream="upstream"))
        await ws.send("lost")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)
        await asyncio.wait_for(await ws.ping(), 2)
        await proxy.remove_toxic("drop_frames_upstream")
        await ws.send("found")
        assert await asyncio.wait_for(ws.recv(), 2) == "found"


async def test_frame_delay_delays_whole_frames(chaos: Chaos, ws_echo: Server) -> None:
    """``frame_delay`` holds each frame about ``delay`` ms; contents are untouched."""
    proxy = await make_proxy(chaos, port_of(ws_echo))
    async with connect(f"ws://{proxy.listen}/") as ws:
        proxy.add_toxic(toxic("frame_delay", delay=80))
        start = time.monotonic()
        await ws.send(b"x" * 200_000)
        assert await asyncio.wait_for(ws.recv(), 3) == b"x" * 200_000
        assert time.monotonic() - start >= 0.08


async def test_faults_toggled_mid_stream_keep_frames_intact(chaos: Chaos, ws_echo: Server) -> None:
    """Adding and removing frame faults while large frames flow never corrupts the stream."""
    proxy = await make_proxy(chaos, port_of(ws_echo))
    messages = [bytes([i]) * (50_000 + i * 997) for i in range(40)]
    async with connect(f"ws://{proxy.listen}/", max_size=None) as ws:

        async def toggle() -> None:
            for i in range(30):
                proxy.add_toxic(toxic("drop_pongs", stream="upstream" if i % 2 else "downstream"))
                await asyncio.sleep(0.003)
                await proxy.remove_toxic(
                    "drop_pongs_upstream" if i % 2 else "drop_pongs_downstream"
                )

        toggler = asyncio.create_task(toggle())
        for message in messages:
            await ws.send(message)
        received = [await asyncio.wait_for(ws.recv(), 5) for _ in messages]
        await toggler
    assert received == messages


async def test_non_websocket_traffic_passes_untouched(chaos: Chaos) -> None:
    """A plain HTTP exchange through a WebSocket fault passes byte for byte."""
    body = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(body)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        proxy = await make_proxy(chaos, server.sockets[0].getsockname()[1])
        proxy.add_toxic(toxic("drop_frames"))
        host, port = proxy.listen.split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await asyncio.wait_for(reader.read(-1), 3) == body
        writer.close()
        await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()
