"""What a scenario runs against: the server, the chaos proxy in front of it, the probes.

``Stage.open()`` starts the server — the embedded reference server, or the team's
``command`` (its output in ``service_log``) — as a child process (or takes the scenario's
``url``), an in-process chaos proxy when ``proxy: true``, and the probe worker processes
when the fleet is split over several (``probes.processes``; ``wsctl.probe.workers``);
``start_probes()`` starts the fleet pointed at the proxy or the server; ``close()`` stops
probes, workers, proxy and server whatever happened and never raises. The timeline's
actions (``actions.py``) act on ``server``, ``proxy`` and ``fleet``.

With ``server.instances: N`` > 1 the reference server runs as N processes, one after the
other on ports of their own (``server`` is then a ``ServerGroup``), and the proxy
balances over them. ``store: redis`` first starts a private redis-server for the run
(``redis_server.py``) in the scratch directory; it is stopped after the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from wsctl.chaos.proxy import Chaos, Proxy
from wsctl.clock import Clock, MonotonicClock
from wsctl.errors import InvalidInput, WsctlError
from wsctl.metrics import Result
from wsctl.probe.driver import RecordSink, websockets_connector
from wsctl.probe.fleet import Fleet
from wsctl.probe.machine import ProbeConfig
from wsctl.probe.workers import AnyFleet, ConnectorSpec, WorkerFleet, resolve_processes
from wsctl.scenario.model import REDIS, Scenario
from wsctl.scenario.redis_server import RedisServer
from wsctl.scenario.server_process import ServerGroup, ServerProcess
from wsctl.scenario.service import ServiceProcess

log = logging.getLogger(__name__)

STOP_GRACE = 5.0  # probes closing politely at the end before they are cancelled


def probe_url(url: str, address: str | None) -> str:
    """The base URL the probes use: the server's ``url``, or with the proxy's ``address``
    (host:port) in front of it."""
    if address is None:
        return url
    parts = urlsplit(url.replace("{stream}", "__stream__"))
    return urlunsplit(parts._replace(netloc=address)).replace("__stream__", "{stream}")


def _host_port(url: str) -> str:
    """``host:port`` of a ws:// or wss:// URL (what the proxy forwards to)."""
    parts = urlsplit(url.replace("{stream}", "x"))
    default = 443 if parts.scheme == "wss" else 80
    return f"{parts.hostname}:{parts.port or default}"


def describe(exc: BaseException) -> str:
    """One line for an exception (the first leaf of an exception group)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


class Stage:
    """The server (None: a ``url`` server wsctl does not own), the proxy (None without
    ``proxy: true``) and the fleet (None until ``start_probes``) of one scenario. A
    ``command`` server's output goes to ``service_log`` (default: the scratch dir)."""

    def __init__(self, scenario: Scenario, scratch: Path, clock: Clock, *,
                 service_log: Path | None = None) -> None:
        self.scenario = scenario
        self.scratch = scratch
        self.clock = clock
        self.service_log = service_log or scratch / "service.log"
        self.server: ServiceProcess | ServerGroup | None = None
        self.redis: RedisServer | None = None  # store: redis's own redis-server
        self.chaos: Chaos | None = None
        self.proxy: Proxy | None = None
        self.fleet: AnyFleet | None = None
        self.workers: WorkerFleet | None = None  # the fleet when split over processes
        self.target = scenario.server.url or ""  # what the probes test (the server's URL)
        self.rss_before: int | None = None  # the server's RSS before any probe
        self.failures: list[str] = []  # what broke inside (a probe task that raised)
        self._fleet_task: asyncio.Task[Result] | None = None

    async def open(self) -> None:
        """Start the server (embedded or ``command``) and the proxy (``proxy: true``)."""
        spec = self.scenario.server
        upstreams: list[str] = []
        if spec.owned:
            if spec.embedded:
                members = await self._start_reference()
                upstreams = [_host_port(member.url) for member in members]
            else:
                self.server = ServiceProcess(spec.service(), self.service_log)
                await self.server.start()
            assert self.server is not None
            self.rss_before = self.server.rss()
            self.target = self.server.url
        upstreams = upstreams or [_host_port(self.target)]
        if self.scenario.proxy:
            self.chaos = Chaos()
            self.proxy = await self._create_proxy(self.chaos, upstreams)
        await self._spawn_workers()

    async def _start_reference(self) -> list[ServerProcess]:
        """The reference server's instances, started one after the other (after the
        redis-server of ``store: redis``); ``server`` is set first, so that ``close()``
        stops those that started when another will not."""
        spec = self.scenario.server
        args = spec.args()
        if spec.own_redis:
            self.redis = RedisServer(self.scratch / "redis")
            self.redis.spawn()  # in this thread: it dies with the thread that forked it
            await asyncio.to_thread(self.redis.ready)
            args = [arg.replace(REDIS, self.redis.url) for arg in args]
        if spec.instances == 1:
            members = [ServerProcess(spec.profile, args, self.scratch)]
            self.server = members[0]
        else:
            members = [ServerProcess(spec.profile, args, self.scratch, instance=index)
                       for index in range(spec.instances)]
            self.server = ServerGroup(members)
        for member in members:
            await member.start()
        return members

    async def _create_proxy(self, chaos: Chaos, upstreams: list[str]) -> Proxy:
        try:
            return await chaos.create(name=self.scenario.name, listen="127.0.0.1:0",
                                      upstream=upstreams[0], upstreams=upstreams)
        except WsctlError as exc:
            raise InvalidInput(f"chaos proxy: {exc.message}") from None

    def _probe_config(self) -> ProbeConfig:
        base = probe_url(self.target, self.proxy.listen if self.proxy else None)
        return self.scenario.probes.probe_config(base, self.scenario.duration)

    async def _spawn_workers(self) -> None:
        """Start the probe worker processes now, so that they are ready when the
        scenario's time starts; none when the fleet runs in this process (one process,
        or a clock other than the system's monotonic one, which workers cannot share).
        The default counts the probes ``probes.add`` will start too."""
        probes = self.scenario.probes
        storms = sum(getattr(step, "count", 0) for step in self.scenario.timeline
                     if step.do == "probes.add")
        processes = resolve_processes(probes.count, probes.processes, added=storms)
        if processes == 1 or not isinstance(self.clock, MonotonicClock):
            return
        self.workers = WorkerFleet(
            self._probe_config(), probes.count, processes, seed=self.scenario.seed,
            spawn_rate=probes.spawn_rate, connector=ConnectorSpec(deflate=probes.deflate),
            watch_parent="chaos proxy and scenario runner" if self.proxy else None)
        await self.workers.spawn()

    def start_probes(self, sink: RecordSink) -> AnyFleet:
        """Start the fleet (through the proxy when there is one); records go to ``sink``."""
        probes = self.scenario.probes
        fleet: AnyFleet
        if self.workers is not None:
            fleet = self.workers
            fleet.sink = sink
        else:
            fleet = Fleet(self._probe_config(), probes.count, seed=self.scenario.seed,
                          clock=self.clock, sink=sink,
                          connector=websockets_connector(deflate=probes.deflate),
                          spawn_rate=probes.spawn_rate, tune_gc=False)
        self.fleet = fleet
        self._fleet_task = asyncio.create_task(fleet.run())
        return fleet

    async def close(self, *, early: bool, others: list[asyncio.Task[None]]) -> None:
        """Stop probes (at once when ``early``, else they are stopping at their duration),
        proxy and server; ``others`` (the timeline) are awaited too. Tasks that raised
        go to ``failures``. Never raises."""
        fleet, task = self.fleet, self._fleet_task
        if fleet is not None and task is not None:
            if early:
                fleet.stop()
            _, pending = await asyncio.wait([task], timeout=STOP_GRACE)
            if pending:
                fleet.stop()
                _, pending = await asyncio.wait(pending, timeout=STOP_GRACE)
            for late in pending:
                late.cancel()
        every: list[asyncio.Task[Any]] = [*([task] if task else []), *others]
        for result in await asyncio.gather(*every, return_exceptions=True):
            if isinstance(result, BaseException) and \
                    not isinstance(result, asyncio.CancelledError):
                log.error("scenario task failed", exc_info=result)
                self.failures.append(describe(result))
        if self.workers is not None:
            await self.workers.close()
        if self.chaos is not None:
            with contextlib.suppress(Exception):
                await self.chaos.close()
        if self.server is not None:
            self.server.close()
        if self.redis is not None:
            self.redis.stop()
