"""One proxied connection: the client's socket, the upstream socket and a link each way.

A connection knows its proxy only as a ``ConnectionOwner``: what it reads (name,
upstream, toxics, clock, random source), the upstreams to try in order, and the hooks
it calls. A refused connect to one upstream tries the next before the client sees a
failure (nginx's ``proxy_next_upstream``); the client is closed only when all refused.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import socket
import struct
import time
from collections.abc import Mapping
from typing import Any, Protocol, cast

from wsctl.chaos.link import Link
from wsctl.chaos.model import Toxic, parse_address
from wsctl.clock import Clock

log = logging.getLogger(__name__)
_connection_ids = itertools.count(1)


class ConnectionOwner(Protocol):
    """What a connection needs from its proxy."""

    @property
    def name(self) -> str: ...

    @property
    def upstream(self) -> str: ...

    def candidates(self) -> list[str]:
        """The upstreams a new connection tries, in order."""

    def upstream_failed(self, address: str, exc: OSError) -> None: ...

    def upstream_reached(self, address: str) -> None: ...

    @property
    def toxics(self) -> Mapping[str, Toxic]: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def rng(self) -> random.Random: ...

    def admits(self) -> bool:
        """Whether a new client connection may open now (False: it is reset at once)."""

    def connection_opened(self, conn: Connection) -> None: ...

    def connection_closed(self, conn: Connection) -> None: ...

    def applied(self, fault_type: str) -> None:
        """Count one application of a fault of this type."""

    def track(self, task: asyncio.Task[Any]) -> None:
        """Own ``task``: it is awaited (or cancelled) when the proxy drains."""


class SideProtocol(asyncio.Protocol):
    """One socket of a connection; what it reads goes into ``inbound``."""

    def __init__(self, conn: Connection, name: str) -> None:
        self.conn = conn
        self.name = name
        self.inbound: Link | None = None  # link this socket feeds
        self.outbound: Link | None = None  # link that writes to this socket
        self.transport: asyncio.Transport | None = None
        self.early: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # cast, not isinstance: uvloop's TCPTransport is not an asyncio.Transport subclass
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        if self.name == "client":
            transport.pause_reading()  # until the upstream is connected
            self.conn.client_made(self, transport)

    def bind(self, inbound: Link, outbound: Link) -> None:
        self.inbound, self.outbound = inbound, outbound
        inbound.attach(self)

    def flush(self) -> None:
        """Pass on what arrived before ``bind`` (once the connection's toxics are on)."""
        early, self.early = self.early, []
        if self.inbound is not None:
            for data in early:
                self.inbound.feed(data)

    def data_received(self, data: bytes) -> None:  # replaced by Link.attach()
        # Before the links exist. uvloop starts reading after connection_made even when
        # it paused reading, and an upstream may speak first: keep the bytes, stop reading.
        self.early.append(data)
        if self.transport is not None:
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        if self.inbound is not None:
            self.inbound.feed_eof()
            return True  # keep the other direction open (half-close)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.side_lost(self, exc)

    def pause_writing(self) -> None:
        if self.outbound is not None:
            self.outbound.pause("dest")

    def resume_writing(self) -> None:
        if self.outbound is not None:
            self.outbound.resume("dest")


def _abort_with_rst(transport: asyncio.Transport | None) -> None:
    if transport is None or transport.is_closing() and transport.get_extra_info("socket") is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


class Connection:
    """A client connection and its upstream socket."""

    def __init__(self, proxy: ConnectionOwner) -> None:
        self.proxy = proxy
        self.id = str(next(_connection_ids))
        self.opened_at = time.time()
        self.client: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self.upstream_address: str | None = None  # the upstream connected to
        self.links: dict[str, Link] = {}
        self.toxics: dict[str, Toxic] = {}  # toxics for this connection only
        self.closed = asyncio.get_running_loop().create_future()
        self._lost: set[str] = set()
        self._finished: set[str] = set()
        self._connecting: asyncio.Task[None] | None = None
        self._client_addr = ""

    # -- lifecycle -------------------------------------------------------------------

    def client_made(self, side: SideProtocol, transport: asyncio.Transport) -> None:
        if not self.proxy.admits():
            _abort_with_rst(transport)  # connection_lost follows: nothing else to undo
            return
        self.client = transport
        peer = transport.get_extra_info("peername")
        self._client_addr = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.proxy.connection_opened(self)
        self._connecting = asyncio.get_running_loop().create_task(self._connect(side))
        self.proxy.track(self._connecting)

    async def _connect(self, client_side: SideProtocol) -> None:
        loop = asyncio.get_running_loop()
        proxy = self.proxy
        for address in proxy.candidates():
            host, port = parse_address(address, "upstream")
            try:
                transport, upstream_side = await loop.create_connection(
                    lambda: SideProtocol(self, "upstream"), host, port
                )
            except OSError as exc:
                proxy.upstream_failed(address, exc)
                continue
            proxy.upstream_reached(address)
            self.upstream_address = address
            break
        else:
            if self.client is not None:
                self.client.close()
            return
        self.upstream = transport
        if self.client is None or self.client.is_closing():
            transport.close()
            return
        clock, rng = self.proxy.clock, self.proxy.rng
        up = Link("upstream", self, self.client, transport, clock, rng)
        down = Link("downstream", self, transport, self.client, clock, rng)
        up.peer, down.peer = down, up
        self.links = {"upstream": up, "downstream": down}
        client_side.bind(up, down)
        upstream_side.bind(down, up)
        for toxic in [*self.proxy.toxics.values(), *self.toxics.values()]:
            self.apply(toxic)
        for side in (client_side, upstream_side):
            if side.early:
                side.flush()
                if side.transport is not None and not side.transport.is_closing():
                    side.transport.resume_reading()
        self.client.resume_reading()

    def apply(self, toxic: Toxic) -> None:
        """Start ``toxic`` on this connection, if its toxicity draw says so."""
        link = self.links.get(toxic.stream)
        if link is None or link.has(toxic.name):
            return
        if toxic.toxicity < 1.0 and self.proxy.rng.random() >= toxic.toxicity:
            return
        link.add(toxic.name, toxic.type, toxic.spec, toxic.config)

    async def unapply(self, toxic: Toxic) -> None:
        link = self.links.get(toxic.stream)
        if link is not None:
            await link.remove(toxic.name)

    def close(self) -> None:
        """Close both sockets gracefully (pending writes are flushed, then FIN)."""
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        for transport in (self.client, self.upstream):
            if transport is not None:
                transport.close()
        if self.upstream is None:
            self._done()

    def reset(self) -> None:
        """Abort both sockets with RST."""
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        _abort_with_rst(self.client)
        _abort_with_rst(self.upstream)
        if self.upstream is None:
            self._done()

    def link_finished(self, link: Link) -> None:
        self._finished.add(link.direction)
        if len(self._finished) == 2:
            self.close()

    def side_lost(self, side: SideProtocol, exc: Exception | None) -> None:
        self._lost.add(side.name)
        other = self.upstream if side.name == "client" else self.client
        if exc is not None:
            _abort_with_rst(other)  # a reset on one side is passed on as a reset
        elif other is not None:
            other.close()
        if side.name == "client" and self.upstream is None:
            if self._connecting is not None and not self._connecting.done():
                self._connecting.cancel()
            self._done()
        elif len(self._lost) == 2:
            self._done()

    def _done(self) -> None:
        if self.closed.done():
            return
        for link in self.links.values():
            link.cancel_all()
        self.closed.set_result(None)
        self.proxy.connection_closed(self)

    # -- owner hooks for links ---------------------------------------------------------

    def applied(self, fault_type: str) -> None:
        self.proxy.applied(fault_type)

    def track(self, task: asyncio.Task[Any]) -> None:
        self.proxy.track(task)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "client": self._client_addr,
            "upstream": self.upstream_address or self.proxy.upstream,
            "opened_at": self.opened_at,
            "bytes": {d: link.bytes for d, link in self.links.items()},
            "toxics": [t.to_json() for t in self.toxics.values()],
        }
