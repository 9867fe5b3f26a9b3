"""A Locust user that speaks WebSocket, for ``wsctl bench --engine locust`` or plain Locust.

    locust -f scenarios/locustfile.py --headless -u 100 -r 20 -t 30s --host ws://127.0.0.1:8765

Each user connects (reported to Locust as request type ``WS``, name ``connect``), then:

* ``echo`` mode: sends a timestamped JSON ping (``{"type":"ping","t":TS,"p":"xx…"}``,
  about ``WSCTL_PAYLOAD_SIZE`` bytes, as ``wsctl bench`` does) ``WSCTL_MESSAGE_RATE`` times a
  second and waits for the answer: an echo server echoes it, the reference server answers
  ``pong`` with the same ``t`` (name ``echo``, response time = the round trip);
* ``resume`` mode: reads protocol v1 from the reference server at ``HOST/ws/<stream>``
  (``WSCTL_STREAM``, default ``alert-{n}``, n = the user's number) — a welcome, then events
  (name ``event``, response time = now - the event's ``ts``), resuming after a loss.

Failures go to Locust as exceptions: a refused connect, a handshake status, a close code.
Besides Locust's own statistics, every process records exact HDR histograms (wsctl's
``connect_time``; ``rtt`` from the intended send time, coordinated omission corrected, and
``rtt.uncorrected`` from the actual send; ``delivery_latency`` in resume mode), counters and
its CPU seconds; when the test
stops, the master collects them from every worker, merges them (never averaging
percentiles) and writes one wsctl result (kind ``bench``) to ``WSCTL_LOCUST_RESULT``.

Settings: environment variables or the matching ``--wsctl-*`` options (the master passes
its options to the workers). Runs only inside Locust (gevent); wsctl itself never imports
this file.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import json
import logging
import os
import socket
import ssl
import time
from array import array
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import gevent
from locust import User, constant, events, task
from locust.runners import MasterRunner, WorkerRunner
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.sync.client import connect
from websockets.uri import parse_uri

from wsctl import __version__
from wsctl.bench.locust import WorkerReport, error_kind, merge_reports
from wsctl.metrics import Histogram, MetricSet
from wsctl.metrics.histogram import HIGHEST
from wsctl.protocol import Error, Event, ProtocolError, Welcome, parse_server, resume_query

log = logging.getLogger("wsctl.locust")

CONNECT_TIMEOUT = 10.0
ECHO_TIMEOUT = 30.0  # no echo this long: the connection is counted as timed out and replaced
COLLECT_TIMEOUT = float(os.environ.get("WSCTL_LOCUST_COLLECT_TIMEOUT", "15"))
USERS_PER_WORKER = 1_000_000  # user numbers: worker index * this + the user's number in it
# websockets 17 wants connect() as a context manager unless told the connection is kept.
_open: Callable[..., Any] = (
    functools.partial(connect, legacy=True)
    if "legacy" in inspect.signature(connect).parameters else connect
)


@events.init_command_line_parser.add_listener
def _options(parser: Any, **_: Any) -> None:
    parser.add_argument("--wsctl-mode", choices=["echo", "resume"], default="echo",
                        env_var="WSCTL_MODE",
                        help="echo: timed round trips; resume: read protocol v1 events")
    parser.add_argument("--wsctl-message-rate", type=float, default=1.0,
                        env_var="WSCTL_MESSAGE_RATE",
                        help="echo mode: messages per user per second (0 = only hold)")
    parser.add_argument("--wsctl-payload-size", type=int, default=64,
                        env_var="WSCTL_PAYLOAD_SIZE",
                        help="echo mode: bytes per message, about (JSON included)")
    parser.add_argument("--wsctl-stream", default="alert-{n}", env_var="WSCTL_STREAM",
                        help="resume mode: stream name template; {n} is the user's number")
    parser.add_argument("--wsctl-result", default="", env_var="WSCTL_LOCUST_RESULT",
                        help="where the master writes the merged wsctl result JSON")
    parser.add_argument("--wsctl-client", choices=["gevent", "sync"], default="gevent",
                        env_var="WSCTL_LOCUST_CLIENT",
                        help="gevent: websockets' protocol driven in the user's greenlet; "
                             "sync: websockets' sync client (a reader thread per connection)")


class GeventWebSocket:
    """A WebSocket client on websockets' sans-I/O ``ClientProtocol``, driven in the calling
    greenlet: no reader thread, no queue, no lock per message (the sync client has all
    three). Answers pings; ``recv`` raises ``ConnectionClosed`` like websockets does."""

    def __init__(self, url: str, *, timeout: float, user_agent: str) -> None:
        uri = parse_uri(url)
        sock = socket.create_connection((uri.host, uri.port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if uri.secure:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=uri.host)
            self.sock = sock
            self.proto = ClientProtocol(uri, max_size=2**20)
            self.pending: deque[str | bytes] = deque()
            self.fragments: list[bytes] = []
            self.eof = False
            self.timeout: float | None = timeout
            request = self.proto.connect()
            request.headers["User-Agent"] = user_agent
            self.proto.send_request(request)
            self._flush()
            while self.proto.state is State.CONNECTING and self.proto.handshake_exc is None:
                if self.eof:
                    raise ConnectionResetError("connection closed during the handshake")
                self._read(timeout)
            if self.proto.handshake_exc is not None:
                raise self.proto.handshake_exc
        except BaseException:
            sock.close()
            raise

    def _flush(self) -> None:
        for chunk in self.proto.data_to_send():
            if chunk:
                self.sock.sendall(chunk)
            else:  # the protocol wants the write side closed
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_WR)

    def _read(self, timeout: float | None) -> None:
        if timeout != self.timeout:
            self.sock.settimeout(timeout)
            self.timeout = timeout
        data = self.sock.recv(262144)
        proto = self.proto
        if data:
            proto.receive_data(data)
        else:
            self.eof = True
            proto.receive_eof()
        for event in proto.events_received():
            if not isinstance(event, Frame):
                continue  # the handshake response
            opcode = event.opcode
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY or opcode is Opcode.CONT:
                if opcode is not Opcode.CONT:
                    self.text = opcode is Opcode.TEXT
                    self.fragments = []
                if event.fin and not self.fragments:
                    whole = bytes(event.data)
                else:
                    self.fragments.append(bytes(event.data))
                    if not event.fin:
                        continue
                    whole, self.fragments = b"".join(self.fragments), []
                self.pending.append(whole.decode() if self.text else whole)
        self._flush()  # pongs, the close handshake

    def send(self, text: str) -> None:
        if self.proto.state is not State.OPEN:
            raise ConnectionClosed(self.proto.close_rcvd, self.proto.close_sent)
        self.proto.send_text(text.encode())
        self._flush()

    def recv(self, timeout: float | None = None) -> str | bytes:
        pending = self.pending
        while not pending:
            if self.eof or self.proto.close_rcvd is not None:
                raise ConnectionClosed(self.proto.close_rcvd, self.proto.close_sent)
            self._read(timeout)
        return pending.popleft()

    def close(self) -> None:
        """Close handshake (at most a second), then the socket."""
        try:
            if self.proto.state is State.OPEN:
                self.proto.send_close(1000)
                self._flush()
                deadline = time.monotonic() + 1.0
                while not self.eof and time.monotonic() < deadline:
                    self._read(max(0.01, deadline - time.monotonic()))
        except (OSError, ConnectionClosed):
            pass
        finally:
            self.sock.close()


def _sync_connect(url: str, *, timeout: float, user_agent: str) -> Any:
    return _open(url, open_timeout=timeout, close_timeout=1, compression=None, proxy=None,
                 ping_interval=None, max_size=2**20, user_agent_header=user_agent)


class Samples:
    """Latencies on their way into an HDR histogram. Appending an int costs a fraction of
    hdrh's pure-Python ``record_value``, so values are recorded in bulk (one call per
    distinct microsecond value) when the buffer fills and before every report."""

    __slots__ = ("hist", "buf")
    LIMIT = 200_000

    def __init__(self, hist: Histogram) -> None:
        self.hist = hist
        self.buf = array("q")

    def add(self, seconds: float) -> None:
        self.buf.append(int(seconds * 1_000_000))
        if len(self.buf) >= self.LIMIT:
            self.flush()

    def flush(self) -> None:
        hdr, top = self.hist._hdr, HIGHEST["s"]  # noqa: SLF001 - bulk recording
        for value, count in Counter(self.buf).items():
            if value < 0 or value > top:
                self.hist.clamped += count
                value = min(max(value, 0), top)
            hdr.record_value(value, count)
        self.buf = array("q")


class Process:
    """This process's share of the measurements; greenlets are cooperative, so plain
    attribute updates need no lock."""

    def __init__(self) -> None:
        self.reset("echo")

    def reset(self, mode: str) -> None:
        latency = [("rtt", "s"), ("rtt.uncorrected", "s")] if mode == "echo" \
            else [("delivery_latency", "s")]
        self.metrics = MetricSet(
            [("connect_time", "s"), *latency],  # type: ignore[list-item]
            ["messages.sent", "messages.received", "connections.opened",
             "connections.failed", "connections.lost"],
        )
        self.samples = {name: Samples(h) for name, h in self.metrics.histograms.items()}
        self.open = 0
        self.held = 0
        self.cpu0 = time.process_time()
        self.wall0 = time.time()
        self.mono0 = time.monotonic()
        self.reports: list[WorkerReport] = []
        self.written = False

    def opened(self) -> None:
        self.open += 1
        self.held = max(self.held, self.open)

    def report(self, node: str) -> WorkerReport:
        for samples in self.samples.values():
            samples.flush()
        return WorkerReport.of(self.metrics, self.held, time.process_time() - self.cpu0, node)


PROCESS = Process()
_numbers = itertools.count()


def _stream_url(host: str, template: str, n: int) -> str:
    """The reference server's stream URL: HOST/ws/<stream>, unless HOST names one already."""
    if urlsplit(host).path.startswith("/ws/"):
        return host
    return f"{host.rstrip('/')}/ws/{template.format(n=n)}"


def ping_payload(stamp: str, size: int) -> str:
    """A protocol v1 ``ping`` of about ``size`` bytes (wsctl bench's echo message)."""
    head = f'{{"type":"ping","t":{stamp}'
    pad = size - len(head) - 8
    return head + "}" if pad <= 0 else f'{head},"p":"{"x" * pad}"}}'


def is_pong(reply: str | bytes, stamp: str) -> bool:
    """Whether ``reply`` is the reference server's ``pong`` to the ping stamped ``stamp``."""
    if not isinstance(reply, str) or not reply.startswith('{"type":"pong"'):
        return False
    try:
        return float(json.loads(reply)["t"]) == float(stamp)
    except (ValueError, KeyError, TypeError):
        return False


def is_other_protocol_frame(reply: str | bytes, stamp: str) -> bool:
    """A protocol v1 frame that is not the answer to this ping (welcome, event, old pong)."""
    return (isinstance(reply, str) and reply.startswith('{"type":"')
            and not reply.startswith('{"type":"ping"') and not is_pong(reply, stamp)
            and not reply.startswith('{"type":"error"'))


class WebSocketUser(User):
    """One WebSocket connection, replaced one second after it fails or is lost."""

    wait_time = constant(1)

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        self.mode: str = getattr(opts, "wsctl_mode", "echo") if opts else "echo"
        self.rate: float = float(getattr(opts, "wsctl_message_rate", 1.0) if opts else 1.0)
        self.size: int = int(getattr(opts, "wsctl_payload_size", 64) if opts else 64)
        client = getattr(opts, "wsctl_client", "gevent") if opts else "gevent"
        self.open_ws: Callable[..., Any] = _sync_connect if client == "sync" else GeventWebSocket
        template: str = getattr(opts, "wsctl_stream", "alert-{n}") if opts else "alert-{n}"
        index = int(getattr(self.environment.runner, "worker_index", 0) or 0)
        self.n = index * USERS_PER_WORKER + next(_numbers)
        host = (self.host or "").replace("{n}", str(self.n))
        self.url = _stream_url(host, template, self.n) if self.mode == "resume" else host
        self.epoch: str | None = None
        self.offset: int | None = None

    def _fire(self, name: str, seconds: float, length: int = 0,
              exception: BaseException | None = None) -> None:
        self.environment.events.request.fire(
            request_type="WS", name=name, response_time=seconds * 1000.0,
            response_length=length, exception=exception, context={},
        )

    def _connect(self) -> Any:
        metrics = PROCESS.metrics
        url = self.url + (resume_query(self.epoch, self.offset) if self.mode == "resume" else "")
        start = time.perf_counter()
        try:
            ws = self.open_ws(url, timeout=CONNECT_TIMEOUT,
                              user_agent=f"wsctl-locust/{__version__}")
        except Exception as exc:  # every failure is a result: counted, reported, retried
            metrics.add("connections.failed")
            metrics.add(f"errors.{error_kind(exc)}")
            self._fire("connect", time.perf_counter() - start, exception=exc)
            return None
        took = time.perf_counter() - start
        PROCESS.samples["connect_time"].add(took)
        metrics.add("connections.opened")
        self._fire("connect", took)
        return ws

    @task
    def session(self) -> None:
        ws = self._connect()
        if ws is None:
            return
        PROCESS.opened()
        opened_at = time.perf_counter()
        try:
            if self.mode == "resume":
                self._resume(ws)
            elif self.rate > 0:
                self._echo(ws)
            else:
                while True:  # hold: the server may still send (or close)
                    ws.recv()
                    PROCESS.metrics.add("messages.received")
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else 1006
            PROCESS.metrics.add(f"closes.{code}")
            if code != 1000:
                PROCESS.metrics.add("connections.lost")
                self._fire("connection", time.perf_counter() - opened_at, exception=exc)
        except TimeoutError as exc:
            PROCESS.metrics.add("errors.timeout")
            PROCESS.metrics.add("connections.lost")
            self._fire("connection", time.perf_counter() - opened_at, exception=exc)
        finally:
            PROCESS.open -= 1
            ws.close()

    def _echo(self, ws: Any) -> None:
        """Send on a fixed schedule, one message in flight; ``rtt`` counts from the intended
        send time (coordinated omission: a late send still counts its wait),
        ``rtt.uncorrected`` and Locust's response time from the actual send."""
        metrics = PROCESS.metrics
        rtt = PROCESS.samples["rtt"].add
        uncorrected = PROCESS.samples["rtt.uncorrected"].add
        counters = metrics.counters
        interval = 1.0 / self.rate
        clock = time.perf_counter
        intended = clock()
        while True:
            wait = intended - clock()
            if wait > 0:
                time.sleep(wait)
            stamp = f"{time.time():.6f}"
            payload = ping_payload(stamp, self.size)
            sent = clock()
            ws.send(payload)
            counters["messages.sent"] += 1
            reply = ws.recv(timeout=ECHO_TIMEOUT)
            while reply != payload and is_other_protocol_frame(reply, stamp):
                # the reference server's welcome and events: not the answer, not an error
                reply = ws.recv(timeout=max(0.001, ECHO_TIMEOUT - (clock() - sent)))
            got = clock()
            if reply == payload or is_pong(reply, stamp):
                counters["messages.received"] += 1
                rtt(got - intended)
                uncorrected(got - sent)
                self._fire("echo", got - sent, len(reply))
            else:
                metrics.add("messages.invalid")
                self._fire("echo", got - sent, len(reply),
                           ValueError(f"the answer to ping {stamp} was neither its echo "
                                      f"nor its pong: {str(reply)[:80]!r}"))
            intended += interval

    def _resume(self, ws: Any) -> None:
        """Read welcome and events; remember the position so a reconnect resumes."""
        metrics = PROCESS.metrics
        delivery = PROCESS.samples["delivery_latency"].add
        while True:
            frame = ws.recv()
            at = time.time()
            try:
                message = parse_server(frame)
            except ProtocolError as exc:
                metrics.add("messages.invalid")
                self._fire("event", 0.0, len(frame), exc)
                continue
            if isinstance(message, Event):
                metrics.counters["messages.received"] += 1
                self.offset = message.offset
                latency = max(0.0, at - message.ts)
                delivery(latency)
                self._fire("event", latency, len(frame))
            elif isinstance(message, Welcome):
                self.epoch, self.offset = message.epoch, message.offset
                if message.replayed:
                    metrics.add("messages.replayed", message.replayed)
            elif isinstance(message, Error):
                metrics.add(f"errors.server_{message.code}")


# --- collecting every process's measurements on the master ---------------------------------


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message("wsctl_collect", _send_report)
    elif isinstance(runner, MasterRunner):
        runner.register_message("wsctl_report", _receive_report)


@events.test_start.add_listener
def _on_test_start(environment: Any, **_: Any) -> None:
    opts = environment.parsed_options
    PROCESS.reset(getattr(opts, "wsctl_mode", "echo") if opts else "echo")


def _send_report(environment: Any, msg: Any, **_: Any) -> None:
    """Stop this worker's users first, so its figures and Locust's own cover the same run."""
    runner = environment.runner
    runner.stop()
    runner.send_message("wsctl_report", PROCESS.report(str(runner.client_id)).to_message())


def _receive_report(environment: Any, msg: Any, **_: Any) -> None:
    PROCESS.reports.append(WorkerReport.from_message(msg.data))


@events.test_stopping.add_listener
def _on_test_stopping(environment: Any, **_: Any) -> None:
    """Master, before the test stops: every worker stops its users and sends its report
    (before it reports 'stopped', so all have arrived when Locust's own stop returns)."""
    runner = environment.runner
    if not isinstance(runner, MasterRunner) or PROCESS.written:
        return
    try:
        expected = runner.worker_count
        PROCESS.reports.clear()
        runner.send_message("wsctl_collect", None)
        deadline = time.monotonic() + COLLECT_TIMEOUT
        while len(PROCESS.reports) < expected and time.monotonic() < deadline:
            gevent.sleep(0.05)
        if len(PROCESS.reports) < expected:
            log.warning("wsctl: %d of %d workers sent no measurements",
                        expected - len(PROCESS.reports), expected)
        _write(environment, list(PROCESS.reports), time.process_time() - PROCESS.cpu0,
               expected)
    except Exception:
        log.exception("wsctl: could not write the merged result")


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_: Any) -> None:
    """A standalone Locust, after its users stopped: its own report is the result."""
    runner = environment.runner
    if isinstance(runner, MasterRunner | WorkerRunner) or PROCESS.written:
        return
    try:
        _write(environment, [PROCESS.report("local")], 0.0, None)
    except Exception:
        log.exception("wsctl: could not write the result")


def _write(environment: Any, reports: list[WorkerReport], master_cpu: float,
           expected: int | None) -> None:
    """Merge the reports into one wsctl result and write it where --wsctl-result says."""
    result = merge_reports(reports, started_at=PROCESS.wall0,
                           duration=time.monotonic() - PROCESS.mono0,
                           target=environment.host, master_cpu_s=master_cpu,
                           expected=expected)
    PROCESS.written = True
    opts = environment.parsed_options
    result.details["client"] = getattr(opts, "wsctl_client", "gevent") if opts else "gevent"
    path = getattr(opts, "wsctl_result", "") if opts else ""
    if path:
        target = Path(path)
        partial = target.with_name(target.name + ".partial")
        partial.write_text(json.dumps(result.to_dict(), indent=1))
        partial.replace(target)
        log.info("wsctl: result written to %s", target)
