"""Several upstreams behind one proxy: round robin, a refused upstream skipped, the list
changed at runtime, and the one-upstream JSON left exactly as Toxiproxy's."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from wsctl.chaos.proxy import FAIL_TIMEOUT, Chaos
from wsctl.clock import FakeClock
from wsctl.errors import InvalidInput, ProxyLoop


class Named:
    """A TCP server that answers every connection with its name, then echoes."""

    def __init__(self, name: str) -> None:
        self.name = name.encode()
        self.server: asyncio.Server | None = None
        self.address = ""

    async def start(self, port: int = 0) -> Named:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", port)
        self.address = f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(self.name + b"\n")
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Named, Named]]:
    a, b = await Named("a").start(), await Named("b").start()
    yield a, b
    await a.stop()
    await b.stop()


def free_address() -> str:
    """A loopback address nothing listens on (connects to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


async def who(listen: str) -> str:
    """Open a connection through the proxy; the name of the upstream that answers."""
    host, port = listen.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        line = await asyncio.wait_for(reader.readline(), 3)
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 3) == b"ping"
        return line.decode().strip()
    finally:
        writer.close()


async def test_new_connections_go_round_robin(chaos: Chaos, pair: tuple[Named, Named]) -> None:
    """New connections alternate between the upstreams, in the listed order."""
    a, b = pair
    proxy = await chaos.create(name="lb", upstreams=[a.address, b.address])
    assert [await who(proxy.listen) for _ in range(4)] == ["a", "b", "a", "b"]
    assert proxy.stats.upstream_connections == {a.address: 2, b.address: 2}


async def test_killed_upstream_new_connections_reach_the_other(
    chaos: Chaos, pair: tuple[Named, Named]
) -> None:
    """With one upstream killed, every new connection reaches the other, the client never
    seeing the refusal, and the dead one is tried only once (then skipped)."""
    a, b = pair
    proxy = await chaos.create(name="lb", upstreams=[a.address, b.address])
    assert await who(proxy.listen) == "a"
    await a.stop()
    assert [await who(proxy.listen) for _ in range(4)] == ["b"] * 4
    assert proxy.stats.upstream_failures == {a.address: 1}


async def test_every_upstream_refusing_closes_the_client(chaos: Chaos) -> None:
    """When every upstream refuses, each is tried once and the client is closed."""
    dead = [free_address(), free_address()]
    proxy = await chaos.create(name="lb", upstreams=dead)
    host, port = proxy.listen.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    assert await asyncio.wait_for(reader.read(), 3) == b""
    writer.close()
    assert proxy.stats.upstream_failures == {dead[0]: 1, dead[1]: 1}


async def test_refused_upstream_tried_last_until_fail_timeout() -> None:
    """A refused upstream goes to the end of the order for FAIL_TIMEOUT, then back in turn."""
    from wsctl.chaos.proxy import Proxy

    clock = FakeClock()
    proxy = Proxy(Chaos(clock=clock), "lb", "127.0.0.1:0", ["h:1", "h:2", "h:3"])
    assert proxy.candidates() == ["h:1", "h:2", "h:3"]
    proxy.upstream_failed("h:2", ConnectionRefusedError())
    assert proxy.candidates() == ["h:3", "h:1", "h:2"]  # h:2's turn, h:2 skipped
    assert proxy.candidates() == ["h:1", "h:3", "h:2"]  # h:3 did not get two turns
    await clock.advance(1)
    assert proxy.candidates() == ["h:3", "h:1", "h:2"]  # 1 s later h:2 is still last
    await clock.advance(FAIL_TIMEOUT - 1)
    assert proxy.candidates() == ["h:1", "h:2", "h:3"]  # back in its place
    assert proxy.candidates() == ["h:2", "h:3", "h:1"]
    proxy.upstream_failed("h:3", ConnectionRefusedError())
    proxy.upstream_reached("h:3")  # a later success clears the mark at once
    assert proxy.candidates() == ["h:3", "h:1", "h:2"]


async def test_upstream_list_changed_at_runtime(chaos: Chaos, pair: tuple[Named, Named]) -> None:
    """Changing the list keeps the listener and the connections to upstreams still listed,
    closes the others, and new connections use the new list."""
    a, b = pair
    proxy = await chaos.create(name="lb", upstreams=[a.address, b.address])
    listen = proxy.listen
    host, port = listen.split(":")
    to_a = await asyncio.open_connection(host, int(port))
    to_b = await asyncio.open_connection(host, int(port))
    assert await to_a[0].readline() == b"a\n" and await to_b[0].readline() == b"b\n"
    await chaos.update("lb", upstreams=[b.address])
    assert proxy.listen == listen and proxy.upstreams == (b.address,)
    assert await asyncio.wait_for(to_a[0].read(), 3) == b""  # a left the list: closed
    to_b[1].write(b"still")
    assert await asyncio.wait_for(to_b[0].readexactly(5), 3) == b"still"
    assert [await who(listen) for _ in range(2)] == ["b", "b"]
    for _, writer in (to_a, to_b):
        writer.close()


async def test_bad_upstream_lists_are_invalid_input(chaos: Chaos) -> None:
    """An empty list, a repeat, a non-address, or an upstream that is not the first of the
    list is InvalidInput, and no proxy is made."""
    for kwargs in ({"upstreams": []} | {"upstream": ""}, {"upstreams": ["h:1", "h:1"]},
                   {"upstreams": ["h:1", "nope"]}, {"upstream": "h:2", "upstreams": ["h:1"]}):
        with pytest.raises(InvalidInput):
            await chaos.create(name="lb", **kwargs)  # type: ignore[arg-type]
    assert chaos.proxies == {}


async def test_loop_through_a_second_upstream_is_refused(chaos: Chaos) -> None:
    """A proxy whose second upstream leads back to its own listen address is a ProxyLoop."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ProxyLoop):
        await chaos.create(name="lb", listen=f"127.0.0.1:{port}",
                           upstreams=[free_address(), f"127.0.0.1:{port}"])


async def test_one_upstream_json_is_toxiproxys(api_client: httpx.AsyncClient) -> None:
    """A proxy made with one upstream shows exactly Toxiproxy's fields, and so does a PATCH
    of its upstream; no upstreams field appears."""
    body = {"name": "one", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"}
    made = (await api_client.post("/proxies", json=body)).json()
    assert set(made) == {"name", "listen", "upstream", "enabled", "toxics"}
    patched = (await api_client.patch("/proxies/one", json={"upstream": "127.0.0.1:10"})).json()
    assert set(patched) == set(made) and patched["upstream"] == "127.0.0.1:10"


async def test_upstreams_over_the_api(
    api_client: httpx.AsyncClient, pair: tuple[Named, Named]
) -> None:
    """POST with upstreams shows upstream (the first) and upstreams; PATCH upstreams
    changes the list; a PATCH that sends back the first upstream alone keeps the list;
    another upstream alone replaces it."""
    a, b = pair
    body = {"name": "lb", "listen": "127.0.0.1:0", "upstreams": [a.address, b.address]}
    made = (await api_client.post("/proxies", json=body)).json()
    assert made["upstream"] == a.address and made["upstreams"] == [a.address, b.address]
    assert [await who(made["listen"]) for _ in range(2)] == ["a", "b"]
    swapped = await api_client.patch("/proxies/lb", json={"upstreams": [b.address, a.address]})
    assert swapped.json()["upstreams"] == [b.address, a.address]
    kept = (await api_client.patch("/proxies/lb", json={**swapped.json(), "upstreams": None}))
    assert kept.json()["upstreams"] == [b.address, a.address]
    one = (await api_client.patch("/proxies/lb", json={"upstream": a.address})).json()
    assert one["upstream"] == a.address and "upstreams" not in one
    bad = await api_client.patch("/proxies/lb", json={"upstreams": "127.0.0.1:1"})
    assert bad.status_code == 400 and "upstreams" in bad.json()["error"]

async def test_connection_listing_names_its_upstream(
    api_client: httpx.AsyncClient, pair: tuple[Named, Named]
) -> None:
    """Each listed connection names the upstream it was balanced to."""
    a, b = pair
    body = {"name": "lb", "listen": "127.0.0.1:0", "upstreams": [a.address, b.address]}
    host, port = (await api_client.post("/proxies", json=body)).json()["listen"].split(":")
    held = [await asyncio.open_connection(host, int(port)) for _ in range(2)]
    for reader, _ in held:
        await reader.readline()

    async def listed() -> list[str]:
        listing = (await api_client.get("/proxies/lb/connections")).json()
        return sorted(c["upstream"] for c in listing)

    assert await listed() == sorted([a.address, b.address])
    for _, writer in held:
        writer.close()
