"""wsctl.probe.tcp: the probe's own TCP connect for hosts written as IP addresses."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import sys
import time

import pytest

from wsctl.errors import ConnectError
from wsctl.probe.driver import websockets_connector
from wsctl.probe.tcp import ip_address_of, open_socket, read_first, stamp_arrivals

pytestmark = pytest.mark.timeout(30)


def test_only_ip_literal_hosts_get_an_address() -> None:
    """IPv4 and IPv6 literals give family and (host, port), default ports by scheme; a
    host name, another scheme or a bad port give None (websockets judges those)."""
    assert ip_address_of("ws://127.0.0.1:8765/ws/a") == (socket.AF_INET, ("127.0.0.1", 8765))
    assert ip_address_of("wss://10.0.0.1/ws/a") == (socket.AF_INET, ("10.0.0.1", 443))
    assert ip_address_of("ws://[::1]/ws/a") == (socket.AF_INET6, ("::1", 80))
    assert ip_address_of("ws://localhost:8765/ws/a") is None
    assert ip_address_of("http://127.0.0.1:8765/") is None
    assert ip_address_of("ws://127.0.0.1:99999/ws/a") is None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_refused_connect_raises_and_leaks_no_socket() -> None:
    """Nothing listening: ConnectionRefusedError every time, no descriptor left behind,
    and through the connector it is the usual ConnectError of kind ``refused``."""
    url = f"ws://127.0.0.1:{_free_port()}/ws/a"
    before = _open_fds()
    for _ in range(50):
        with pytest.raises(ConnectionRefusedError):
            await open_socket(url)
    assert _open_fds() == before
    with pytest.raises(ConnectError) as caught:
        await websockets_connector()(url, 5.0)
    assert caught.value.kind == "refused"
    assert _open_fds() == before


async def test_a_listening_port_gives_a_connected_socket_and_a_name_gives_none() -> None:
    """A listener: a connected non-blocking socket to it; a host name: None."""
    accepted: list[int] = []

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        sock = await open_socket(f"ws://127.0.0.1:{port}/ws/a")
        assert sock is not None
        assert sock.getpeername() == ("127.0.0.1", port) and not sock.getblocking()
        sock.close()
        await asyncio.sleep(0.05)
        assert accepted == [1]
        assert await open_socket(f"ws://localhost:{port}/ws/a") is None
    finally:
        server.close()
        await server.wait_closed()


def _count_writers(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The descriptors the running loop is asked to watch for writability from now on."""
    loop = asyncio.get_running_loop()
    registered: list[int] = []
    add_writer = loop.add_writer

    def counting_add_writer(fd, callback, *args):  # type: ignore[no-untyped-def]
        registered.append(fd)
        return add_writer(fd, callback, *args)

    monkeypatch.setattr(loop, "add_writer", counting_add_writer)
    return registered


async def test_a_refused_connect_is_known_without_a_selector_round_trip(monkeypatch) -> None:
    """On this host the kernel refuses inside connect(): open_socket raises at once and
    never registers the socket with the loop (each such attempt in a reconnect storm
    would otherwise cost an epoll registration, a wake-up and an unregistration)."""
    registered = _count_writers(monkeypatch)
    with pytest.raises(ConnectionRefusedError):
        await open_socket(f"ws://127.0.0.1:{_free_port()}/ws/a")
    assert registered == []


async def test_a_loopback_connect_is_done_without_a_selector_round_trip(monkeypatch) -> None:
    """Over loopback the handshake is over when connect() returns: open_socket hands back
    the connected socket without waiting for the loop's selector (a wait that, in a busy
    worker, queues behind every other probe's callbacks and lands in connect_time)."""
    registered = _count_writers(monkeypatch)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        sock = await open_socket(f"ws://127.0.0.1:{listener.getsockname()[1]}/ws/a")
        assert sock is not None and sock.getpeername() == listener.getsockname()
        sock.close()
    finally:
        listener.close()
    assert registered == []


async def test_a_connect_still_in_progress_is_awaited_and_cancels_cleanly() -> None:
    """A listener whose accept queue is full leaves a connect in progress: open_socket
    waits for it (through the selector) and, cancelled, closes its socket and leaves no
    writer registered."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):  # fill the accept queue: later SYNs go unanswered
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        await asyncio.sleep(0.05)
        before = _open_fds()
        task = asyncio.create_task(open_socket(f"ws://127.0.0.1:{port}/ws/a"))
        await asyncio.sleep(0.2)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert _open_fds() == before
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_a_probe_connection_has_nagle_off() -> None:
    """asyncio sets TCP_NODELAY only on a socket whose proto says TCP: the probe's own
    socket must say so, or a heartbeat written while an earlier segment waits for its
    delayed ACK sits in the kernel up to 40 ms, inside rtt."""
    from websockets.asyncio.server import serve

    async with serve(lambda ws: ws.wait_closed(), "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        link = await websockets_connector()(f"ws://127.0.0.1:{port}/ws/a", 5.0)
        sock = link.transport.get_extra_info("socket")  # type: ignore[attr-defined]
        nodelay = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        await link.close()
    assert nodelay != 0


async def _pair() -> tuple[socket.socket, socket.socket, socket.socket]:
    """(listener, server side, client side) of one loopback TCP connection; the client
    side non-blocking, connected by open_socket as a probe's is."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = await open_socket(f"ws://127.0.0.1:{listener.getsockname()[1]}/")
    assert client is not None
    server, _ = listener.accept()
    return listener, server, client


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_TIMESTAMPNS is Linux's")
async def test_the_first_bytes_carry_the_kernels_arrival_stamp() -> None:
    """A response that waits in the kernel while the probe's loop is busy is stamped when
    it reached the socket (the kernel's stamp), not when the loop got to read it: without
    the stamp it would carry the 80 ms the loop was blocked. Then it can be turned off."""
    listener, server, client = await _pair()
    try:
        assert stamp_arrivals(client)
        sent = time.monotonic()
        server.send(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        time.sleep(0.08)  # the loop is busy: the bytes wait in the kernel
        wall_before_read = time.time()
        data, (mono, wall) = await read_first(client, sent)
        assert data.startswith(b"HTTP/1.1 101")
        assert sent <= mono < sent + 0.04
        assert wall < wall_before_read - 0.04
        assert stamp_arrivals(client, False)
    finally:
        for sock in (listener, server, client):
            sock.close()


async def test_without_the_kernels_stamp_the_first_bytes_are_stamped_when_read() -> None:
    """No kernel stamp asked for (or none given): the instant the loop read the bytes (a
    WakeStampingLoop's wake-up, here the read itself); end of stream is b""; a stamp from
    before the request went out (a stepped wall clock) is never used."""
    listener, server, client = await _pair()
    try:
        sent = time.monotonic()
        server.send(b"x")
        time.sleep(0.05)
        data, (mono, _) = await read_first(client, sent)
        assert data == b"x" and mono >= sent + 0.05
        stamp_arrivals(client)
        server.send(b"y")
        time.sleep(0.05)
        data, (mono, _) = await read_first(client, time.monotonic() + 10)  # after any stamp
        assert data == b"y" and mono >= sent + 0.1
        server.close()
        data, _ = await read_first(client, sent)
        assert data == b""
    finally:
        for sock in (listener, server, client):
            sock.close()


async def test_a_reset_before_the_response_raises_and_a_cancelled_read_leaves_no_reader(
        ) -> None:
    """A reset reaches the caller as the OSError the read raised; a read cancelled while
    waiting (the probe's connect timeout) takes its reader off the loop."""
    listener, server, client = await _pair()
    loop = asyncio.get_running_loop()
    try:
        waiting = asyncio.ensure_future(read_first(client, time.monotonic()))
        await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert loop.remove_reader(client.fileno()) is False  # nothing left registered
        server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        server.close()
        with pytest.raises(ConnectionResetError):
            await read_first(client, time.monotonic())
    finally:
        for sock in (listener, server, client):
            sock.close()
