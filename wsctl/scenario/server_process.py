"""The reference server as a child process that a scenario kills, pauses and restarts.

A ``ServerProcess`` is a ``ServiceProcess`` (``service.py``: its own process group, a
port chosen once and kept across restarts, signals, the log, RSS of the tree) whose
command is ``python -m server_stub --port {port} --profile X ARGS`` and whose readiness
is its announcement line; what it adds is the reference server's own: ``/metrics``
scrapes (``Scrape``, summed over incarnations by ``totals()``) and the retry of a start
that finds its port taken (the server exits 3 then). Its output goes to
``server.log`` in a scratch directory, so a server that will not start can be quoted.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from wsctl.errors import RunFailed
from wsctl.scenario.model import SCRATCH
from wsctl.scenario.service import LIVE, ReadyCheck, ServiceCommand, ServiceProcess, kill_all
from wsctl.serverwatch import ServerWatcher

ANNOUNCED = r"wss?://127\.0\.0\.1:(\d+)"  # the server's first line once it listens
EXIT_PORT_IN_USE = 3
START_TRIES = 20  # a port just released by a killed server can be refused for a moment


@dataclass(slots=True)
class Scrape:
    """Figures from one scrape of the server's ``/metrics``."""

    connections: float = 0.0
    refused: float = 0.0
    dead_detected: float = 0.0

    @classmethod
    def of(cls, figures: dict[str, float]) -> Scrape:
        """From ``wsctl.serverwatch.parse_metrics``'s figures (absent ones are 0)."""
        return cls(figures.get("connections", 0.0), figures.get("refused", 0.0),
                   figures.get("dead_detected", 0.0))


@runtime_checkable
class Scraped(Protocol):
    """A server whose ``/metrics`` wsctl can read (the reference one; a team's command
    server may have none, and then its scrape-based figures are not emitted)."""

    async def scrape(self, timeout: float = 2.0) -> Scrape | None: ...
    def totals(self) -> Scrape: ...


class ServerProcess(ServiceProcess):
    """One reference server, possibly started several times on the same port."""

    def __init__(self, profile: str, args: list[str], scratch: Path,
                 start_timeout: float = 15.0, *, instance: int | None = None) -> None:
        args = [arg.replace(SCRATCH, str(scratch)) for arg in args]  # store: sqlite
        spec = ServiceCommand(
            command=(sys.executable, "-m", "server_stub", "--port", "{port}",
                     "--profile", profile, *args),
            url="ws://127.0.0.1:{port}", ready=ReadyCheck("log", ANNOUNCED, start_timeout),
            stop_timeout=15.0)
        log = "server.log" if instance is None else f"server-{instance}.log"
        name = "the server" if instance is None else f"server instance {instance}"
        super().__init__(spec, scratch / log, name=name)
        self.profile = profile
        self.args = args
        self.scratch = scratch
        self.last_scrape: Scrape | None = None  # of the current incarnation
        self.scrapes: list[Scrape] = []  # the last of each ended incarnation

    async def start(self) -> float:
        """Start it (again, on the same port) and wait for its announcement; returns the
        seconds it took. Raises ``RunFailed`` quoting the log if it will not start."""
        self._end_incarnation()
        began = time.monotonic()
        for attempt in range(START_TRIES):
            self.last_exit = None
            try:
                await super().start()
            except RunFailed as exc:
                code = self.last_exit
                if code is None:
                    raise  # not ready in time, or already running: the message says
                if code != EXIT_PORT_IN_USE or attempt == START_TRIES - 1:
                    tail = self.output_tail(1) or "(nothing in its log)"
                    raise RunFailed(f"the reference server would not start (exit {code}; "
                                    f"log {self.log_path}): {tail}") from exc
                if self.incarnations == 0:
                    self.port = None  # someone took the port chosen for the first start
                await asyncio.sleep(0.25)
                continue
            self.start_attempts = attempt + 1
            return time.monotonic() - began
        raise AssertionError("unreachable")  # pragma: no cover

    def _end_incarnation(self) -> None:
        if self.last_scrape is not None:
            self.scrapes.append(self.last_scrape)
            self.last_scrape = None

    # -- measurements -------------------------------------------------------------------

    @property
    def watcher(self) -> ServerWatcher:
        """The current incarnation's process and routes (pid None when not running)."""
        pid = self.pid() if self.state != "stopped" else None
        return ServerWatcher(f"http://127.0.0.1:{self.port}", pid)

    async def scrape(self, timeout: float = 2.0) -> Scrape | None:
        """Read ``/metrics`` (None when the server is not running, paused or silent)."""
        if self.state != "running":
            return None
        figures = await self.watcher.scrape(timeout)
        if figures is None:
            return None
        self.last_scrape = scrape = Scrape.of(figures)
        return scrape

    def totals(self) -> Scrape:
        """Counters summed over every incarnation (each restarted server counts from 0)."""
        parts = [*self.scrapes, *([self.last_scrape] if self.last_scrape else [])]
        total = _summed(parts)
        total.connections = parts[-1].connections if parts else 0.0
        return total


class ServerGroup:
    """Several reference server instances (``server.instances``), measured as one server:
    RSS summed over the running instances, ``/metrics`` scraped from each and summed
    (None unless every running one answered), counters summed over every incarnation of
    every instance. ``members[i]`` is instance ``i``, which the timeline's actions act on."""

    def __init__(self, members: list[ServerProcess]) -> None:
        self.members = members

    @property
    def url(self) -> str:
        """The first instance's (the probes go through the proxy to all of them)."""
        return self.members[0].url

    @property
    def incarnations(self) -> int:
        return sum(member.incarnations for member in self.members)

    def rss(self) -> int | None:
        """Resident memory of every running instance's process tree, summed."""
        parts = [rss for rss in (member.rss() for member in self.members) if rss]
        return sum(parts) if parts else None

    async def scrape(self, timeout: float = 2.0) -> Scrape | None:
        running = [member for member in self.members if member.state == "running"]
        if not running:
            return None
        scrapes = await asyncio.gather(*(member.scrape(timeout) for member in running))
        if any(scrape is None for scrape in scrapes):
            return None
        return _summed([scrape for scrape in scrapes if scrape is not None])

    def totals(self) -> Scrape:
        """Refusals and dead connections over every incarnation of every instance; the
        connections of the running instances."""
        total = _summed([member.totals() for member in self.members])
        total.connections = sum(member.totals().connections for member in self.members
                                if member.state != "stopped")
        return total

    def close(self) -> None:
        for member in self.members:
            member.close()


def _summed(scrapes: list[Scrape]) -> Scrape:
    total = Scrape()
    for scrape in scrapes:
        total.connections += scrape.connections
        total.refused += scrape.refused
        total.dead_detected += scrape.dead_detected
    return total


__all__ = ["LIVE", "Scrape", "Scraped", "ServerGroup", "ServerProcess", "kill_all"]
