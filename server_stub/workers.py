"""``--workers N``: N server processes on one port, so the reference server uses more than
one core (Linux).

The process started is a supervisor: it binds the port once without listening (that picks
the number for ``--port 0`` and keeps it reserved while workers come and go), then forks N
workers. Each worker is a whole ``ReferenceServer`` that binds the same host and port with
SO_REUSEPORT and listens on its own socket, so the kernel hashes each new connection to one
worker's accept queue. (The other way, one listening socket inherited by every worker, makes
the workers race in ``accept``: every idle one wakes for each connection and the busiest
tends to win; SO_REUSEPORT balances without contention, at the cost of dropping what sits in
a dead worker's accept queue.)

The supervisor prints the URL line once every worker listens; restarts a worker that dies
(logged; backing off when one keeps dying at start); on SIGTERM or SIGINT sends each worker
SIGTERM (each closes its connections with 1001 and a retry hint) and exits 0. Workers die
with the supervisor (PR_SET_PDEATHSIG, SIGKILL): a killed server leaves no process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass, replace
from multiprocessing.process import BaseProcess

from server_stub.config import ServerConfig
from server_stub.logs import name_worker
from server_stub.main import ReferenceServer, announcement, listen_error, loop_factory
from wsctl.errors import RunFailed, WsctlError

log = logging.getLogger("server_stub")

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# A worker that lived at least this long before dying is restarted at once; one dying
# sooner is restarted after RESTART_DELAY doubled per such quick death in a row (at most
# RESTART_DELAY_MAX), so a worker that cannot start does not spin the machine.
STABLE_AFTER = 5.0
RESTART_DELAY = 0.5
RESTART_DELAY_MAX = 30.0
# Longer than a worker's own graceful stop may take before the supervisor SIGKILLs it.
STOP_MARGIN = 5.0


def restart_delay(lived: float, quick_deaths: int) -> float:
    """Seconds to wait before restarting a worker that lived ``lived`` seconds, after
    ``quick_deaths`` earlier deaths in a row that came sooner than ``STABLE_AFTER``."""
    if lived >= STABLE_AFTER:
        return 0.0
    return min(RESTART_DELAY_MAX, RESTART_DELAY * 2 ** quick_deaths)


def reserve_port(config: ServerConfig) -> list[socket.socket]:
    """Bind ``config.host``:``config.port`` on every address it names, with SO_REUSEPORT and
    without listening: the port is picked (for 0) and held, and the workers' listening
    sockets join it. WsctlError (exit 2 or 3) when it cannot be bound."""
    port = config.port
    sockets: list[socket.socket] = []
    try:
        infos = socket.getaddrinfo(config.host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
        for family, kind, proto, _, address in dict.fromkeys(infos):
            # First without SO_REUSEPORT: a port that other SO_REUSEPORT listeners hold
            # (another --workers server) must be refused, not silently shared with them.
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                _v6only(probe, family)
                probe.bind((address[0], port, *address[2:]))
                port = probe.getsockname()[1]
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            _v6only(sock, family)
            sock.bind((address[0], port, *address[2:]))  # port 0: the probe's, for all
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise listen_error(config, exc) from exc
    return sockets


@dataclass
class Worker:
    """One worker slot: its index, the process in it now, when that one started."""

    index: int
    process: BaseProcess | None = None
    started: float = 0.0
    quick_deaths: int = 0
    restart_at: float | None = None  # monotonic time of a pending restart


class Supervisor:
    """Starts, watches, restarts and stops the workers (see the module docstring)."""

    def __init__(self, config: ServerConfig, reserved: list[socket.socket]) -> None:
        self.config = config
        self.reserved = reserved
        self.context = multiprocessing.get_context("fork")
        self.workers = [Worker(i) for i in range(config.workers)]
        self.ready_r, self.ready_w = os.pipe()
        self.wake_r, self.wake_w = socket.socketpair()
        self.stopping = False

    def run(self) -> int:
        """Until SIGTERM/SIGINT; the exit status (0 after a clean stop)."""
        for sock in (self.wake_r, self.wake_w):
            sock.setblocking(False)
        previous = signal.set_wakeup_fd(self.wake_w.fileno())
        handlers = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            code = self._start_all()
            if code == 0:
                self._watch()
            self._stop_all()
            return code
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(previous)
            for fd in (self.ready_r, self.ready_w):
                os.close(fd)
            for sock in (self.wake_r, self.wake_w, *self.reserved):
                sock.close()

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _spawn(self, worker: Worker) -> None:
        process = self.context.Process(
            target=_worker_main, name=f"wsctl-worker-{worker.index}",
            args=(self.config, worker.index, os.getpid(), self.ready_w,
                  [self.ready_r, self.wake_r.fileno(), self.wake_w.fileno(),
                   *(s.fileno() for s in self.reserved)]))
        process.start()
        worker.process, worker.started, worker.restart_at = process, time.monotonic(), None

    def _start_all(self) -> int:
        """Start the workers one after the other, each once the one before listens: 0, or
        the exit status of the first that could not start (it said why in one line on
        stderr; starting one at a time keeps a bad option to that one line)."""
        for worker in self.workers:
            self._spawn(worker)
            assert worker.process is not None
            with selectors.DefaultSelector() as selector:
                selector.register(self.ready_r, selectors.EVENT_READ)
                selector.register(self.wake_r, selectors.EVENT_READ)
                selector.register(worker.process.sentinel, selectors.EVENT_READ)
                ready = False
                while not ready and not self.stopping:
                    for key, _ in selector.select():
                        if key.fd == self.ready_r:
                            ready = worker.index in self._read_ready()
                        elif key.fd == self.wake_r.fileno():
                            _drain(self.wake_r)
                        else:
                            worker.process.join()
                            code = worker.process.exitcode or 0
                            worker.process = None
                            return code if code > 0 else RunFailed.exit_code
            if self.stopping:
                return 0
        url = f"{self.config.scheme}://{_url_host(self.config.host)}:{self.config.port}"
        print(announcement(url, self.config), flush=True)
        log.info("%d workers listening on %s: pids %s", len(self.workers), url,
                 " ".join(str(w.process.pid) for w in self.workers if w.process))
        return 0

    def _read_ready(self) -> set[int]:
        data = os.read(self.ready_r, 4096)
        return {int(index) for index in data.split()}

    def _watch(self) -> None:
        """Restart workers that die, until a signal asks to stop."""
        while not self.stopping:
            now = time.monotonic()
            waits = [w.restart_at - now for w in self.workers if w.restart_at is not None]
            with selectors.DefaultSelector() as selector:
                selector.register(self.ready_r, selectors.EVENT_READ)
                selector.register(self.wake_r, selectors.EVENT_READ)
                for worker in self.workers:
                    if worker.process is not None:
                        selector.register(worker.process.sentinel, selectors.EVENT_READ,
                                          worker)
                events = selector.select(max(0.0, min(waits)) if waits else None)
            for key, _ in events:
                if key.fd == self.ready_r:
                    self._read_ready()
                elif key.fd == self.wake_r.fileno():
                    _drain(self.wake_r)
                else:
                    self._died(key.data)
            now = time.monotonic()
            for worker in self.workers:
                if (worker.restart_at is not None and worker.restart_at <= now
                        and not self.stopping):
                    self._spawn(worker)
                    log.info("worker %d restarted: pid %d", worker.index,
                             worker.process.pid if worker.process else 0)

    def _died(self, worker: Worker) -> None:
        process = worker.process
        assert process is not None
        process.join()
        worker.process = None
        lived = time.monotonic() - worker.started
        delay = restart_delay(lived, worker.quick_deaths)
        worker.quick_deaths = worker.quick_deaths + 1 if lived < STABLE_AFTER else 0
        worker.restart_at = time.monotonic() + delay
        code = process.exitcode or 0
        how = f"signal {-code}" if code < 0 else f"status {code}"
        log.warning("worker %d (pid %s) died with %s after %.1fs; restarting in %.1fs",
                    worker.index, process.pid, how, lived, delay)

    def _stop_all(self) -> None:
        """SIGTERM to every worker (each closes its connections with 1001), then wait for
        them; SIGKILL what is left after the graceful stop's own bound and a margin."""
        live = [w.process for w in self.workers if w.process is not None]
        if live:
            log.info("stopping %d workers", len(live))
        for process in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid or 0, signal.SIGTERM)
        deadline = time.monotonic() + self.config.shutdown_timeout + STOP_MARGIN
        for process in live:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                log.warning("worker pid %s did not stop in time: killed", process.pid)
                process.kill()
                process.join()


def _v6only(sock: socket.socket, family: int) -> None:
    """IPv6 sockets bind IPv6 only, as asyncio's create_server binds them."""
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)


def _drain(sock: socket.socket) -> None:
    with contextlib.suppress(BlockingIOError):
        while sock.recv(4096):
            pass


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when the supervisor dies, however it dies (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)


def _worker_main(config: ServerConfig, index: int, parent: int, ready_fd: int,
                 inherited: list[int]) -> None:
    """A worker process: the server on the shared port until SIGTERM, then exit."""
    _die_with_parent(parent)
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the supervisor too
    for fd in inherited:
        with contextlib.suppress(OSError):
            os.close(fd)
    try:
        with asyncio.Runner(loop_factory=loop_factory(config)) as runner:
            runner.run(_serve_worker(config, index, ready_fd))
    except WsctlError as exc:
        print(f"wsctl: error: worker {index}: {exc}", file=sys.stderr, flush=True)
        sys.exit(exc.exit_code)
    sys.exit(0)


async def _serve_worker(config: ServerConfig, index: int, ready_fd: int) -> None:
    name_worker(index)
    server = ReferenceServer(config, owns_process=True)
    server.worker = index
    stop = asyncio.Event()
    # Before start: a SIGTERM while starting still stops the worker gracefully.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await server.start()
    os.write(ready_fd, f"{index}\n".encode())
    try:
        await stop.wait()
    finally:
        await server.stop()


def supervise(config: ServerConfig) -> int:
    """Run ``config.workers`` workers on one port until SIGTERM/SIGINT; the exit status."""
    reserved = reserve_port(config)
    port = reserved[0].getsockname()[1]
    return Supervisor(replace(config, port=port), reserved).run()


__all__ = ["Supervisor", "restart_delay", "reserve_port", "supervise"]
