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

import functools
import inspect
import itertools
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import gevent
from locust import User, constant, events, task
from locust.runners import MasterRunner, WorkerRunner
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from wsctl import __version__
from wsctl.bench.locust import WorkerReport, error_kind, merge_reports
from wsctl.metrics import MetricSet
from wsctl.protocol import Error, Event, ProtocolError, Welcome, parse_server, resume_query

log = logging.getLogger("wsctl.locust")

CONNECT_TIMEOUT = 10.0
ECHO_TIMEOUT = 30.0  # no echo this long: the connection is counted as timed out and replaced
COLLECT_TIMEOUT = float(os.environ.get("WSCTL_LOCUST_COLLECT_TIMEOUT", "15"))
USERS_PER_WORKER = 1_000_000  # user numbers: worker index * this + the user's number in it
# websockets 17 wants connect() as a context manager unless told the connection is kept.
_open: Callable[..., ClientConnection] = (
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

    def _connect(self) -> ClientConnection | None:
        metrics = PROCESS.metrics
        url = self.url + (resume_query(self.epoch, self.offset) if self.mode == "resume" else "")
        start = time.perf_counter()
        try:
            ws = _open(url, open_timeout=CONNECT_TIMEOUT, close_timeout=1, compression=None,
                       proxy=None, ping_interval=None, max_size=2**20,
                       user_agent_header=f"wsctl-locust/{__version__}")
        except Exception as exc:  # every failure is a result: counted, reported, retried
            metrics.add("connections.failed")
            metrics.add(f"errors.{error_kind(exc)}")
            self._fire("connect", time.perf_counter() - start, exception=exc)
            return None
        took = time.perf_counter() - start
        metrics.record("connect_time", took)
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

    def _echo(self, ws: ClientConnection) -> None:
        """Send on a fixed schedule, one message in flight; ``rtt`` counts from the intended
        send time (coordinated omission: a late send still counts its wait),
        ``rtt.uncorrected`` and Locust's response time from the actual send."""
        metrics = PROCESS.metrics
        rtt = metrics.histograms["rtt"]
        uncorrected = metrics.histograms["rtt.uncorrected"]
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
                rtt.record(got - intended)
                uncorrected.record(got - sent)
                self._fire("echo", got - sent, len(reply))
            else:
                metrics.add("messages.invalid")
                self._fire("echo", got - sent, len(reply),
                           ValueError(f"the answer to ping {stamp} was neither its echo "
                                      f"nor its pong: {str(reply)[:80]!r}"))
            intended += interval

    def _resume(self, ws: ClientConnection) -> None:
        """Read welcome and events; remember the position so a reconnect resumes."""
        metrics = PROCESS.metrics
        delivery = metrics.histograms["delivery_latency"]
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
                delivery.record(latency)
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
    """Before users stop: ask every worker for its report, wait for them, merge, write."""
    runner = environment.runner
    if isinstance(runner, WorkerRunner) or PROCESS.written:
        return
    try:
        opts = environment.parsed_options
        path = getattr(opts, "wsctl_result", "") if opts else ""
        expected = None
        if isinstance(runner, MasterRunner):
            expected = runner.worker_count
            PROCESS.reports.clear()
            runner.send_message("wsctl_collect", None)
            deadline = time.monotonic() + COLLECT_TIMEOUT
            while len(PROCESS.reports) < expected and time.monotonic() < deadline:
                gevent.sleep(0.05)
            if len(PROCESS.reports) < expected:
                log.warning("wsctl: %d of %d workers sent no measurements",
                            expected - len(PROCESS.reports), expected)
            reports, master_cpu = list(PROCESS.reports), time.process_time() - PROCESS.cpu0
        else:
            reports, master_cpu = [PROCESS.report("local")], 0.0
        result = merge_reports(reports, started_at=PROCESS.wall0,
                               duration=time.monotonic() - PROCESS.mono0,
                               target=environment.host, master_cpu_s=master_cpu,
                               expected=expected)
        PROCESS.written = True
        if path:
            target = Path(path)
            partial = target.with_name(target.name + ".partial")
            partial.write_text(json.dumps(result.to_dict(), indent=1))
            partial.replace(target)
            log.info("wsctl: result written to %s", target)
    except Exception:
        log.exception("wsctl: could not write the merged result")
