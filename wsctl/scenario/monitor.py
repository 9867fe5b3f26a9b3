"""Watching a scenario while it runs: progress, the series, the server's steady state.

Until the scenario's end (or Ctrl-C, or a failed action) a ``Monitor`` updates the
progress display ~4x a second and, every second, closes a row of the series (with the
server's RSS when wsctl owns the server) and scrapes the server's ``/metrics`` so its
counters stay current. Until the first fault it also looks for steady state — every
probe open and nothing changed for ``SETTLE`` seconds — and notes the server's RSS and
connections then (``Steady``: what ``server.rss_per_connection`` is made of). Just
before the first fault, the figures of that moment are noted if steady state was never
reached. Every instant comes from the scenario's clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Protocol

from wsctl.clock import Clock
from wsctl.probe.workers import AnyFleet
from wsctl.results.outcome import ScenarioOutcome
from wsctl.scenario.sampler import Sampler
from wsctl.scenario.server_process import Scrape, Scraped, ServerGroup
from wsctl.scenario.service import ServiceProcess
from wsctl.scenario.timeline import Action

TICK = 0.25  # progress updates and checks; the series is sampled every SAMPLE seconds
SAMPLE = 1.0
SETTLE = 2.0  # steady state: every probe open and nothing changed for this long
FRESH = 1.5  # a /metrics scrape younger than this is recent enough before a kill
COUNTERS_SHOWN = ("messages.received", "messages.lost", "connections.lost",
                  "probes.gave_up", "resyncs")
# Actions that end a server incarnation: its last figures are scraped just before.
ENDS_INCARNATION = ("server.kill", "server.term", "server.restart")


class Progress(Protocol):
    """What the runner tells a progress display (``wsctl.report.console.RunProgress``)."""

    def start_scenario(self, name: str, index: int, total: int, duration: float) -> None: ...
    def update(self, elapsed: float, states: dict[str, int],
               counters: dict[str, int]) -> None: ...
    def action(self, text: str) -> None: ...
    def end_scenario(self, outcome: ScenarioOutcome) -> None: ...


@dataclasses.dataclass(slots=True)
class Steady:
    """The server at steady state: its RSS, and connections it held then."""

    at: float
    rss: int
    connections: float
    reached: bool


class Monitor:
    """Watches ``fleet`` (and ``server``, when wsctl owns it) from ``start`` to ``end``,
    instants of ``clock``."""

    def __init__(self, *, fleet: AnyFleet, sampler: Sampler,
                 server: ServiceProcess | ServerGroup | None,
                 clock: Clock, start: float, end: float,
                 progress: Progress | None = None) -> None:
        self.fleet = fleet
        self.sampler = sampler
        self.server = server
        self.clock = clock
        self.start = start
        self.end = end
        self.progress = progress
        self.steady: Steady | None = None
        self._level: Steady | None = None  # the last row's RSS and connections, unsettled
        self.faulted = False  # a fault was injected: steady state is no longer looked for
        self.open_at_end = 0  # connections open at the last tick before the end
        self.ended: float | None = None  # when the scenario's time was up (or it stopped)
        self.scraped_at = -float("inf")  # the last successful scrape

    async def run(self, stop: asyncio.Event, failed: Callable[[], bool]) -> None:
        """Watch until the end, ``stop`` or ``failed()``; then note the final figures."""
        clock, sampler = self.clock, self.sampler
        next_sample = self.start + SAMPLE
        stop_wait = asyncio.ensure_future(stop.wait())
        try:
            while True:
                now = clock.now()
                if now >= self.end or stop.is_set() or failed():
                    break
                self.open_at_end = sampler.open
                if now >= next_sample:
                    next_sample += SAMPLE
                    await self._sample(now)
                self.show(now)
                delay = min(TICK, next_sample - now, self.end - now)
                await asyncio.wait([stop_wait], timeout=max(0.0, delay))
        finally:
            stop_wait.cancel()
        await self._finish()

    async def _sample(self, now: float) -> None:
        """A series row; steady state noted once reached; the server's counters."""
        rss = self._rss()
        self.sampler.sample(now, self.fleet.metrics.counters["messages.received"], rss)
        if self.server is None:
            return
        if rss and self.sampler.open:
            self._level = Steady(now - self.start, int(rss), float(self.sampler.open), False)
        if not self.faulted and self.sampler.steady(now, self.fleet.size, SETTLE):
            await self._note_steady(reached=True)
        else:
            await self.scrape(timeout=0.5)  # keeps counters current

    async def _finish(self) -> None:
        clock, sampler = self.clock, self.sampler
        self.ended = clock.now()
        if self.server is not None and self.steady is None and not self.faulted:
            await self._note_steady(reached=False)
            # A loop that woke late finds the probes already stopped: the last row's level.
            self.steady = self.steady or self._level
        if self.server is not None:
            await self.scrape()
        if clock.now() - self.start - (sampler.series().t or [0.0])[-1] > 0.2:
            # The last, partial interval; its level is the one before the probes stopped.
            sampler.sample(clock.now(), self.fleet.metrics.counters["messages.received"],
                           self._rss(), connections=self.open_at_end)

    def _rss(self) -> float | None:
        """The series' server RSS: None without an owned server, 0 while it is down."""
        if self.server is None:
            return None
        return float(self.server.rss() or 0)

    async def scrape(self, timeout: float = 2.0) -> Scrape | None:
        """Read the server's ``/metrics`` now (None when it could not be read, or the
        server is a team's command that wsctl does not scrape)."""
        if not isinstance(self.server, Scraped):
            return None
        scrape = await self.server.scrape(timeout=timeout)
        if scrape is not None:
            self.scraped_at = self.clock.now()
        return scrape

    async def _note_steady(self, *, reached: bool) -> None:
        """Note the server's RSS and connections now (the last one before a fault counts).

        Connections are the server's own count when settled; just before a fault (not
        settled) they are the probes' count, so that no scrape delays the fault."""
        assert self.server is not None
        rss = self.server.rss()
        if rss is None or self.sampler.open == 0:
            return
        scrape = await self.scrape() if reached else None
        connections = scrape.connections if scrape is not None and scrape.connections \
            else float(self.sampler.open)
        self.steady = Steady(self.clock.now() - self.start, rss, connections, reached)

    async def before(self, action: Action) -> None:
        """The timeline's hook, just before an action's instant is taken: the figures
        before the first fault, and a fresh scrape before a server's incarnation ends."""
        if self.server is None:
            return
        if action.is_fault and not self.faulted:
            if self.steady is None or not self.steady.reached:
                await self._note_steady(reached=False)
            self.faulted = True
        if action.do in ENDS_INCARNATION and self.clock.now() - self.scraped_at > FRESH:
            # The last figures of this incarnation; the 1 s scrapes usually have them, and
            # a scrape of a busy server could make the fault late.
            await self.scrape(timeout=0.5)

    def show(self, at: float, action: str | None = None) -> None:
        """Tell the progress display the probes' states and counters at ``at`` (and the
        line of an ``action`` just carried out)."""
        if self.progress is None:
            return
        counters = self.fleet.metrics.counters
        self.progress.update(at - self.start, self.fleet.states(),
                             {k: counters.get(k, 0) for k in COUNTERS_SHOWN})
        if action is not None:
            self.progress.action(action)
