"""The proxy core: listeners, connections and the toxics applied to them.

``Chaos`` is the collection of proxies (what the HTTP API drives); a ``Proxy`` listens
and relays to its upstream; a ``Connection`` is one accepted client and its upstream
socket, with an ``upstream`` and a ``downstream`` ``Link``. Toxics carry Toxiproxy's
fields (name, type, stream, toxicity, attributes); toxicity is drawn once per
connection when the toxic reaches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import random
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any

from wsctl.chaos.connection import Connection, SideProtocol
from wsctl.chaos.model import STREAMS, ChaosError, Toxic, not_found, parse_address
from wsctl.chaos.schedule import Schedule, Timing
from wsctl.clock import Clock, MonotonicClock
from wsctl.errors import InvalidInput, PortInUse, WsctlError

log = logging.getLogger(__name__)

__all__ = ["STREAMS", "Chaos", "ChaosError", "Connection", "Proxy", "Toxic", "parse_address"]


@dataclass
class ProxyStats:
    """Counters read by ``/metrics`` at scrape time (no locks on the data path)."""

    connections_total: int = 0
    bytes_closed: dict[str, int] = dataclasses.field(
        default_factory=lambda: {"upstream": 0, "downstream": 0}
    )
    applied: dict[str, int] = dataclasses.field(default_factory=dict)


class Proxy:
    """A listener relaying every accepted connection to ``upstream``."""

    def __init__(self, chaos: Chaos, name: str, listen: str, upstream: str) -> None:
        self.chaos = chaos
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.toxics: dict[str, Toxic] = {}
        self.connections: dict[str, Connection] = {}
        self.stats = ProxyStats()
        self.schedules: dict[str, Schedule] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()  # connections' and faults' (not schedules')

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [t.to_json() for t in self.toxics.values()],
        }

    def bytes_total(self, direction: str) -> int:
        live = sum(c.links[direction].bytes for c in self.connections.values() if c.links)
        return self.stats.bytes_closed[direction] + live

    async def start(self) -> None:
        if self.enabled:
            return
        parse_address(self.upstream, "upstream")
        await self._serve(await self._bind(self.listen))

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
        sockname = server.sockets[0].getsockname()
        self.listen = f"{sockname[0]}:{sockname[1]}"  # port 0 becomes the real port
        self.enabled = True
        await server.start_serving()
        log.info("proxy %s listening on %s -> %s", self.name, self.listen, self.upstream)

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

    async def move(self, listen: str, upstream: str) -> None:
        """Listen on ``listen`` relaying to ``upstream``, closing live connections.

        If ``listen`` can't be had the proxy is left as it was, connections included."""
        async with self.handing_over():
            server = await self._bind(listen)
        await self.stop()
        self.upstream = upstream
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

    def _opened(self, conn: Connection) -> None:
        self.connections[conn.id] = conn
        self.stats.connections_total += 1

    def _closed(self, conn: Connection) -> None:
        self.connections.pop(conn.id, None)
        for direction, link in conn.links.items():
            self.stats.bytes_closed[direction] += link.bytes

    # -- toxics ------------------------------------------------------------------------

    def add_toxic(self, toxic: Toxic) -> Toxic:
        if toxic.name in self.toxics:
            raise ChaosError("toxic already exists", 409)
        self.toxics[toxic.name] = toxic
        for conn in list(self.connections.values()):
            conn.apply(toxic)
        return toxic

    async def remove_toxic(self, name: str) -> None:
        toxic = self.toxics.pop(name, None)
        if toxic is None:
            raise not_found("toxic")
        await asyncio.gather(*(c.unapply(toxic) for c in list(self.connections.values())))

    async def update_toxic(self, name: str, body: Any) -> Toxic:
        toxic = self.toxics.get(name)
        if toxic is None:
            raise not_found("toxic")
        new = toxic.updated(body)
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

    def add_schedule(self, body: Any) -> Schedule:
        """Body: ``{"toxic": {...}, "at": ..., "for": ..., "every": ..., "connection": id}``."""
        if not isinstance(body, dict):
            raise ChaosError("bad request body: expected a JSON object", 400)
        toxic = Toxic.from_json(body.get("toxic"))
        try:
            timing = Timing.from_json(body)
        except ValueError as exc:
            raise ChaosError(f"bad request body: {exc}", 400) from None
        connection = body.get("connection")
        if connection is not None:
            self.connection(str(connection))
            connection = str(connection)
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
            raise not_found("schedule")
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
            raise not_found("connection")
        return conn

    def add_connection_toxic(self, conn_id: str, toxic: Toxic) -> Toxic:
        conn = self.connection(conn_id)
        if toxic.name in conn.toxics or toxic.name in self.toxics:
            raise ChaosError("toxic already exists", 409)
        conn.toxics[toxic.name] = toxic
        conn.apply(toxic)
        return toxic

    async def remove_connection_toxic(self, conn_id: str, name: str) -> None:
        conn = self.connection(conn_id)
        toxic = conn.toxics.pop(name, None)
        if toxic is None:
            raise not_found("toxic")
        await conn.unapply(toxic)


class Chaos:
    """Every proxy of one wsctl chaos instance; the library behind the HTTP API."""

    def __init__(self, clock: Clock | None = None, rng: random.Random | None = None) -> None:
        self.clock: Clock = clock or MonotonicClock()
        self.random = rng or random.Random()
        self.proxies: dict[str, Proxy] = {}
        self._lock = asyncio.Lock()

    def get(self, name: str) -> Proxy:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise not_found("proxy")
        return proxy

    async def create(self, body: Any) -> Proxy:
        name, listen, upstream, enabled = _proxy_fields(body)
        async with self._lock:
            if name in self.proxies:
                raise ChaosError("proxy already exists", 409)
            proxy = Proxy(self, name, listen, upstream)
            if enabled:
                await _start(proxy)
            self.proxies[name] = proxy
            return proxy

    async def update(self, name: str, body: Any) -> Proxy:
        proxy = self.get(name)
        if not isinstance(body, dict):
            raise ChaosError("bad request body: expected a JSON object", 400)
        listen = body.get("listen", proxy.listen) or proxy.listen
        upstream = body.get("upstream", proxy.upstream) or proxy.upstream
        enabled = body.get("enabled", proxy.enabled)
        if not isinstance(enabled, bool):
            raise ChaosError("bad request body: enabled must be true or false", 400)
        for field, value in (("listen", listen), ("upstream", upstream)):
            _check_address(field, value)
        async with self._lock:
            if not enabled:
                await proxy.stop()
                proxy.listen, proxy.upstream = listen, upstream
            elif listen != proxy.listen or upstream != proxy.upstream or not proxy.enabled:
                await _chaos_errors(proxy.move(listen, upstream))
            return proxy

    async def delete(self, name: str) -> None:
        async with self._lock:
            proxy = self.get(name)
            await proxy.cancel_schedules()
            await proxy.stop()
            del self.proxies[name]

    async def populate(self, body: Any) -> list[Proxy]:
        """Create or replace proxies; ones already matching listen and upstream are kept."""
        if not isinstance(body, list):
            raise ChaosError("bad request body: expected a JSON array of proxies", 400)
        wanted = []
        seen: set[str] = set()
        for i, item in enumerate(body, 1):
            try:
                fields = _proxy_fields(item)
            except ChaosError as exc:
                raise ChaosError(f"{exc.message} at proxy {i}", exc.status) from None
            if fields[0] in seen:
                raise ChaosError(f"duplicate proxy name {fields[0]!r}", 400)
            seen.add(fields[0])
            wanted.append(fields)
        result = []
        async with self._lock:
            for name, listen, upstream, enabled in wanted:
                existing = self.proxies.get(name)
                if existing is not None:
                    if _same(existing.listen, listen) and existing.upstream == upstream:
                        if enabled and not existing.enabled:
                            await _start(existing)
                        result.append(existing)
                        continue
                proxy = Proxy(self, name, listen, upstream)
                if existing is None:
                    if enabled:
                        await _start(proxy)
                else:
                    async with existing.handing_over():
                        if enabled:
                            await _start(proxy)
                    await existing.cancel_schedules()
                    await existing.stop()
                self.proxies[name] = proxy
                result.append(proxy)
        return result

    async def reset(self) -> None:
        """Enable every proxy and remove every toxic (Toxiproxy's ``POST /reset``).

        A proxy that can't listen stays disabled; the rest is still done, then the error."""
        failed: list[ChaosError] = []
        async with self._lock:
            for proxy in self.proxies.values():
                await proxy.reset_toxics()
                try:
                    await _start(proxy)
                except ChaosError as exc:
                    failed.append(exc)
        if failed:
            message = "; ".join(exc.message for exc in failed)
            raise ChaosError(message, failed[0].status, kind=failed[0].kind)

    async def close(self) -> None:
        """Stop every proxy and close every connection."""
        async with self._lock:
            for proxy in self.proxies.values():
                await proxy.cancel_schedules()
                await proxy.stop()


def _same(current: str, wanted: str) -> bool:
    """Does a running proxy's listen address satisfy a requested one (port 0 = any)?"""
    if current == wanted:
        return True
    try:
        (h1, p1), (h2, p2) = parse_address(current, "listen"), parse_address(wanted, "listen")
    except InvalidInput:
        return False
    return h1 == h2 and (p1 == p2 or p2 == 0)


def _check_address(field: str, value: Any) -> None:
    if not isinstance(value, str):
        raise ChaosError(f"bad request body: {field} must be a string", 400)
    try:
        parse_address(value, field)
    except InvalidInput as exc:
        raise ChaosError(f"bad request body: {exc}", 400) from None


def _proxy_fields(body: Any) -> tuple[str, str, str, bool]:
    if not isinstance(body, dict):
        raise ChaosError("bad request body: expected a JSON object", 400)
    name = body.get("name")
    if not name or not isinstance(name, str):
        raise ChaosError("missing required field: name", 400)
    upstream = body.get("upstream")
    if not upstream or not isinstance(upstream, str):
        raise ChaosError("missing required field: upstream", 400)
    listen = body.get("listen") or "127.0.0.1:0"
    enabled = body.get("enabled", True)
    if enabled is None:
        enabled = True
    if not isinstance(enabled, bool):
        raise ChaosError("bad request body: enabled must be true or false", 400)
    _check_address("listen", listen)
    _check_address("upstream", upstream)
    return name, listen, upstream, enabled


async def _start(proxy: Proxy) -> None:
    await _chaos_errors(proxy.start())


async def _chaos_errors(step: Awaitable[None]) -> None:
    """Await a proxy (re)start, its errors as the API's: 409 port in use, 400 otherwise."""
    try:
        await step
    except PortInUse as exc:
        raise ChaosError(str(exc), 409, kind="port_in_use") from None
    except InvalidInput as exc:
        raise ChaosError(str(exc), 400) from None
