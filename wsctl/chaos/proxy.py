"""The proxy core: listeners, connections and the toxics applied to them.

``Chaos`` is the collection of proxies (what the HTTP API drives); a ``Proxy`` listens
and relays to its upstream, or balances over several (round robin; an upstream that
refuses a connection is tried after the others for ``FAIL_TIMEOUT``, nginx's
``fail_timeout``, and the next one is tried at once); a ``Connection`` is one accepted
client and its upstream socket, with an ``upstream`` and a ``downstream`` ``Link``.
Toxics carry Toxiproxy's fields (name, type, stream, toxicity, attributes); toxicity is
drawn once per connection when the toxic reaches it.

Arguments are typed (``wsctl.chaos.model``); refusals are ``WsctlError``s: InvalidInput
for bad arguments, NotFound, Conflict for a name taken, PortInUse for a listen address.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import ipaddress
import logging
import math
import random
import socket
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from wsctl.chaos.connection import Connection, SideProtocol
from wsctl.chaos.model import (
    DEFAULT_LISTEN,
    STREAMS,
    ProxySpec,
    Toxic,
    parse_address,
    upstreams_after,
)
from wsctl.chaos.schedule import Schedule, Timing
from wsctl.clock import Clock, MonotonicClock
from wsctl.errors import Conflict, InvalidInput, NotFound, PortInUse, ProxyLoop, WsctlError

log = logging.getLogger(__name__)

__all__ = ["STREAMS", "Chaos", "Connection", "Proxy", "ProxySpec", "Toxic", "parse_address"]

FAIL_TIMEOUT = 10.0
"""Seconds an upstream that refused a connection is tried only after the others (nginx's
``fail_timeout`` default; with ``max_fails=1`` one refusal is enough, as here)."""


@dataclass
class ProxyStats:
    """Counters read by ``/metrics`` at scrape time (no locks on the data path)."""

    connections_total: int = 0
    refused_total: int = 0  # client connections reset because the proxy was at its cap
    bytes_closed: dict[str, int] = dataclasses.field(
        default_factory=lambda: {"upstream": 0, "downstream": 0}
    )
    applied: dict[str, int] = dataclasses.field(default_factory=dict)
    upstream_connections: dict[str, int] = dataclasses.field(default_factory=dict)
    upstream_failures: dict[str, int] = dataclasses.field(default_factory=dict)


class Proxy:
    """A listener relaying every accepted connection to one of ``upstreams``."""

    def __init__(self, chaos: Chaos, name: str, listen: str, upstreams: Sequence[str]) -> None:
        self.chaos = chaos
        self.name = name
        self.listen = listen
        self.upstreams: tuple[str, ...] = tuple(upstreams)
        self._turn = 0  # round robin: the upstream a new connection tries first
        self._failed_until: dict[str, float] = {}  # upstream -> end of its FAIL_TIMEOUT
        self.enabled = False
        self.toxics: dict[str, Toxic] = {}
        self.connections: dict[str, Connection] = {}
        self.stats = ProxyStats()
        self.schedules: dict[str, Schedule] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()  # connections' and faults' (not schedules')
        self._refusal_logged = float("-inf")

    @property
    def upstream(self) -> str:
        """The first upstream (Toxiproxy's one ``upstream``)."""
        return self.upstreams[0]

    def to_json(self) -> dict[str, Any]:
        """Toxiproxy's proxy object; ``upstreams`` only when there are several."""
        body: dict[str, Any] = {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [t.to_json() for t in self.toxics.values()],
        }
        if len(self.upstreams) > 1:
            body["upstreams"] = list(self.upstreams)
        return body

    # -- balancing -----------------------------------------------------------------------

    def candidates(self) -> list[str]:
        """The upstreams a new connection tries, in order: round robin from the next one,
        those that refused within ``FAIL_TIMEOUT`` last (all are tried, as a last resort)."""
        upstreams = self.upstreams
        if len(upstreams) == 1:
            return [upstreams[0]]
        start = self._turn % len(upstreams)
        order = [*upstreams[start:], *upstreams[:start]]
        now = self.clock.now()
        failed = self._failed_until
        fresh = [u for u in order if failed.get(u, -math.inf) <= now]
        order = fresh + [u for u in order if u not in fresh]
        # the turn passes the one chosen: skipping a failed upstream does not give its
        # turn to the next one as well (the others keep an even share)
        self._turn = upstreams.index(order[0]) + 1
        return order

    def upstream_failed(self, address: str, exc: OSError) -> None:
        """A connect to ``address`` failed: try it after the others for ``FAIL_TIMEOUT``."""
        self._failed_until[address] = self.clock.now() + FAIL_TIMEOUT
        failures = self.stats.upstream_failures
        failures[address] = failures.get(address, 0) + 1
        log.info("proxy %s: upstream %s unreachable: %s", self.name, address, exc)

    def upstream_reached(self, address: str) -> None:
        self._failed_until.pop(address, None)
        reached = self.stats.upstream_connections
        reached[address] = reached.get(address, 0) + 1

    def set_upstreams(self, upstreams: Sequence[str]) -> None:
        self.upstreams = tuple(upstreams)
        self._failed_until = {
            u: t for u, t in self._failed_until.items() if u in self.upstreams}

    async def rebalance(self, upstreams: Sequence[str]) -> None:
        """Balance new connections over ``upstreams``; live connections to an upstream no
        longer listed are closed, the others and the listener are kept. ProxyLoop (nothing
        changed) if one of them leads back to this proxy."""
        await self.chaos.refuse_loop(self.name, self.listen, upstreams)
        self.set_upstreams(upstreams)
        for conn in list(self.connections.values()):
            if conn.upstream_address is not None and conn.upstream_address not in upstreams:
                conn.close()

    @property
    def clock(self) -> Clock:
        return self.chaos.clock

    @property
    def rng(self) -> random.Random:
        return self.chaos.random

    def bytes_total(self, direction: str) -> int:
        live = sum(c.links[direction].bytes for c in self.connections.values() if c.links)
        return self.stats.bytes_closed[direction] + live

    async def start(self) -> None:
        if self.enabled:
            return
        for upstream in self.upstreams:
            parse_address(upstream, "upstream")
        await self._serve(await self._bind_checked(self.listen, self.upstreams))

    async def _bind_checked(self, listen: str, upstreams: Sequence[str]) -> asyncio.Server:
        """``_bind``, then ProxyLoop (the listener closed again) if one of ``upstreams``
        leads back to the address bound."""
        server = await self._bind(listen)
        try:
            await self.chaos.refuse_loop(self.name, _bound_address(server), upstreams)
        except BaseException:
            server.close()
            raise
        return server

    async def _bind(self, listen: str) -> asyncio.Server:
        """A listener on ``listen``, not accepting yet; PortInUse if the address is taken."""
        host, port = parse_address(listen, "listen address")
        loop = asyncio.get_running_loop()
        try:
            return await loop.create_server(
                lambda: SideProtocol(Connection(self), "client"),
                host,
                port,
                reuse_address=True,
                start_serving=False,
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(f"listen address {listen} is already in use") from None
            raise InvalidInput(f"can't listen on {listen}: {exc.strerror or exc}") from None

    async def _serve(self, server: asyncio.Server) -> None:
        self._server = server
        self.listen = _bound_address(server)  # port 0 becomes the real port
        self.enabled = True
        await server.start_serving()
        log.info("proxy %s listening on %s -> %s", self.name, self.listen,
                 ", ".join(self.upstreams))

    async def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def stop(self) -> None:
        """Stop listening and close every connection (Toxiproxy's ``enabled: false``).

        Toxics and schedules stay: a schedule keeps running while the proxy is down."""
        self.enabled = False
        await self._close_listener()
        for conn in list(self.connections.values()):
            conn.close()
        await self.drain()

    async def move(self, listen: str, upstreams: Sequence[str]) -> None:
        """Listen on ``listen`` relaying to ``upstreams``, closing live connections.

        If ``listen`` can't be had the proxy is left as it was, connections included."""
        async with self.handing_over():
            server = await self._bind_checked(listen, upstreams)
        await self.stop()
        self.set_upstreams(upstreams)
        await self._serve(server)

    @contextlib.asynccontextmanager
    async def handing_over(self) -> AsyncIterator[None]:
        """Release the listen port for the block (which may take it); if the block fails,
        listen where it listened before. Connections are not touched."""
        old = self.listen if self._server is not None else None
        await self._close_listener()
        try:
            yield
        except BaseException:
            if old is not None:
                try:
                    await self._serve(await self._bind(old))
                except WsctlError:  # someone took the port in that instant: the proxy is down
                    await self.stop()
            raise

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait until connections and fault tasks are gone (bounded)."""
        pending = [c.closed for c in self.connections.values()] + list(self._tasks)
        if pending:
            done, still = await asyncio.wait(pending, timeout=timeout)
            for conn in list(self.connections.values()):
                conn.reset()
            for task in self._tasks:
                task.cancel()
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=1.0)

    def track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._untrack)

    def _untrack(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._report(task)

    def _report(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("proxy %s task failed", self.name, exc_info=task.exception())

    def admits(self) -> bool:
        """Below the chaos server's per-proxy connection cap? A refusal is counted and
        logged (at most once a second: a loop would refuse thousands a second)."""
        cap = self.chaos.max_connections
        if not cap or len(self.connections) < cap:
            return True
        self.stats.refused_total += 1
        now = self.clock.now()
        if now - self._refusal_logged >= 1.0:
            self._refusal_logged = now
            log.warning("proxy %s at its cap of %d connections: new ones are reset "
                        "(%d so far)", self.name, cap, self.stats.refused_total)
        return False

    def connection_opened(self, conn: Connection) -> None:
        self.connections[conn.id] = conn
        self.stats.connections_total += 1

    def connection_closed(self, conn: Connection) -> None:
        self.connections.pop(conn.id, None)
        for direction, link in conn.links.items():
            self.stats.bytes_closed[direction] += link.bytes

    def applied(self, fault_type: str) -> None:
        self.stats.applied[fault_type] = self.stats.applied.get(fault_type, 0) + 1

    # -- toxics ------------------------------------------------------------------------

    def add_toxic(self, toxic: Toxic) -> Toxic:
        """Add ``toxic``; live connections get it at once. Conflict if the name is taken."""
        if toxic.name in self.toxics:
            raise Conflict("toxic already exists")
        self.toxics[toxic.name] = toxic
        for conn in list(self.connections.values()):
            conn.apply(toxic)
        return toxic

    async def remove_toxic(self, name: str) -> None:
        """Remove a toxic; what it holds is forwarded. NotFound if there is none so named."""
        toxic = self.toxics.pop(name, None)
        if toxic is None:
            raise NotFound("toxic not found")
        await asyncio.gather(*(c.unapply(toxic) for c in list(self.connections.values())))

    def toxic(self, name: str) -> Toxic:
        toxic = self.toxics.get(name)
        if toxic is None:
            raise NotFound("toxic not found")
        return toxic

    async def update_toxic(
        self, name: str, *, config: Any = None, toxicity: float | None = None
    ) -> Toxic:
        """Replace a toxic's config and/or toxicity (None: keep); live connections restart it."""
        toxic = self.toxic(name)
        new = dataclasses.replace(
            toxic,
            config=toxic.config if config is None else config,
            toxicity=toxic.toxicity if toxicity is None else toxicity,
        )
        self.toxics[name] = new
        for conn in list(self.connections.values()):
            await conn.unapply(toxic)
            conn.apply(new)
        return new

    async def reset_toxics(self) -> None:
        await self.cancel_schedules()
        for name in list(self.toxics):
            await self.remove_toxic(name)
        for conn in list(self.connections.values()):
            for toxic in list(conn.toxics.values()):
                await conn.unapply(toxic)
            conn.toxics.clear()

    # -- schedules ---------------------------------------------------------------------

    def add_schedule(
        self, toxic: Toxic, timing: Timing, connection: str | None = None
    ) -> Schedule:
        """Switch ``toxic`` on and off by ``timing``, on the proxy or on one connection."""
        if connection is not None:
            self.connection(connection)
        schedule = Schedule(self, toxic, timing, connection)
        self.schedules[schedule.id] = schedule
        schedule.start(self.chaos.clock)
        assert schedule.task is not None
        # not tracked: a schedule outlives connections and a disable; cancel_schedules ends it
        schedule.task.add_done_callback(self._report)
        return schedule

    def schedule(self, schedule_id: str) -> Schedule:
        schedule = self.schedules.get(schedule_id)
        if schedule is None:
            raise NotFound("schedule not found")
        return schedule

    async def remove_schedule(self, schedule_id: str) -> None:
        schedule = self.schedule(schedule_id)
        await schedule.cancel()
        del self.schedules[schedule_id]

    async def cancel_schedules(self) -> None:
        for schedule_id in list(self.schedules):
            await self.remove_schedule(schedule_id)

    # -- single connections --------------------------------------------------------

    def connection(self, conn_id: str) -> Connection:
        conn = self.connections.get(conn_id)
        if conn is None:
            raise NotFound("connection not found")
        return conn

    def add_connection_toxic(self, conn_id: str, toxic: Toxic) -> Toxic:
        conn = self.connection(conn_id)
        if toxic.name in conn.toxics or toxic.name in self.toxics:
            raise Conflict("toxic already exists")
        conn.toxics[toxic.name] = toxic
        conn.apply(toxic)
        return toxic

    async def remove_connection_toxic(self, conn_id: str, name: str) -> None:
        conn = self.connection(conn_id)
        toxic = conn.toxics.pop(name, None)
        if toxic is None:
            raise NotFound("toxic not found")
        await conn.unapply(toxic)


class Chaos:
    """Every proxy of one wsctl chaos instance; the library behind the HTTP API.

    ``max_connections`` caps each proxy's live connections (0 = no cap): past it, a new
    client connection is reset at once, so no loop (through another proxy or outside
    program) can take every file descriptor of the process."""

    def __init__(self, clock: Clock | None = None, rng: random.Random | None = None,
                 max_connections: int = 0) -> None:
        self.clock: Clock = clock or MonotonicClock()
        self.random = rng or random.Random()
        self.max_connections = max_connections
        self.proxies: dict[str, Proxy] = {}
        self._lock = asyncio.Lock()

    def get(self, name: str) -> Proxy:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise NotFound("proxy not found")
        return proxy

    async def create(
        self, *, name: str, upstream: str = "", listen: str = DEFAULT_LISTEN,
        enabled: bool = True, upstreams: Sequence[str] = (),
    ) -> Proxy:
        """A new proxy relaying to ``upstream``, or balancing over ``upstreams``; listening
        unless ``enabled`` is false. Conflict if the name is taken."""
        spec = ProxySpec(name, upstream, listen, enabled, tuple(upstreams))
        async with self._lock:
            if name in self.proxies:
                raise Conflict("proxy already exists")
            proxy = Proxy(self, spec.name, spec.listen, spec.upstreams)
            if enabled:
                await proxy.start()
            self.proxies[name] = proxy
            return proxy

    async def update(
        self,
        name: str,
        *,
        listen: str | None = None,
        upstream: str | None = None,
        enabled: bool | None = None,
        upstreams: Sequence[str] | None = None,
    ) -> Proxy:
        """Change a proxy's addresses or state (None: keep); disabling closes connections.

        ``upstreams`` replaces the list; ``upstream`` alone replaces it with that one,
        unless it is the first already (``upstreams_after``). A new listen address (or
        enabling) restarts the listener and closes every connection; a new list alone
        keeps the listener and closes only connections to upstreams no longer listed.
        If the new listen address can't be had the proxy is left as it was."""
        proxy = self.get(name)
        spec = ProxySpec(
            name,
            listen=proxy.listen if listen is None else listen,
            enabled=proxy.enabled if enabled is None else enabled,
            upstreams=tuple(upstreams_after(proxy.upstreams, upstream, upstreams)),
        )
        async with self._lock:
            if not spec.enabled:
                await proxy.stop()
                proxy.listen = spec.listen
                proxy.set_upstreams(spec.upstreams)
            elif spec.listen != proxy.listen or not proxy.enabled:
                await proxy.move(spec.listen, spec.upstreams)
            elif spec.upstreams != proxy.upstreams:
                await proxy.rebalance(spec.upstreams)
            return proxy

    async def refuse_loop(self, name: str, listen: str, upstreams: Sequence[str]) -> None:
        """ProxyLoop if a proxy ``name`` listening on ``listen`` and relaying to
        ``upstreams`` could relay to itself, directly or through this instance's other
        proxies (their settings, enabled or not, with ``name``'s replaced; every upstream
        of every proxy on the way is followed)."""
        routes = {p.name: (p.listen, p.upstreams) for p in self.proxies.values()}
        routes[name] = (listen, tuple(upstreams))
        listens = {n: await _endpoints(route[0]) for n, route in routes.items()}
        # depth first over (first upstream of name, address, path of proxies so far)
        stack = [(upstream, upstream, [name]) for upstream in reversed(upstreams)]
        explored: set[str] = set()
        while stack:
            first, current, path = stack.pop()
            reached = await _endpoints(current)
            for hop in routes:
                if not _reaches(listens[hop], reached):
                    continue
                if hop == name:
                    raise ProxyLoop(
                        f"proxy {name!r}: upstream {first} leads back to its own listen "
                        f"address {listen} ({' -> '.join([*path, hop])}); every connection "
                        "would open another until no file descriptor is left")
                if hop not in explored:
                    explored.add(hop)
                    stack.extend((first, nxt, [*path, hop]) for nxt in reversed(routes[hop][1]))

    async def delete(self, name: str) -> None:
        async with self._lock:
            proxy = self.get(name)
            await proxy.cancel_schedules()
            await proxy.stop()
            del self.proxies[name]

    async def populate(self, specs: Iterable[ProxySpec]) -> list[Proxy]:
        """Create or replace proxies; ones already matching listen and upstream are kept.

        Applied in order; the first that can't listen stops the rest (PortInUse)."""
        wanted = list(specs)
        duplicate = _first_duplicate(spec.name for spec in wanted)
        if duplicate is not None:
            raise InvalidInput(f"duplicate proxy name {duplicate!r}")
        result = []
        async with self._lock:
            for spec in wanted:
                existing = self.proxies.get(spec.name)
                if existing is not None:
                    if (_same(existing.listen, spec.listen)
                            and existing.upstreams == spec.upstreams):
                        if spec.enabled and not existing.enabled:
                            await existing.start()
                        result.append(existing)
                        continue
                proxy = Proxy(self, spec.name, spec.listen, spec.upstreams)
                if existing is None:
                    if spec.enabled:
                        await proxy.start()
                else:
                    async with existing.handing_over():
                        if spec.enabled:
                            await proxy.start()
                    await existing.cancel_schedules()
                    await existing.stop()
                self.proxies[spec.name] = proxy
                result.append(proxy)
        return result

    async def reset(self) -> None:
        """Enable every proxy and remove every toxic (Toxiproxy's ``POST /reset``).

        A proxy that can't listen stays disabled; the rest is still done, then the error
        (of the first one's class, naming every one)."""
        failed: list[WsctlError] = []
        async with self._lock:
            for proxy in self.proxies.values():
                await proxy.reset_toxics()
                try:
                    await proxy.start()
                except WsctlError as exc:
                    failed.append(exc)
        if failed:
            raise type(failed[0])("; ".join(exc.message for exc in failed))

    async def close(self) -> None:
        """Stop every proxy and close every connection."""
        async with self._lock:
            for proxy in self.proxies.values():
                await proxy.cancel_schedules()
                await proxy.stop()


def _bound_address(server: asyncio.Server) -> str:
    sockname = server.sockets[0].getsockname()
    return f"{sockname[0]}:{sockname[1]}"


async def _endpoints(address: str) -> set[tuple[str, int]]:
    """The IP addresses and port ``host:port`` names (none if it does not resolve in 2 s:
    a relay there could not connect anyway)."""
    try:
        host, port = parse_address(address, "address")
    except InvalidInput:
        return set()
    if port == 0:
        return set()
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), 2.0)
    except (OSError, TimeoutError):
        return set()
    return {(str(info[4][0]), port) for info in infos}


def _reaches(listening: set[tuple[str, int]], target: set[tuple[str, int]]) -> bool:
    """Would a connection to one of ``target`` arrive at a listener on ``listening``? A
    wildcard listener (0.0.0.0, ::) takes connections to every address of this machine."""
    for host, port in listening:
        for to_host, to_port in target:
            if port != to_port:
                continue
            if host == to_host or _wildcard(host) and _local(to_host):
                return True
    return False


def _wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _local(host: str) -> bool:
    """Is ``host`` an address of this machine? (Loopback, unspecified, or one it can bind.)"""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if ip.is_loopback or ip.is_unspecified:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((host, 0))
    except OSError:
        return False
    return True


def _same(current: str, wanted: str) -> bool:
    """Does a running proxy's listen address satisfy a requested one (port 0 = any)?"""
    if current == wanted:
        return True
    try:
        (h1, p1), (h2, p2) = parse_address(current, "listen"), parse_address(wanted, "listen")
    except InvalidInput:
        return False
    return h1 == h2 and (p1 == p2 or p2 == 0)


def _first_duplicate(names: Iterable[str]) -> str | None:
    """The first name seen twice, if any."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None
