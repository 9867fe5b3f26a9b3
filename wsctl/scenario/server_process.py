"""The reference server as a child process that a scenario kills, pauses and restarts.

``python -m server_stub --port P --profile X ARGS`` with stdout (its one announcement
line) and stderr (its connection log) going to files in a scratch directory, so a server
that will not start can be quoted. Restarts reuse the first incarnation's port so the
probes reconnect to the same URL. Every process started here is in ``LIVE`` until it is
reaped, and gets SIGKILL from the kernel if the thread that started it dies
(``PR_SET_PDEATHSIG`` on Linux): no server outlives ``wsctl run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

import psutil

from wsctl.errors import RunFailed
from wsctl.serverwatch import ServerWatcher

URL = re.compile(r"wss?://127\.0\.0\.1:(\d+)")
EXIT_PORT_IN_USE = 3
LIVE: set[subprocess.Popen[bytes]] = set()  # started and not yet reaped

ServerState = Literal["stopped", "running", "paused", "stopping"]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Ask the kernel to SIGKILL this child when its parent goes away."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def kill_all() -> None:
    """Last resort (the CLI calls it on its way out): SIGKILL and reap every server."""
    for proc in list(LIVE):
        _kill_and_reap(proc)


def _kill_and_reap(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGCONT)  # a stopped process dies of SIGKILL too,
            proc.kill()  # but SIGCONT first keeps that true for any signal sent later
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)
    LIVE.discard(proc)


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


@dataclass
class ServerProcess:
    """One reference server, possibly started several times on the same port."""

    profile: str
    args: list[str]
    scratch: Path
    start_timeout: float = 15.0
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    paused: bool = False
    terminating: bool = False
    incarnations: int = 0
    start_attempts: int = 0  # spawns the last start needed (the port may be busy)
    last_scrape: Scrape | None = None  # of the current incarnation
    scrapes: list[Scrape] = field(default_factory=list)  # last of each ended incarnation
    _log: IO[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.scratch / "server.log"

    @property
    def state(self) -> ServerState:
        if self.proc is None or self.proc.poll() is not None:
            return "stopped"
        if self.terminating:
            return "stopping"
        return "paused" if self.paused else "running"

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 1) -> str:
        """The last lines the server wrote on stderr (what to quote when it failed)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        kept = [line for line in text.splitlines() if line.strip()]
        return "\n".join(kept[-lines:])

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> float:
        """Start it (again, on the same port) and wait for its announcement; returns the
        seconds it took. Raises ``RunFailed`` quoting the log if it will not start."""
        if self.state == "stopping":
            await self._wait_exit(self.start_timeout)
        if self.state != "stopped":
            raise RunFailed("the server is already running")
        self._end_incarnation()
        began = time.monotonic()
        # A port just released by a killed server can be refused for a moment: retry.
        for attempt in range(20):
            code = await self._spawn()
            if code is None:
                self.incarnations += 1
                self.start_attempts = attempt + 1
                return time.monotonic() - began
            if code != EXIT_PORT_IN_USE or self.port == 0 or attempt == 19:
                break
            await asyncio.sleep(0.25)
        tail = self.log_tail() or "(nothing in its log)"
        self.close()
        raise RunFailed(f"the reference server would not start (exit {code}; log "
                        f"{self.log_path}): {tail}")

    async def _spawn(self) -> int | None:
        """One attempt: None when it announced its URL, else its exit code."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        out_path = self.scratch / "server.out"
        if self._log is None:
            self._log = self.log_path.open("ab")
        with out_path.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "server_stub", "--port", str(self.port),
                 "--profile", self.profile, *self.args],
                stdin=subprocess.DEVNULL, stdout=out, stderr=self._log,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        LIVE.add(proc)
        self.proc, self.paused, self.terminating = proc, False, False
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            text = out_path.read_text(encoding="utf-8", errors="replace")
            match = URL.search(text.split("\n", 1)[0]) if "\n" in text else None
            if match:
                self.port = int(match.group(1))
                return None
            code = proc.poll()
            if code is not None:
                LIVE.discard(proc)
                self.proc = None
                return code
            await asyncio.sleep(0.02)
        self.close()
        return -1

    def _alive(self, what: str) -> subprocess.Popen[bytes]:
        state = self.state
        if state in ("stopped", "stopping"):
            raise RunFailed(f"cannot {what}: the server is not running")
        assert self.proc is not None
        return self.proc

    async def kill(self) -> None:
        """SIGKILL (a crash) and reap, so the port is free for a start."""
        proc = self._alive("kill")
        proc.kill()
        await self._wait_exit(10)

    async def term(self) -> None:
        """SIGTERM (graceful: connections closed 1001); returns without waiting."""
        proc = self._alive("terminate")
        if self.paused:
            proc.send_signal(signal.SIGCONT)
            self.paused = False
        proc.terminate()
        self.terminating = True

    async def pause(self) -> None:
        """SIGSTOP: peers see a half-open connection."""
        proc = self._alive("pause")
        if self.paused:
            raise RunFailed("cannot pause: the server is already paused")
        proc.send_signal(signal.SIGSTOP)
        self.paused = True
        # Delivery is asynchronous: return once it has really stopped (bounded).
        deadline = time.monotonic() + 1.0
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(proc.pid)
            while process.status() != psutil.STATUS_STOPPED and time.monotonic() < deadline:
                await asyncio.sleep(0.005)

    async def resume(self) -> None:
        """SIGCONT after a pause."""
        proc = self._alive("resume")
        if not self.paused:
            raise RunFailed("cannot resume: the server is not paused")
        proc.send_signal(signal.SIGCONT)
        self.paused = False

    async def restart(self, grace: float = 15.0) -> float:
        """SIGTERM, wait for the exit (SIGKILL after ``grace``), start again."""
        await self.term()
        if not await self._wait_exit(grace):
            self._alive("restart").kill()
            await self._wait_exit(10)
        return await self.start()

    async def _wait_exit(self, timeout: float) -> bool:
        proc = self.proc
        if proc is None:
            return True
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)
        LIVE.discard(proc)
        self.terminating = self.paused = False
        return True

    def _end_incarnation(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            LIVE.discard(self.proc)  # exited by itself (after a term): already reaped
        if self.last_scrape is not None:
            self.scrapes.append(self.last_scrape)
            self.last_scrape = None

    def close(self) -> None:
        """End it in any state (paused included) and reap it; idempotent."""
        if self.proc is not None:
            _kill_and_reap(self.proc)
        self.paused = self.terminating = False
        if self._log is not None:
            self._log.close()
            self._log = None

    # -- measurements -------------------------------------------------------------------

    @property
    def watcher(self) -> ServerWatcher:
        """The current incarnation's process and routes (pid None when not running)."""
        running = self.proc is not None and self.proc.poll() is None
        pid = self.proc.pid if running and self.proc is not None else None
        return ServerWatcher(f"http://127.0.0.1:{self.port}", pid)

    def rss(self) -> int | None:
        """Resident memory of the server process in bytes (None when it is not running)."""
        return self.watcher.rss()

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
        total = Scrape()
        parts = [*self.scrapes, *([self.last_scrape] if self.last_scrape else [])]
        for part in parts:
            total.refused += part.refused
            total.dead_detected += part.dead_detected
        if parts:
            total.connections = parts[-1].connections
        return total

    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


__all__ = ["LIVE", "Scrape", "ServerProcess", "kill_all"]
