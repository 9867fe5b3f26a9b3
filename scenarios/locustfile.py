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
this file. It is only Locust's entry: options, the user and the collection of reports. The
clients are ``wsctl.bench.locust_client``, the messages ``wsctl.bench.messages``, the
per-process measurements and the merge ``wsctl.bench.locust``, the failure kinds
``wsctl.errors``.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import gevent
from locust import User, constant, events, task
from locust.runners import MasterRunner, WorkerRunner
from websockets.exceptions import ConnectionClosed

from wsctl import __version__
from wsctl.bench.locust import Measurements, WorkerReport, merge_reports, stream_url
from wsctl.bench.locust_client import GeventWebSocket, sync_connect
from wsctl.bench.messages import is_other_protocol_frame, is_pong, payload
from wsctl.errors import classify_connect_error
from wsctl.protocol import Error, Event, ProtocolError, Welcome, parse_server, resume_query

log = logging.getLogger("wsctl.locust")

CONNECT_TIMEOUT = 10.0
ECHO_TIMEOUT = 30.0  # no echo this long: the connection is counted as timed out and replaced
COLLECT_TIMEOUT = float(os.environ.get("WSCTL_LOCUST_COLLECT_TIMEOUT", "15"))
USERS_PER_WORKER = 1_000_000  # user numbers: worker index * this + the user's number in it


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


PROCESS = Measurements()
_numbers = itertools.count()


class WebSocketUser(User):
    """One WebSocket connection, replaced one second after it fails or is lost."""

    wait_time = constant(1)

    def on_start(self) -> None:
        opts = self.environment.parsed_options
        self.mode: str = getattr(opts, "wsctl_mode", "echo") if opts else "echo"
        self.rate: float = float(getattr(opts, "wsctl_message_rate", 1.0) if opts else 1.0)
        self.size: int = int(getattr(opts, "wsctl_payload_size", 64) if opts else 64)
        client = getattr(opts, "wsctl_client", "gevent") if opts else "gevent"
        self.open_ws: Any = sync_connect if client == "sync" else GeventWebSocket
        template: str = getattr(opts, "wsctl_stream", "alert-{n}") if opts else "alert-{n}"
        index = int(getattr(self.environment.runner, "worker_index", 0) or 0)
        self.n = index * USERS_PER_WORKER + next(_numbers)
        host = (self.host or "").replace("{n}", str(self.n))
        self.url = stream_url(host, template, self.n) if self.mode == "resume" else host
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
            metrics.add(f"errors.{classify_connect_error(exc, CONNECT_TIMEOUT).kind}")
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
            message = payload(stamp, self.size)
            sent = clock()
            ws.send(message)
            counters["messages.sent"] += 1
            reply = ws.recv(timeout=ECHO_TIMEOUT)
            while reply != message and is_other_protocol_frame(reply, stamp):
                # the reference server's welcome and events: not the answer, not an error
                reply = ws.recv(timeout=max(0.001, ECHO_TIMEOUT - (clock() - sent)))
            got = clock()
            if reply == message or is_pong(reply, stamp):
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
    # gevent's loop caches "now" and Locust's start-up (imports, this file) runs without a
    # loop turn, so --run-time measured from that stale instant ended a 1 s run after a few
    # milliseconds on a busy machine. Refresh it before Locust arms its run-time timer.
    gevent.get_hub().loop.update_now()
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
