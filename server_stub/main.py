"""Build and run the reference server: WebSocket streams and plain HTTP on one port.

Routes (all on the same port, through websockets' ``process_request``):

    GET /ws/{stream}   WebSocket upgrade: resume protocol v1 (docs/protocol.md)
    GET /ws/health     JSON health (200 healthy, 503 draining or at capacity);
                       as a WebSocket upgrade, the same JSON once a second
    GET /metrics       Prometheus text format
    GET /              the dashboard; GET /static/<name> its files (static_files.py)
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import re
import signal
import socket
import ssl  # asyncio imports it anyway
import time
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from server_stub.config import ServerConfig
from server_stub.connection_pool import ConnectionPool, Refusal, Session
from server_stub.fast_handshake import FastHandshake
from server_stub.health_monitor import HealthMonitor
from server_stub.jobs import JobRunner, JobSchedule
from server_stub.pipelining import OneRequestConnection
from server_stub.stores import StreamStore, store_maker
from server_stub.websocket_manager import ResumeRequest, WebSocketManager, abort_after
from wsctl import __version__
from wsctl import protocol as p
from wsctl.errors import InvalidInput, PortInUse, RunFailed, WsctlError
from wsctl.runtime import PacedCollector

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

# Imported when first needed, not at start-up (start-up time counts in restart
# scenarios): server_stub.auth (--secret), server_stub.static_files (GET /),
# server_stub.metrics and prometheus_client (GET /metrics).

log = logging.getLogger("server_stub")

HEARTBEAT_PAYLOAD_SIZE = 4  # random bytes per heartbeat ping: a blind pong cannot match
KEEPALIVE_TIMEOUT_REASON = "keepalive ping timeout"
# Listen backlog of the reference profile. asyncio's and uvloop's default, 100, overflows
# when a restarted server meets every client retrying at once: the kernel drops the
# excess SYNs and each of those clients waits for its 1 s SYN retransmit
# (benchmarks/recovery.py counts ListenOverflows). Linux caps it at net.core.somaxconn
# (4096 by default). The baseline profile keeps the stock 100.
LISTEN_BACKLOG = 4096
STOCK_BACKLOG = 100
_OFFSET = re.compile(r"[0-9]{1,18}")  # ASCII digits only: str.isdigit() admits "²"


class PooledConnection(OneRequestConnection):
    """A websockets connection that reports pongs to the HealthMonitor and its own end
    to the ConnectionPool (``connection_lost`` runs on every exit path)."""

    owner: ReferenceServer
    resume_request: ResumeRequest | None = None

    heartbeat_payload: bytes | None = None  # of the ping outstanding, unpredictable

    def acknowledge_pings(self, data: bytes) -> None:
        if data == self.heartbeat_payload and self.owner.monitor is not None:
            self.heartbeat_payload = None
            session = self.owner.pool.get(self)
            if session is not None:
                self.owner.monitor.pong(session)
        super().acknowledge_pings(data)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Whatever the peer's frames made us write (pongs to a ping flood) counts against
        # --send-buffer like events do: a peer that sends without reading is closed.
        session = self.owner.pool.get(self)
        if session is not None:
            self.owner.manager.over_buffer(session)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.owner.connection_gone(self)


def _close_code(conn: ServerConnection) -> tuple[int, str]:
    """The close code and reason that ended ``conn``: whoever closed first."""
    proto = conn.protocol
    sent, rcvd = proto.close_sent, proto.close_rcvd
    if rcvd is not None and (sent is None or proto.close_rcvd_then_sent):
        return rcvd.code, rcvd.reason
    if sent is not None:
        return sent.code, sent.reason
    return 1006, "connection lost without a close frame"


# Headers this server reads as one value; websockets raises MultipleValuesError (a 500
# with a traceback) when one of them is repeated, so a repeat is answered 400 first.
_SINGLE_HEADERS = ("Upgrade", "Origin", "Host")


def _respond(conn: ServerConnection, status: int, body: str, content_type: str,
             headers: Iterable[tuple[str, str]] = ()) -> Response:
    response = conn.respond(status, body)
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = content_type
    for name, value in headers:
        response.headers[name] = value
    return response


def _refuse(conn: ServerConnection, refusal: Refusal) -> Response:
    headers = []
    if refusal.retry_after is not None:
        headers.append(("Retry-After", str(refusal.retry_after)))
    return _respond(conn, refusal.status, refusal.reason + "\n", "text/plain; charset=utf-8",
                    headers)


def _own_origins(config: ServerConfig, host: str, port: int) -> frozenset[str]:
    """The ``Origin`` of pages this server serves itself (its dashboard), as a browser
    sends it: the listening address, and ``localhost`` when that is loopback."""
    scheme = "https" if config.certfile else "http"
    hosts = {host}
    if host in ("127.0.0.1", "[::1]"):
        hosts.add("localhost")
    return frozenset(f"{scheme}://{name}:{port}" for name in hosts)


class ReferenceServer:
    """EP-0001's server side: pool, health monitor, manager, store and jobs on one port."""

    def __init__(self, config: ServerConfig, store: StreamStore | None = None,
                 owns_process: bool = False) -> None:
        """``owns_process``: this server is its process's only job (``run``, a worker), so
        it may pace the process's garbage collector as ``config.gc`` says
        (``paced_gc``, ``wsctl.runtime.PacedCollector``); servers started inside other
        programs leave the collector alone."""
        self.config = config = config.for_profile()
        self.started = time.monotonic()
        self.store = store or store_maker(config.store)(config.replay_size, config.replay_age)
        self.pool = ConnectionPool(
            config.max_connections, config.max_per_client,
            retry_after=max(1, round(config.retry_hint_ms / 1000)),
        )
        self.jobs = JobSchedule(config.job_rate, config.job_steps)
        self.manager = WebSocketManager(
            self.store, self.pool, self.jobs,
            heartbeat=p.Heartbeat(config.ping_interval, config.ping_timeout),
            send_buffer=config.send_buffer,
            close_timeout=config.close_timeout,
            resume_enabled=config.resume,
            max_streams=config.max_streams,
            max_streams_per_client=config.max_streams_per_client,
            stream_idle=config.replay_age,
        )
        self.monitor: HealthMonitor | None = None
        if config.health_mode == "scheduler":
            self.monitor = HealthMonitor(
                config.ping_interval, config.ping_timeout, self._send_ping, self._close_dead
            )
        self.keepalive_dead = 0
        self.connections_gone = 0  # transports lost, HTTP requests' too
        self.collector: PacedCollector | None = None
        if owns_process and paced_gc(config):
            self.collector = PacedCollector()
        self.worker: int | None = None  # index among --workers, set by server_stub.workers
        self.draining = False
        self.url = ""
        self.port = 0
        self._server: Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._server_header = f"wsctl-reference/{__version__}"
        attributes: dict[str, Any] = {"owner": self}
        bases: tuple[type, ...] = (PooledConnection,)
        if config.profile == "reference":  # baseline: websockets' own handshake, as stock
            bases += (FastHandshake,)
            attributes.update(fast_admit=self.admit_upgrade,
                              fast_server_header=self._server_header.encode(),
                              fast_extensions=config.compression)
        self._conn_class = type("PooledConnection", bases, attributes)
        self._registry: CollectorRegistry | None = None
        self._allowed_origins: frozenset[str] = frozenset(config.origins)

    @property
    def registry(self) -> CollectorRegistry:
        """The Prometheus registry behind ``/metrics``, made on first use."""
        if self._registry is None:
            from server_stub.metrics import registry_for

            self._registry = registry_for(self)
        return self._registry

    def __repr__(self) -> str:
        return f"ReferenceServer(url={self.url!r}, profile={self.config.profile!r})"

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> str:
        """Listen, start the job and health schedulers; returns the ``ws://`` base URL."""
        cfg = self.config
        ssl_context = None
        if cfg.certfile:
            ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                ssl_context.load_cert_chain(cfg.certfile, cfg.keyfile)
            except (OSError, ssl.SSLError) as exc:
                raise InvalidInput(
                    f"cannot load TLS certificate {cfg.certfile} / key {cfg.keyfile}: {exc}"
                ) from exc
        per_connection = cfg.health_mode == "per-connection"
        await self.store.open()  # before listening: a resume must find the streams it left
        self.manager.restore()
        try:
            self._server = await serve(
                self._handler, cfg.host, cfg.port,
                process_request=self._process_request,
                compression="deflate" if cfg.compression else None,
                ping_interval=cfg.ping_interval if per_connection else None,
                ping_timeout=cfg.ping_timeout if per_connection else None,
                close_timeout=min(10.0, cfg.shutdown_timeout),
                max_size=cfg.max_message_size if cfg.profile == "reference" else 2**20,
                ssl=ssl_context,
                create_connection=self._conn_class,
                server_header=self._server_header,
                backlog=LISTEN_BACKLOG if cfg.profile == "reference" else STOCK_BACKLOG,
                reuse_port=cfg.workers > 1 or None,  # workers share the port (workers.py)
            )
        except OSError as exc:
            await self.store.close()
            raise listen_error(cfg, exc) from exc
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        host = cfg.host if ":" not in cfg.host else f"[{cfg.host}]"
        self.url = f"{cfg.scheme}://{host}:{self.port}"
        self._allowed_origins = frozenset(cfg.origins) | _own_origins(cfg, host, self.port)
        loop = asyncio.get_running_loop()
        runner = JobRunner(self.jobs, self.manager.publish, commit=self.manager.flush,
                           batch_window=self.store.commit_window)
        self._tasks.append(loop.create_task(runner.run()))
        self._tasks.append(loop.create_task(self._housekeeping()))
        if self.monitor is not None:
            self._tasks.append(loop.create_task(self.monitor.run()))
        if self.collector is not None:
            self.collector.install()
            self._tasks.append(loop.create_task(
                self.collector.run(self.pool.__len__, lambda: self.connections_gone)))
        log.info("listening on %s profile=%s loop=%s", self.url, cfg.profile,
                 type(loop).__module__.partition(".")[0])
        return self.url

    async def stop(self) -> None:
        """Graceful shutdown: refuse new connections, close every one with 1001 and a
        retry hint, wait at most ``shutdown_timeout``, then abort what is left."""
        if self._server is None:
            return
        self.draining = True
        reason = f"server shutting down; retry_ms={self.config.retry_hint_ms}"
        log.info("shutting down: closing %d connections with 1001", len(self.pool))
        self._server.close(close_connections=True, code=1001, reason=reason)
        try:
            await asyncio.wait_for(self._server.wait_closed(), self.config.shutdown_timeout)
        except TimeoutError:
            log.warning("shutdown timeout: aborting %d connections", len(self.pool))
            for session in self.pool:
                session.conn.transport.abort()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.collector is not None:
            self.collector.uninstall()
        self._server = None
        await self.store.close()

    async def serve_forever(self, announce: bool = True) -> None:
        """Start, print the URL, run until SIGTERM or SIGINT, then shut down gracefully."""
        url = await self.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if announce:
            print(announcement(url, self.config), flush=True)
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.stop()

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            for stream in self.manager.reap_idle():
                log.debug("stream %s idle: job stopped, history dropped", stream)

    # -- HTTP and handshake ----------------------------------------------------------

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        for name in _SINGLE_HEADERS:  # read one by one below: a repeat is a client error
            if len(request.headers.get_all(name)) > 1:
                log.info("refused %s: duplicate %s header",
                         conn.remote_address[0] if conn.remote_address else "?", name)
                return _respond(conn, 400, f"duplicate {name} header\n",
                                "text/plain; charset=utf-8")
        url = urlsplit(request.path)
        path = url.path
        upgrade = "websocket" in request.headers.get("Upgrade", "").lower()
        if path == "/metrics":
            from server_stub.metrics import exposition

            if self.config.secret:
                from server_stub.auth import metrics_refusal

                refusal = metrics_refusal(self.config.secret,
                                          request.headers.get("Authorization"),
                                          parse_qs(url.query).get("token", [None])[-1])
                if refusal is not None:
                    return _refuse(conn, self.pool.refuse(refusal))

            return _respond(conn, 200, *exposition(self.registry))
        if path == "/ws/health" and not upgrade:
            health = self.health()
            return _respond(conn, 200 if health["status"] == "ok" else 503,
                            json.dumps(health) + "\n", "application/json")
        if not upgrade:
            from server_stub import static_files

            if static_files.is_static_path(path):  # GET / is the dashboard
                return static_files.respond(conn, path)
        if not path.startswith("/ws/"):
            return _respond(conn, 404, f"not found: {path}; streams are at /ws/{{stream}}\n",
                            "text/plain; charset=utf-8")
        if not upgrade:
            return _respond(conn, 426, "this is a WebSocket endpoint: connect with ws://\n",
                            "text/plain; charset=utf-8", [("Upgrade", "websocket")])
        return self._upgrade(conn, url, request.headers.get("Origin"))

    def admit_upgrade(self, conn: ServerConnection, target: str,
                      origin: str | None) -> Response | None:
        """Admit a WebSocket upgrade of ``target`` (``/ws/{stream}?query``): None when
        admitted (a pool slot is taken), else the refusal to send. For the fast handshake
        (fast_handshake.py), which has already checked the request's form."""
        return self._upgrade(conn, urlsplit(target), origin)

    def _upgrade(self, conn: ServerConnection, url: SplitResult,
                 origin: str | None) -> Response | None:
        address = str(conn.remote_address[0]) if conn.remote_address else "?"
        admitted = self._admit(conn, address, url.path[len("/ws/"):], parse_qs(url.query),
                               origin)
        if isinstance(admitted, Refusal):
            log.info("refused %s %s: %d %s", address, url.path, admitted.status,
                     admitted.reason)
            return _refuse(conn, admitted)
        return None

    def _admit(self, conn: ServerConnection, address: str, stream: str,
               query: dict[str, list[str]], origin: str | None) -> Session | Refusal:
        """Validate a stream handshake and take a pool slot, or return the refusal.

        ``--origin`` guards against cross-site WebSocket hijacking: a browser ``Origin``
        not in the list is refused, except the server's own address as it listens (the
        dashboard this server serves). An ``Origin`` is never admitted for naming the
        ``Host`` header: both are the attacker's under DNS rebinding."""
        pool = self.pool
        if not p.STREAM_NAME.fullmatch(stream):
            return pool.refuse(Refusal(
                400, f"invalid stream name {stream[:40]!r}: use 1-128 of A-Z a-z 0-9 . _ -",
                "bad_request"))
        if self.draining:
            return pool.refuse(Refusal(503, "server is shutting down; retry later", "draining",
                                       pool.retry_after))
        if self.config.origins and origin is not None and origin not in self._allowed_origins:
            return pool.refuse(Refusal(403, f"origin {origin} is not allowed", "origin"))
        epoch = query.get("epoch", [None])[-1]
        offset_text = query.get("offset", [None])[-1]
        if (epoch is None) != (offset_text is None):
            return pool.refuse(Refusal(400, "resume needs both epoch and offset", "bad_request"))
        offset = None
        if offset_text is not None:
            if not _OFFSET.fullmatch(offset_text):
                return pool.refuse(Refusal(
                    400, f"offset must be a non-negative integer, got {offset_text[:20]!r}",
                    "bad_request"))
            offset = int(offset_text)
        if self.config.secret and stream != p.HEALTH_STREAM:
            from server_stub.auth import check_token

            refusal = check_token(self.config.secret, stream, query.get("token", [None])[-1])
            if refusal is not None:
                return pool.refuse(refusal)
        refusal = pool.check(address)
        if refusal is None and stream != p.HEALTH_STREAM:
            refusal = self.manager.claim(stream, address)
        if refusal is not None:
            return pool.refuse(refusal)
        admitted = pool.admit(conn, address)
        if isinstance(admitted, Session):
            conn.resume_request = ResumeRequest(stream, epoch, offset)  # type: ignore[attr-defined]
        return admitted

    # -- connections -----------------------------------------------------------------

    async def _handler(self, conn: ServerConnection) -> None:
        session = self.pool.get(conn)
        request: ResumeRequest | None = getattr(conn, "resume_request", None)
        if session is None or request is None:  # not admitted by process_request
            await conn.close(1011, "internal error: connection not admitted")
            return
        session.stream = request.stream
        if self.monitor is not None:
            self.monitor.add(session)
        try:
            if request.stream == p.HEALTH_STREAM:
                await self._health_feed(session)
            else:
                await self.manager.serve(session, request)
        finally:
            if self.monitor is not None:
                self.monitor.remove(session)

    async def _health_feed(self, session: Session) -> None:
        conn = session.conn
        while not session.closing:
            self.manager.write(session, json.dumps(self.health()))
            try:
                await asyncio.wait_for(conn.recv(), 1.0)
            except TimeoutError:
                continue
            except ConnectionClosed:
                return

    def connection_gone(self, conn: ServerConnection) -> None:
        """Transport lost: release the slot, log the close, count keepalive deaths."""
        code, reason = _close_code(conn)
        self.connections_gone += 1
        session = self.pool.release(conn, code)
        if session is None:
            return
        if self.monitor is None and code == 1011 and reason == KEEPALIVE_TIMEOUT_REASON:
            self.keepalive_dead += 1
        log.info(
            "close id=%d addr=%s stream=%s code=%d reason=%r age=%.3fs",
            session.id, session.address, session.stream, code, reason,
            self.pool.clock.now() - session.opened_at,
        )

    def _send_ping(self, key: Hashable) -> None:
        assert isinstance(key, Session)
        conn = key.conn
        if key.closing or conn.protocol.state is not State.OPEN:
            return
        payload = os.urandom(HEARTBEAT_PAYLOAD_SIZE)
        conn.heartbeat_payload = payload
        with contextlib.suppress(Exception):
            conn.protocol.send_ping(payload)
            conn.send_data()

    def _close_dead(self, key: Hashable) -> None:
        """A peer that stopped answering: close frame 1011, then close TCP at once."""
        assert isinstance(key, Session)
        log.warning("dead id=%d addr=%s stream=%s: no pong within %.1fs, closing 1011",
                    key.id, key.address, key.stream, self.config.ping_timeout)
        key.closing = True
        conn = key.conn
        with contextlib.suppress(Exception):
            conn.protocol.fail(1011, KEEPALIVE_TIMEOUT_REASON)
            conn.send_data()
        conn.transport.close()  # flushes what is buffered first: hence the deadline
        abort_after(key, self.config.close_timeout)

    # -- reporting -------------------------------------------------------------------

    @property
    def dead_detected(self) -> int:
        return (self.monitor.dead_detected if self.monitor else 0) + self.keepalive_dead

    def health(self) -> dict[str, Any]:
        """The /ws/health document."""
        problem = self.store.problem()
        status = ("draining" if self.draining else "at_capacity" if self.pool.at_capacity
                  else "degraded" if problem else "ok")
        liveness = self.monitor.counts() if self.monitor else {}
        return {
            "status": status,
            "version": __version__,
            "profile": self.config.profile,
            "uptime": round(time.monotonic() - self.started, 3),
            "connections": len(self.pool),
            "max_connections": self.config.max_connections,
            "refused": self.pool.counters.refused,
            "dead_detected": self.dead_detected,
            "late": liveness.get("late", 0),
            "streams": len(self.jobs),
            "store_size": self.store.size(),
            "worker": self.worker,
            "pid": os.getpid(),
            **({"reason": problem} if problem else {}),
        }


def listen_error(config: ServerConfig, exc: OSError) -> WsctlError:
    """What a failed bind of ``config.host``:``config.port`` means to the person who ran
    the server (exit 2 for a wrong host, 3 for a taken port)."""
    where = f"cannot listen on {config.host}:{config.port}"
    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        return InvalidInput(f"{where}: {exc.strerror}; --host must be an address of this "
                            "machine (127.0.0.1 by default)")
    if exc.errno == errno.EADDRINUSE:
        return PortInUse(f"{where}: address already in use; choose another --port (0 picks "
                         "a free one)")
    return RunFailed(f"{where}: {exc.strerror}")


def announcement(url: str, config: ServerConfig) -> str:
    """The first stdout line: the URL (``ws://HOST:PORT``) and where everything is."""
    http_url = url.replace("ws", "http", 1)
    workers = f", {config.workers} workers" if config.workers > 1 else ""
    return (f"wsctl serve: listening on {url} (profile {config.profile}{workers}); "
            f"dashboard {http_url}/ ; streams {url}/ws/{{stream}} ; "
            f"health {http_url}/ws/health")


def event_loop(config: ServerConfig) -> str:
    """The event loop ``config.loop`` names: ``auto`` is uvloop for the reference profile
    when it is installed, and asyncio's own for ``baseline`` (EP-0001's "before" ran a
    stock websockets server on asyncio). InvalidInput for uvloop when it is missing."""
    wanted = config.loop
    if wanted == "auto":
        wanted = "uvloop" if config.profile == "reference" else "asyncio"
    if wanted == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError as exc:
            if config.loop == "auto":
                return "asyncio"
            raise InvalidInput("--loop uvloop needs the uvloop package: pip install uvloop "
                               "(or use --loop asyncio)") from exc
    return wanted


def paced_gc(config: ServerConfig) -> bool:
    """Whether ``config.gc`` paces the collector: ``auto`` does for the reference profile;
    baseline keeps CPython's own (EP-0001's "before" ran a stock server)."""
    if config.gc == "auto":
        return config.profile == "reference"
    return config.gc == "paced"


def loop_factory(config: ServerConfig) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """For ``asyncio.Runner``: uvloop's loop where ``event_loop`` picks it, else None."""
    from wsctl.runtime import loop_factory as named

    return named(event_loop(config))


def run(config: ServerConfig) -> int:
    """Run the server until SIGTERM/SIGINT; returns the exit status (0 after a clean stop)."""
    with asyncio.Runner(loop_factory=loop_factory(config)) as runner:
        runner.run(ReferenceServer(config, owns_process=True).serve_forever())
    return 0


__all__ = ["ReferenceServer", "run"]
