"""The picows bench transport against real WebSocket servers on 127.0.0.1 (port 0)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("picows", reason="picows is not installed (pip install picows)")

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from wsctl.bench.transport import get_transport
from wsctl.bench.transport_picows import PicowsTransport, transport
from wsctl.errors import ConnectError

# Generous bound for one event to happen on a loaded 2-core machine; never a figure.
WAIT = 5.0


class Recorder:
    """A Receiver that keeps what it is told and lets a test await it."""

    def __init__(self) -> None:
        self.messages: list[tuple[str | bytes, float]] = []
        self.closes: list[tuple[int | None, str]] = []
        self.got_message = asyncio.Event()
        self.got_close = asyncio.Event()

    def on_message(self, data: str | bytes, at: float) -> None:
        self.messages.append((data, at))
        self.got_message.set()

    def on_close(self, code: int | None, reason: str) -> None:
        self.closes.append((code, reason))
        self.got_close.set()

    async def next_message(self) -> str | bytes:
        await asyncio.wait_for(self.got_message.wait(), WAIT)
        self.got_message.clear()
        return self.messages[-1][0]


async def handler(ws: ServerConnection) -> None:
    """Echo; a few commands make the server do what a test needs."""
    try:
        async for message in ws:
            if message == "close 1001":
                await ws.close(1001, "going away")
            elif message == "abort":
                assert ws.transport is not None
                ws.transport.abort()  # no close frame
            elif message == "ping":
                pong = await ws.ping(b"are you there")
                await asyncio.wait_for(pong, WAIT)
                await ws.send("pong received")
            elif message == "fragments":
                await ws.send(["frag", "men", "ted"])
            else:
                await ws.send(message)
    except ConnectionClosed:
        pass


@pytest.fixture
async def echo_url() -> AsyncIterator[str]:
    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/echo"


def free_port() -> int:
    """A 127.0.0.1 port with nothing listening on it (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_round_trip_reaches_receiver_with_receipt_time(echo_url: str) -> None:
    """A sent text message comes back whole through on_message, stamped with monotonic time."""
    loop = asyncio.get_running_loop()
    recorder = Recorder()
    channel = await transport().connect(echo_url, recorder, timeout=WAIT)
    before = loop.time()
    channel.send("héllo wörld")
    assert await recorder.next_message() == "héllo wörld"
    at = recorder.messages[-1][1]
    assert before <= at <= loop.time()  # asyncio's loop clock is time.monotonic
    channel.close()
    await asyncio.wait_for(channel.wait_closed(), WAIT)
    assert recorder.closes == [(1000, "")]


async def test_many_pipelined_messages_arrive_in_order(echo_url: str) -> None:
    """Sends never await, so 500 queued sends all come back, in order."""
    recorder = Recorder()
    channel = await PicowsTransport().connect(echo_url, recorder, timeout=WAIT)
    for i in range(500):
        channel.send(str(i))
    for _ in range(100):
        if len(recorder.messages) == 500:
            break
        await asyncio.sleep(0.05)
    assert [m for m, _ in recorder.messages] == [str(i) for i in range(500)]
    assert channel.buffered >= 0
    channel.close()
    await asyncio.wait_for(channel.wait_closed(), WAIT)


async def test_fragmented_message_is_reassembled(echo_url: str) -> None:
    """A message the server sends in three fragments arrives as one on_message."""
    recorder = Recorder()
    channel = await transport().connect(echo_url, recorder, timeout=WAIT)
    channel.send("fragments")
    assert await recorder.next_message() == "fragmented"
    assert len(recorder.messages) == 1
    channel.close()
    await asyncio.wait_for(channel.wait_closed(), WAIT)


async def test_server_close_code_reaches_on_close(echo_url: str) -> None:
    """The server closing with 1001 gives on_close(1001, reason) exactly once."""
    recorder = Recorder()
    channel = await transport().connect(echo_url, recorder, timeout=WAIT)
    channel.send("close 1001")
    await asyncio.wait_for(channel.wait_closed(), WAIT)
    assert recorder.closes == [(1001, "going away")]


async def test_client_close_code_is_sent_and_echoed(echo_url: str) -> None:
    """close(4000, ...) completes the closing handshake; the echoed code reaches on_close."""
    recorder = Recorder()
    channel = await transport().connect(echo_url, recorder, timeout=WAIT)
    channel.close(4000, "done here")
    await asyncio.wait_for(channel.wait_closed(), WAIT)
    assert recorder.closes == [(4000, "done here")]
    channel.send("after close")  # ignored, not an error
    channel.close()  # idempotent


async def test_connection_dropped_without_close_frame_reports_none(echo_url: str) -> None:
    """A TCP drop with no close frame is on_close(None, '') (1006)."""
    recorder = Recorder()
    channel = await transport().connect(echo_url, recorder, timeout=WAIT)
    channel.send("abort")
    await asyncio.wait_for(channel.wait_closed(), WAIT)
    assert recorder.closes == [(None, "")]


async def test_server_ping_is_answered(echo_url: str) -> None:
    """A ping from the server gets its pong (the server reports it received one)."""
    recorder = Recorder()
    channel = await transport().connect(echo_url, recorder, timeout=WAIT)
    channel.send("ping")
    assert await recorder.next_message() == "pong received"
    channel.close()
    await asyncio.wait_for(channel.wait_closed(), WAIT)


async def test_refused_port_is_connect_error_refused() -> None:
    """Nothing listening -> ConnectError kind 'refused'."""
    with pytest.raises(ConnectError) as caught:
        await transport().connect(f"ws://127.0.0.1:{free_port()}/", Recorder(), timeout=WAIT)
    assert caught.value.kind == "refused"


async def test_http_503_handshake_is_status_503() -> None:
    """A server answering the upgrade with HTTP 503 -> ConnectError kind 'status_503', its
    Retry-After as the hint."""

    def busy(connection: ServerConnection, request: Request) -> Response:
        return Response(503, "Service Unavailable", Headers([("Retry-After", "4")]), b"busy\n")

    async with serve(handler, "127.0.0.1", 0, process_request=busy) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        with pytest.raises(ConnectError) as caught:
            await transport().connect(f"ws://127.0.0.1:{port}/", Recorder(), timeout=WAIT)
    assert caught.value.kind == "status_503" and caught.value.retry_after == 4


async def test_silent_server_is_timeout_and_connection_is_dropped() -> None:
    """A listener that never answers the upgrade -> 'timeout', and our socket is closed."""
    loop = asyncio.get_running_loop()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # the kernel completes TCP handshakes; nobody ever answers HTTP
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        started = loop.time()
        with pytest.raises(ConnectError) as caught:
            await transport().connect(f"ws://127.0.0.1:{port}/", Recorder(), timeout=0.3)
        assert caught.value.kind == "timeout"
        assert loop.time() - started < WAIT
        # The half-open client connection must not be left behind: the server side sees EOF.
        accepted, _ = await asyncio.wait_for(loop.sock_accept(listener), WAIT)
        with accepted:
            data = b""
            while True:
                chunk = await asyncio.wait_for(loop.sock_recv(accepted, 4096), WAIT)
                if not chunk:
                    break
                data += chunk
        assert data.startswith(b"GET / HTTP/1.1")
    finally:
        listener.close()


async def test_bad_url_is_connect_error_not_crash() -> None:
    """A URL picows cannot parse is a ConnectError ('protocol'), not another exception."""
    with pytest.raises(ConnectError) as caught:
        await transport().connect("http://127.0.0.1:1/", Recorder(), timeout=WAIT)
    assert caught.value.kind == "protocol"


async def test_backpressure_is_buffered_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Writing faster than the server reads shows in .buffered; picows logs no warnings."""
    release = asyncio.Event()

    async def slow_reader(ws: ServerConnection) -> None:
        await release.wait()  # reads nothing until told, then drains to the close frame
        async for _ in ws:
            pass

    async with serve(slow_reader, "127.0.0.1", 0, max_size=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        channel = await transport().connect(f"ws://127.0.0.1:{port}/", Recorder(), timeout=WAIT)
        chunk = "x" * 10_000
        for _ in range(1000):  # 10 MB: past the socket buffers and the high-water mark
            channel.send(chunk)
        assert channel.buffered > 1_000_000
        release.set()
        channel.close()
        await asyncio.wait_for(channel.wait_closed(), WAIT)
    assert [r.getMessage() for r in caplog.records if r.levelno >= 30] == []


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not found")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


async def test_wss_round_trip_with_given_ssl_context(certificate: tuple[Path, Path]) -> None:
    """wss:// works with the caller's SSLContext; an untrusted certificate is 'tls'."""
    cert, key = certificate
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    async with serve(handler, "127.0.0.1", 0, ssl=server_context) as server:
        url = f"wss://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}/"
        recorder = Recorder()
        channel = await transport().connect(url, recorder, timeout=WAIT, ssl=trusting)
        channel.send("over tls")
        assert await recorder.next_message() == "over tls"
        channel.close()
        await asyncio.wait_for(channel.wait_closed(), WAIT)
        with pytest.raises(ConnectError) as caught:
            await transport().connect(url, Recorder(), timeout=WAIT,
                                      ssl=ssl.create_default_context())
    assert caught.value.kind == "tls"


def test_get_transport_finds_picows() -> None:
    """The bench's lookup by name returns this transport, named 'picows'."""
    found: Any = get_transport("picows")
    assert isinstance(found, PicowsTransport)
    assert found.name == "picows"


async def test_message_larger_than_the_initial_read_buffer_arrives_whole(echo_url: str) -> None:
    """The read buffer starts small (READ_BUFFER) and grows: a 256 KiB message comes back whole."""
    from wsctl.bench.transport_picows import READ_BUFFER

    recorder = Recorder()
    channel = await transport().connect(echo_url, recorder, timeout=WAIT)
    big = "x" * (128 * READ_BUFFER)
    channel.send(big)
    assert await recorder.next_message() == big
    channel.close()
    await asyncio.wait_for(channel.wait_closed(), WAIT)


ECHO_PROCESS = """
import asyncio
from websockets.asyncio.server import serve

async def echo(ws):
    async for message in ws:
        await ws.send(message)

async def main():
    async with serve(echo, "127.0.0.1", 0, compression=None) as server:
        print(next(iter(server.sockets)).getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
"""


class Quiet:
    """A Receiver that keeps nothing (a held connection's own cost is what is measured)."""

    def on_message(self, data: str | bytes, at: float) -> None:
        pass

    def on_close(self, code: int | None, reason: str) -> None:
        pass


def test_a_held_connection_costs_the_client_a_few_kib() -> None:
    """On uvloop (bench's default loop), 40 open connections to a server in another process
    allocate under 12 KiB each on the Python heap (traced: picows' buffers, the listener, the
    channel, uvloop's transport); with picows' defaults (a 16 KiB read buffer, a Logger per
    connection) it was over 23 KiB."""
    import gc
    import sys
    import tracemalloc

    uvloop = pytest.importorskip("uvloop")
    count = 40

    async def held(url: str) -> float:
        first = await transport().connect(url, Quiet(), timeout=WAIT)  # warm caches
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            channels = [await transport().connect(url, Quiet(), timeout=WAIT)
                        for _ in range(count)]
            gc.collect()
            per_connection = (tracemalloc.get_traced_memory()[0] - before) / count
        finally:
            tracemalloc.stop()
        for channel in [first, *channels]:
            channel.close()
        await asyncio.gather(*(asyncio.wait_for(c.wait_closed(), WAIT)
                               for c in [first, *channels]))
        return per_connection

    server = subprocess.Popen([sys.executable, "-c", ECHO_PROCESS], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            per_connection = runner.run(held(f"ws://127.0.0.1:{port}/echo"))
    finally:
        server.kill()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()
    assert per_connection < 12 * 1024, per_connection
