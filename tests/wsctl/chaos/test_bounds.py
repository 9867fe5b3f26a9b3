"""A proxy cannot relay to itself, and no relay loop can take every file descriptor."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.wsctl.chaos.conftest import TcpEcho, settle
from wsctl.chaos.proxy import Chaos
from wsctl.errors import ProxyLoop


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Forwarder:
    """A plain TCP relay outside the chaos server (what a loop the proxy cannot see is
    made of): every connection it accepts, it relays to ``target``."""

    def __init__(self) -> None:
        self.target = ("127.0.0.1", 0)
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def start(self) -> int:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])


async def test_upstream_equal_to_listen_is_400_proxy_loop(api_client: httpx.AsyncClient) -> None:
    """POST /proxies relaying to its own listen address is 400 proxy_loop; nothing made."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    response = await api_client.post("/proxies", json={"name": "loop", "listen": address,
                                                "upstream": address})
    assert response.status_code == 400
    assert response.json()["kind"] == "proxy_loop" and "leads back" in response.json()["error"]
    assert (await api_client.get("/proxies/loop")).status_code == 404
    with socket.socket() as sock:  # the listener was closed again
        sock.bind(("127.0.0.1", port))


async def test_a_loop_through_another_proxy_is_refused_and_nothing_changes(
    api_client: httpx.AsyncClient, tcp_echo: TcpEcho
) -> None:
    """PATCHing A's upstream to B, which relays to A, is 400; A keeps relaying as before."""
    a = (await api_client.post("/proxies", json={"name": "a", "listen": "127.0.0.1:0",
                                          "upstream": f"127.0.0.1:{tcp_echo.port}"})).json()
    b = (await api_client.post("/proxies", json={"name": "b", "listen": "127.0.0.1:0",
                                          "upstream": a["listen"]})).json()
    response = await api_client.post("/proxies/a", json={"upstream": b["listen"]})
    assert response.status_code == 400 and response.json()["kind"] == "proxy_loop"
    assert "a -> b -> a" in response.json()["error"]
    after = (await api_client.get("/proxies/a")).json()
    assert (after["listen"], after["upstream"], after["enabled"]) == (
        a["listen"], f"127.0.0.1:{tcp_echo.port}", True)
    host, port = a["listen"].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"ping")
    assert await asyncio.wait_for(reader.readexactly(4), 3) == b"ping"
    writer.close()


async def test_wildcard_listen_and_populate_loops_are_refused(chaos: Chaos) -> None:
    """A 0.0.0.0 listener relaying to 127.0.0.1 on its port, and a populate whose
    proxies relay to each other, are both loops."""
    port = free_port()
    with pytest.raises(ProxyLoop):
        await chaos.create(name="w", listen=f"0.0.0.0:{port}", upstream=f"localhost:{port}")
    from wsctl.chaos.model import ProxySpec

    p1, p2 = free_port(), free_port()
    with pytest.raises(ProxyLoop):
        await chaos.populate([ProxySpec("x", f"127.0.0.1:{p2}", f"127.0.0.1:{p1}"),
                              ProxySpec("y", f"127.0.0.1:{p1}", f"127.0.0.1:{p2}")])
    assert "y" not in chaos.proxies


async def test_a_loop_it_cannot_see_is_bounded_by_the_connection_cap() -> None:
    """Through an outside relay back to itself, one client makes the proxy hold at most
    max_connections (the surplus is reset), and all of it goes when the client does."""
    chaos = Chaos(max_connections=5)
    forwarder = Forwarder()
    try:
        proxy = await chaos.create(name="p", upstream=f"127.0.0.1:{await forwarder.start()}")
        host, port = proxy.listen.rsplit(":", 1)
        forwarder.target = (host, int(port))
        peak = 0
        _reader, writer = await asyncio.open_connection(host, int(port))
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and proxy.stats.refused_total == 0:
            peak = max(peak, len(proxy.connections))
            await asyncio.sleep(0.001)
        assert proxy.stats.refused_total >= 1 and peak <= 5
        await asyncio.sleep(0.2)
        assert len(proxy.connections) <= 5
        writer.close()  # the client leaves: the whole chain goes with it
        assert await settle(lambda: not proxy.connections, 5.0)
    finally:
        await chaos.close()
        if forwarder.server is not None:
            forwarder.server.close()


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_chaos_serve_survives_a_relay_loop_and_stops_on_sigterm() -> None:
    """`wsctl chaos serve --max-connections 50` under a relay loop: fds stay bounded, the
    API answers, SIGTERM ends it."""
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("wsctl")), "chaos", "serve",
         "--api", "127.0.0.1:0", "--max-connections", "50"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    try:
        line = proc.stderr.readline()
        api = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert api, line
        base = api.group(0)
        before = _fds(proc.pid)

        async def drive() -> None:
            forwarder = Forwarder()
            forward_port = await forwarder.start()
            async with httpx.AsyncClient(base_url=base) as client:
                made = await client.post("/proxies", json={
                    "name": "p", "listen": "127.0.0.1:0",
                    "upstream": f"127.0.0.1:{forward_port}"})
                host, port = made.json()["listen"].rsplit(":", 1)
                forwarder.target = (host, int(port))
                _r, w = await asyncio.open_connection(host, int(port))
                peak = 0
                for _ in range(40):
                    await asyncio.sleep(0.025)
                    peak = max(peak, _fds(proc.pid))
                assert peak - before <= 2 * 50 + 10
                assert (await client.get("/version", timeout=2)).status_code == 200
                w.close()
            assert forwarder.server is not None
            forwarder.server.close()

        asyncio.run(drive())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
