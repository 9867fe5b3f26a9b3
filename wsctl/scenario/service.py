"""The team's own server as a process wsctl owns: start, wait until ready, signal, restart.

``ServiceProcess`` runs any command — ``uvicorn app:app --port {port}``, ``node
server.js``, a shell script — in its own process group, so that every signal reaches
the whole tree (uvicorn's workers, a shell's children). ``{port}`` in the command, the
URL, the ready check and the environment is a free port chosen once and kept across
restarts, so probes reconnect to the same address.

Readiness is one of:

- ``http://…`` — a GET that must answer 2xx (the service's ``/ws/health``);
- ``tcp://HOST:PORT`` — a TCP connect that succeeds;
- ``log:REGEX`` — a line of the process's output matching the regex (its first group,
  if it is a number, is the port the service chose itself).

A service that exits before it is ready, or is not ready in time, is a ``RunFailed``
naming the command, its exit status and the last lines of its output. Its stdout and
stderr go to one log file. Every process group started here is in ``LIVE`` until it is
gone; ``kill_all()`` is the last resort on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal
from urllib.parse import urlsplit

import psutil

from wsctl.errors import InvalidInput, RunFailed

LIVE: set[ServiceProcess] = set()  # started and not yet known to be gone
ServiceState = Literal["stopped", "running", "paused", "stopping"]
TAIL_LINES = 5
_PORT = "{port}"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Ask the kernel to SIGKILL the group leader when wsctl goes away."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def kill_all() -> None:
    """SIGKILL every process group started here and reap the leaders (idempotent)."""
    for service in list(LIVE):
        service.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the kernel's choice for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a listener could bind ``host:port`` now (as servers do, SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


@dataclass(frozen=True, slots=True)
class ReadyCheck:
    """How to know the service is ready: ``http`` (2xx), ``tcp`` (connects) or ``log``
    (a line of output matches ``target``, a regex); within ``timeout`` seconds."""

    kind: Literal["http", "tcp", "log"]
    target: str
    timeout: float = 30.0

    @classmethod
    def parse(cls, text: str, timeout: float = 30.0) -> ReadyCheck:
        """``http://…``, ``tcp://HOST:PORT`` or ``log:REGEX``; else ``InvalidInput``."""
        if text.startswith(("http://", "https://")):
            return cls("http", text, timeout)
        if text.startswith("tcp://"):
            parts = urlsplit(text.replace(_PORT, "1"))
            if not parts.hostname or parts.port is None:
                raise InvalidInput(f"ready {text!r}: write tcp://HOST:PORT, e.g. "
                                   "tcp://127.0.0.1:{port}")
            return cls("tcp", text, timeout)
        if text.startswith("log:"):
            pattern = text.removeprefix("log:")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise InvalidInput(f"ready {text!r}: not a regular expression: {exc}") \
                    from None
            return cls("log", pattern, timeout)
        raise InvalidInput(f"ready {text!r}: write http://… (must answer 2xx), "
                           "tcp://HOST:PORT (must accept) or log:REGEX (a line of output)")


@dataclass(frozen=True, slots=True)
class ServiceCommand:
    """What to run and how to stop it. ``{port}`` anywhere is the chosen port."""

    command: tuple[str, ...]
    url: str
    ready: ReadyCheck | None = None
    cwd: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 10.0
    port: int | None = None  # None: a free port when {port} is used

    @property
    def chooses_port(self) -> bool:
        """wsctl picks the port (``{port}`` in the command or environment); otherwise the
        service picks it and a ``log:`` ready check's first group announces it."""
        return any(_PORT in text for text in (*self.command, *self.env.values()))

    @property
    def display(self) -> str:
        return shlex.join(self.command)


class ServiceProcess:
    """One service, possibly started several times on the same port."""

    def __init__(self, spec: ServiceCommand, log_path: Path, *, name: str = "the server"
                 ) -> None:
        self.spec = spec
        self.name = name
        self.log_path = log_path
        self.port: int | None = spec.port
        self.proc: subprocess.Popen[bytes] | None = None
        self.pgid: int | None = None
        self.paused = False
        self.terminating = False
        self.incarnations = 0
        self.start_attempts = 1  # spawns the last start needed (a busy port is retried)
        self.last_exit: int | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0  # where the current incarnation's output starts

    # -- what it is ----------------------------------------------------------------------

    def _fill(self, text: str) -> str:
        return text.replace(_PORT, str(self.port)) if self.port is not None else text

    @property
    def url(self) -> str:
        return self._fill(self.spec.url)

    @property
    def command(self) -> list[str]:
        return [self._fill(part) for part in self.spec.command]

    @property
    def state(self) -> ServiceState:
        if self.proc is None or self.proc.poll() is not None:
            return "stopped"
        if self.terminating:
            return "stopping"
        return "paused" if self.paused else "running"

    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def output_tail(self, lines: int = TAIL_LINES) -> str:
        """The last lines the current (or last) incarnation wrote."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                text = log.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        kept = [line for line in text.splitlines() if line.strip()]
        return "\n".join(kept[-lines:])

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> float:
        """Start it (again, on the same port) and wait until ready; returns the seconds it
        took. Raises ``RunFailed`` naming the command, exit status and last output."""
        if self.state == "stopping":
            await self.wait_stopped(self.spec.stop_timeout)
        if self.state != "stopped":
            raise RunFailed(f"cannot start: {self.name} is already running")
        await self._wait_gone()
        began = time.monotonic()
        if self.port is None and self.spec.chooses_port:
            self.port = free_port()
        elif self.port is not None:
            await self._wait_port_free(self.port, 5.0)
        self._spawn()
        await self._wait_ready()
        self.incarnations += 1
        return time.monotonic() - began

    def _spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self._log is None:
            self._log = self.log_path.open("ab")
        self._log.write(f"--- wsctl: start {shlex.join(self.command)}\n".encode())
        self._log.flush()
        self._log_offset = self._log.tell()
        env = {**os.environ, **{k: self._fill(v) for k, v in self.spec.env.items()}}
        env["PATH"] = _with_own_bin(env.get("PATH", ""))
        try:
            proc = subprocess.Popen(
                self.command, cwd=self.spec.cwd, env=env, stdin=subprocess.DEVNULL,
                stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent if os.uname().sysname == "Linux" else None,
            )
        except OSError as exc:
            raise RunFailed(f"could not start {self.name} `{self.spec.display}`: "
                            f"{exc.strerror or exc}") from None
        self.proc, self.pgid = proc, proc.pid
        self.paused = self.terminating = False
        LIVE.add(self)

    async def _wait_ready(self) -> None:
        ready = self.spec.ready
        timeout = ready.timeout if ready is not None else 30.0
        deadline = time.monotonic() + timeout
        proc = self.proc
        assert proc is not None
        while True:
            code = proc.poll()
            if code is not None:
                self.last_exit = code
                message = self._failure(f"exited with status {_status(code)} before it "
                                        "was ready")
                self.close()
                raise RunFailed(message)
            if await self._is_ready():
                return
            if time.monotonic() >= deadline:
                tail = self.output_tail()
                self.close()
                raise RunFailed(self._failure(f"was not ready after {timeout:g}s "
                                              f"({self._ready_text()})", tail))
            await asyncio.sleep(0.02)

    def _ready_text(self) -> str:
        ready = self.spec.ready
        if ready is None:
            return f"nothing accepted connections at {self.url}"
        target = self._fill(ready.target)
        return {"http": f"GET {target} did not answer 2xx",
                "tcp": f"nothing accepted at {target}",
                "log": f"no output line matched {ready.target!r}"}[ready.kind]

    def _failure(self, what: str, tail: str | None = None) -> str:
        tail = self.output_tail() if tail is None else tail
        shown = tail.replace("\n", " | ") if tail else "(no output)"
        return (f"{self.name} `{shlex.join(self.command)}` {what}; last output: {shown} "
                f"(log {self.log_path})")

    async def _is_ready(self) -> bool:
        ready = self.spec.ready
        if ready is None:  # the URL's host and port accept a TCP connection
            parts = urlsplit(self.url.replace("{stream}", "x"))
            default = 443 if parts.scheme in ("wss", "https") else 80
            return await _tcp_ok(parts.hostname or "127.0.0.1", parts.port or default)
        target = self._fill(ready.target)
        if ready.kind == "tcp":
            parts = urlsplit(target)
            return await _tcp_ok(parts.hostname or "127.0.0.1", parts.port or 0)
        if ready.kind == "http":
            return await _http_ok(target)
        match = re.search(ready.target, self.output_tail(lines=10_000), re.MULTILINE)
        if match is None:
            return False
        if not self.spec.chooses_port and match.groups() and \
                (match.group(1) or "").isdigit():
            self.port = int(match.group(1))  # the service chose its port and said so
        return True

    def _signal(self, sig: int) -> None:
        if self.pgid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, sig)

    def _alive(self, what: str) -> None:
        if self.state in ("stopped", "stopping"):
            raise RunFailed(f"cannot {what}: {self.name} is not running")

    async def kill(self) -> None:
        """SIGKILL to the whole group (a crash); returns once every process is gone."""
        self._alive("kill")
        self._signal(signal.SIGCONT)  # a stopped process dies of SIGKILL, but keep it simple
        self._signal(signal.SIGKILL)
        await self.wait_stopped(10.0)

    async def term(self) -> None:
        """The stop signal (SIGTERM by default) to the group; returns without waiting: a
        following start waits for the exit (SIGKILL after ``stop_timeout``)."""
        self._alive("terminate")
        if self.paused:
            self._signal(signal.SIGCONT)
            self.paused = False
        self._signal(self.spec.stop_signal)
        self.terminating = True

    async def pause(self) -> None:
        """SIGSTOP to the group; returns once every process of it is stopped (bounded)."""
        self._alive("pause")
        if self.paused:
            raise RunFailed(f"cannot pause: {self.name} is already paused")
        self._signal(signal.SIGSTOP)
        self.paused = True
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and not all(
                _status_of(p) in (psutil.STATUS_STOPPED, psutil.STATUS_ZOMBIE, None)
                for p in self._group()):
            await asyncio.sleep(0.005)

    async def resume(self) -> None:
        """SIGCONT to the group after a pause."""
        self._alive("resume")
        if not self.paused:
            raise RunFailed(f"cannot resume: {self.name} is not paused")
        self._signal(signal.SIGCONT)
        self.paused = False

    async def restart(self) -> float:
        """The stop signal, wait for the exit (SIGKILL after ``stop_timeout``), start."""
        await self.term()
        await self.wait_stopped(self.spec.stop_timeout)
        return await self.start()

    async def wait_stopped(self, timeout: float) -> bool:
        """Wait for the leader's exit, SIGKILL the group after ``timeout``; True if it
        exited by itself."""
        proc = self.proc
        if proc is None:
            return True
        deadline = time.monotonic() + timeout
        clean = True
        while proc.poll() is None:
            if time.monotonic() >= deadline:
                clean = False
                self._signal(signal.SIGCONT)
                self._signal(signal.SIGKILL)
                deadline = time.monotonic() + 10.0
            await asyncio.sleep(0.01)
        self.last_exit = proc.returncode
        self._signal(signal.SIGKILL)  # children that outlived their leader
        await self._wait_gone()
        self.terminating = self.paused = False
        return clean

    def _group(self) -> list[psutil.Process]:
        """Every live process of the group (the leader's tree and anything that left it).

        Scans pids with ``os.getpgid`` and builds a ``psutil.Process`` only for members:
        ``psutil.process_iter`` over the whole machine took ~20 ms a call here, in the
        loop that also runs in-process probes, every 10 ms while a killed server exits."""
        if self.pgid is None:
            return []
        out = []
        for pid in psutil.pids():
            with contextlib.suppress(psutil.Error, OSError):
                if os.getpgid(pid) == self.pgid:
                    out.append(psutil.Process(pid))
        return out

    async def _wait_gone(self, timeout: float = 10.0) -> None:
        """Until no process of the group is left (the port is then free to bind)."""
        if self.pgid is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [p for p in self._group()
                    if _status_of(p) not in (psutil.STATUS_ZOMBIE, None)]
            if not live:
                break
            await asyncio.sleep(0.01)
        if self.proc is not None and self.proc.poll() is not None:
            LIVE.discard(self)

    async def _wait_port_free(self, port: int, timeout: float) -> None:
        """A port just released by a killed service can be busy for a moment."""
        deadline = time.monotonic() + timeout
        while not port_free(port) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    def close(self) -> None:
        """End it in any state (paused included) and reap it; idempotent, never raises."""
        if self.proc is not None:
            self._signal(signal.SIGCONT)
            self._signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
            deadline = time.monotonic() + 5.0
            while self._group() and time.monotonic() < deadline:
                if all(_status_of(p) in (psutil.STATUS_ZOMBIE, None) for p in self._group()):
                    break
                time.sleep(0.01)
        LIVE.discard(self)
        self.paused = self.terminating = False
        if self._log is not None:
            self._log.close()
            self._log = None

    # -- measurements -------------------------------------------------------------------

    def rss(self) -> int | None:
        """Resident memory of the whole process tree in bytes (None when not running)."""
        if self.state == "stopped":
            return None
        total = 0
        for proc in self._group():
            with contextlib.suppress(psutil.Error):
                total += int(proc.memory_info().rss)
        return total or None


def _with_own_bin(path: str) -> str:
    """``PATH`` with the directory of the Python running wsctl at its end: ``uvicorn`` or
    ``python`` installed beside wsctl are found when nothing earlier on PATH has them (an
    unactivated virtualenv), and never shadow the team's own."""
    own = str(Path(sys.executable).parent)
    parts = path.split(os.pathsep) if path else []
    return os.pathsep.join(parts if own in parts else [*parts, own])


def _status_of(proc: psutil.Process) -> str | None:
    try:
        return str(proc.status())
    except psutil.Error:
        return None


def _status(code: int) -> str:
    """``1``, or ``-9 (SIGKILL)`` for a signal."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"{code} ({signal.Signals(-code).name})"
    return str(code)


async def _tcp_ok(host: str, port: int) -> bool:
    try:
        async with asyncio.timeout(1.0):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _http_ok(url: str) -> bool:
    """A GET answered 2xx (plain HTTP/1.1 on a socket: no client library in the loop)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        async with asyncio.timeout(2.0):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                             "Connection: close\r\n\r\n".encode("ascii"))
                status = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError, UnicodeError):
        return False
    fields = status.split(b" ")
    return len(fields) >= 2 and fields[1][:1] == b"2"


def parse_signal(name: str | int) -> int:
    """``SIGTERM``, ``TERM``, ``INT`` or a number -> the signal number (InvalidInput)."""
    if isinstance(name, int):
        return int(signal.Signals(name))
    text = name.strip().upper()
    try:
        return int(signal.Signals[text if text.startswith("SIG") else f"SIG{text}"])
    except KeyError:
        raise InvalidInput(f"stop_signal {name!r}: not a signal name (e.g. SIGTERM, "
                           "SIGINT, SIGQUIT)") from None


def service_from(command: Sequence[str] | str, url: str, ready: str | None = None, *,
                 cwd: str | None = None, env: Mapping[str, str] | None = None,
                 stop_signal: str | int = "SIGTERM", stop_timeout: float = 10.0,
                 ready_timeout: float = 30.0) -> ServiceCommand:
    """A ``ServiceCommand`` from the scenario/CLI spelling (a string is split like a shell
    would, without running one)."""
    parts = tuple(shlex.split(command) if isinstance(command, str) else command)
    if not parts:
        raise InvalidInput("server command is empty: give the command that starts your "
                           "service, e.g. [uvicorn, app:app, --port, \"{port}\"]")
    spec = ServiceCommand(
        command=parts, url=url,
        ready=ReadyCheck.parse(ready, ready_timeout) if ready else None,
        cwd=Path(cwd) if cwd else None, env=dict(env or {}),
        stop_signal=parse_signal(stop_signal), stop_timeout=stop_timeout)
    announced = spec.ready is not None and spec.ready.kind == "log" and \
        re.compile(spec.ready.target).groups >= 1
    if _PORT in url and not spec.chooses_port and not announced:
        raise InvalidInput("the url uses {port} but the command does not: put \"{port}\" "
                           "in the command (wsctl then picks a free port), or use "
                           "ready: log:REGEX whose first group is the port it prints")
    return spec


__all__ = ["LIVE", "ReadyCheck", "ServiceCommand", "ServiceProcess", "free_port",
           "kill_all", "parse_signal", "service_from"]
