"""The asyncio load engine: open-model arrivals, paced sends with coordinated-omission
correction, and everything it counts.

Pure parts first (no await): :class:`ArrivalSchedule` says which connections are due,
:class:`Recorder` holds the figures, :func:`to_metrics` turns them into a ``MetricSet``.
The driver (:class:`Engine`) is the boring asyncio around them.

Open model: connection ``j`` is started at its planned instant whether or not earlier
connects have finished. Every connection has a send schedule of ``message_rate`` per
second; a send that goes out late (the loop was behind, or ``in_flight`` unanswered
messages held it back) is timed from its *intended* instant, so a stall is counted once
for every send it delayed (``rtt``), not once in total (``rtt.uncorrected``).

Listen mode (``wsctl.bench.listen``) sends nothing: it counts what a push-only service
sends, and reads loss and delivery latency from the ``protocol`` block's paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import heapq
import math
import os
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wsctl.bench.listen import Listener, per_connection, settle
from wsctl.bench.messages import event_ts, ping_parts
from wsctl.bench.plan import BenchPlan
from wsctl.bench.samples import record_many
from wsctl.bench.transport import Channel, Transport, get_transport
from wsctl.clock import Clock, MonotonicClock
from wsctl.errors import CONNECT_KINDS, classify_connect_error
from wsctl.metrics import MetricSet
from wsctl.probe.dialect import Context, Dialect
from wsctl.probe.dialect import frame as frame_text
from wsctl.runtime import PacedCollector

# Every fixed connect-failure kind is in the result, at zero too, so a criterion on one is
# measured; errors.status_<code> and errors.closed_<code> appear when one happens.
ALWAYS_ERRORS = tuple(CONNECT_KINDS)
LAG_INTERVAL = 0.05  # the loop-lag monitor's period
# The shortest wait of the send and arrival schedulers. uvloop rounds a timer to whole
# milliseconds, so a wait of 0.3 ms became 0 ms and the scheduler spun until the instant
# came (0.9 cores instead of 0.4 at 10,000 sends/s); asyncio's epoll rounds up to 1 ms
# anyway. A send that goes out up to 1 ms late is still timed from its intended instant.
MIN_WAIT = 0.001


# --- pure parts -------------------------------------------------------------------------


class ArrivalSchedule:
    """Which connections are due: connection ``j`` at ``start + offset(j)``, in order.

    ``take_due(now)`` hands out every index whose instant has come and not been handed out;
    nothing here waits for a connect to finish, which is what makes the model open.
    """

    __slots__ = ("start", "count", "_offset", "_next")

    def __init__(self, start: float, count: int, offset: Callable[[int], float]) -> None:
        self.start = start
        self.count = count
        self._offset = offset
        self._next = 0

    def due_at(self, j: int) -> float:
        return self.start + self._offset(j)

    def take_due(self, now: float) -> range:
        first = self._next
        j = first
        while j < self.count and self.due_at(j) <= now:
            j += 1
        self._next = j
        return range(first, j)

    def next_due(self) -> float | None:
        """The instant of the next connection not handed out yet (None: all were)."""
        return self.due_at(self._next) if self._next < self.count else None


def phase(index: int, interval: float) -> float:
    """Where in its send period connection ``index`` starts, spread evenly (golden ratio),
    so a thousand connections opened together do not send in lock-step."""
    return ((index * 0.6180339887498949) % 1.0) * interval


@dataclass(slots=True)
class Recorder:
    """Everything one bench process counts, as plain attributes (the hot path adds to them).

    Latencies are kept as integer microseconds in arrays and put into HDR histograms at
    the end (``to_metrics``): appending to an array costs far less than an HDR record.
    """

    rec_start: float = 0.0
    rec_end: float = math.inf
    sent: int = 0
    received: int = 0
    opened: int = 0
    failed: int = 0
    lost: int = 0
    held: int = 0
    held_max: int = 0
    rtt: array = field(default_factory=lambda: array("q"))
    rtt_uncorrected: array = field(default_factory=lambda: array("q"))
    delivery: array = field(default_factory=lambda: array("q"))
    connect: array = field(default_factory=lambda: array("q"))
    loop_lag: array = field(default_factory=lambda: array("q"))
    errors: Counter[str] = field(default_factory=Counter)
    closes: Counter[str] = field(default_factory=Counter)
    unanswered: int = 0
    invalid: int = 0  # listen mode: frames whose sequence or timestamp was unreadable
    numbered: int = 0  # listen mode: messages with a sequence number
    timed: int = 0  # listen mode: messages with a sender's time
    seq_lost: int = 0  # listen mode, at the end: from every connection's tracker
    seq_duplicated: int = 0
    seq_reordered: int = 0
    per_connection: dict[str, Any] = field(default_factory=dict)

    def connected(self) -> None:
        self.opened += 1
        self.held += 1
        if self.held > self.held_max:
            self.held_max = self.held

    def connect_failed(self, kind: str) -> None:
        self.failed += 1
        self.errors[kind] += 1

    def closed(self, code: int | None, expected: bool) -> None:
        key = str(code if code is not None else 1006)
        self.held -= 1
        self.closes[key] += 1
        if not expected:
            self.lost += 1
            self.errors[f"closed_{key}"] += 1


def to_metrics(rec: Recorder, *, mode: str, measured: float,
               dialect: Dialect | None = None) -> MetricSet:
    """The metric set of one process's run (names in ``wsctl.metrics.catalog``). Only
    what this mode and protocol block can measure is in it (``listen.unmeasured``)."""
    metrics = MetricSet()
    record_many(metrics.histogram("connect_time"), rec.connect)
    listen = mode == "listen"
    if not listen and (rec.rtt or mode == "echo"):
        record_many(metrics.histogram("rtt"), rec.rtt)
        record_many(metrics.histogram("rtt.uncorrected"), rec.rtt_uncorrected)
    timestamp = dialect is not None and dialect.timestamp is not None
    if mode == "resume" or (listen and timestamp):
        record_many(metrics.histogram("delivery_latency"), rec.delivery)
    record_many(metrics.histogram("generator.loop_lag"), rec.loop_lag)
    if not listen:
        metrics.add("messages.sent", rec.sent)
    metrics.add("messages.received", rec.received)
    if listen and dialect is not None and dialect.sequence is not None and rec.numbered:
        metrics.add("messages.lost", rec.seq_lost)
        metrics.add("messages.duplicated", rec.seq_duplicated)
        metrics.add("messages.reordered", rec.seq_reordered)
    if listen and (timestamp or (dialect is not None and dialect.sequence is not None)):
        metrics.add("messages.invalid", rec.invalid)
    metrics.add("connections.opened", rec.opened)
    metrics.add("connections.failed", rec.failed)
    metrics.add("connections.lost", rec.lost)
    for kind in ALWAYS_ERRORS:
        metrics.add(f"errors.{kind}", 0)
    for kind, n in rec.errors.items():
        metrics.add(f"errors.{kind}", n)
    for code, n in rec.closes.items():
        metrics.add(f"closes.{code}", n)
    metrics.set_gauge("connections.held", rec.held_max, "count")
    if not listen:
        metrics.set_gauge("messages.per_s", rec.sent / measured if measured > 0 else 0.0,
                          "per_s")
    return metrics


# --- one connection ---------------------------------------------------------------------


class Conn:
    """One bench connection: the transport's receiver, and its send schedule."""

    __slots__ = ("engine", "index", "channel", "k", "answered", "first_send", "sent_at", "base",
                 "blocked", "closing", "counted", "closed", "welcome", "received", "tracker",
                 "opened_at", "closed_at")

    def __init__(self, engine: Engine, index: int) -> None:
        self.engine = engine
        self.index = index
        self.channel: Channel | None = None
        self.k = 0  # messages sent: the next one is message k
        self.answered = 0  # messages answered: the oldest unanswered one is this one
        self.first_send = 0.0
        # When each unanswered message really went: message n's is sent_at[n - base]. Its
        # intended instant is not stored: it is first_send + n * interval. A list, not a
        # deque: a deque is ~0.6 KiB from the start, 6% of a held connection. The list is
        # emptied whenever every message is answered, and trimmed as answers come.
        self.sent_at: list[float] = []
        self.base = 0
        self.blocked = False
        self.closing = False
        self.counted = False
        self.closed = False
        self.welcome = False
        self.received = 0  # listen mode: messages in the measured window
        self.tracker: Any = None  # listen mode: a GenerationTracker once a number came
        self.opened_at = 0.0
        self.closed_at: float | None = None

    def intended(self) -> float:
        return self.first_send + self.k * self.engine.interval

    def pending(self) -> list[tuple[float, float]]:
        """The unanswered messages as (intended instant, actual send instant), oldest first."""
        interval = self.engine.interval
        return [(self.first_send + n * interval, self.sent_at[n - self.base])
                for n in range(self.answered, self.k)]

    def on_message(self, data: str | bytes, at: float) -> None:
        if data.__class__ is str:
            text: str = data
            if text.startswith('{"type":"p'):  # pong from the server, or our echo
                n = self.answered
                if n < self.k:  # the answer to message n (answers come in order)
                    sent_at = self.sent_at
                    i = n - self.base
                    sent = sent_at[i]
                    self.answered = n + 1
                    if n + 1 == self.k:  # all answered
                        sent_at.clear()
                        self.base = n + 1
                    elif i >= 64 and i + i >= len(sent_at):  # keep the list short
                        del sent_at[:i + 1]
                        self.base = n + 1
                    engine = self.engine
                    # the same float the send computed: first_send + n * interval
                    intended = self.first_send + n * engine.interval
                    rec = engine.rec
                    if intended >= rec.rec_start:
                        rec.received += 1
                        rec.rtt.append(int((at - intended) * 1e6))
                        rec.rtt_uncorrected.append(int((at - sent) * 1e6))
                    if self.blocked:
                        self.blocked = False
                        engine.pump(self, at)
                return
            if self.engine.resume and text.startswith('{"type":"event"'):
                ts = event_ts(text)
                rec = self.engine.rec
                if ts is not None and rec.rec_start <= at <= rec.rec_end:
                    rec.received += 1
                    rec.delivery.append(int((at + self.engine.wall_offset - ts) * 1e6))
                return
            if text.startswith('{"type":"welcome"'):
                self.welcome = True

    def on_close(self, code: int | None, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.closed_at = self.engine.clock.now()
        rec = self.engine.rec
        if self.k > self.answered:
            rec.unanswered += self.k - self.answered
            self.sent_at.clear()
            self.base = self.answered = self.k
        if self.counted:
            rec.closed(code, self.closing)


class ListenConn(Conn):
    """A listen-mode connection: every message goes to the engine's :class:`Listener`."""

    __slots__ = ()

    def on_message(self, data: str | bytes, at: float) -> None:
        self.engine.listener.on_message(self, data, at)  # type: ignore[union-attr]


# --- the driver -------------------------------------------------------------------------

Progress = Callable[[dict[str, Any]], None]


class Engine:
    """Runs one :class:`BenchPlan` in the current event loop; ``run()`` returns the
    :class:`Recorder` when the plan's time is up and every connection is closed."""

    def __init__(
        self,
        plan: BenchPlan,
        *,
        transport: Transport | None = None,
        clock: Clock | None = None,
        on_progress: Progress | None = None,
        progress_interval: float = 1.0,
        tune_gc: bool = False,
    ) -> None:
        self.plan = plan
        self.transport = transport or get_transport(plan.transport)
        self.clock = clock or MonotonicClock()
        self.on_progress = on_progress
        self.progress_interval = progress_interval
        self.tune_gc = tune_gc
        self.rec = Recorder()
        self.dialect = plan.dialect()
        self.listener: Listener | None = None
        self.interval = 1.0 / plan.message_rate if plan.message_rate > 0 else math.inf
        self.resume = plan.mode == "resume"  # count events (echo mode ignores them)
        self.conns: list[Conn] = []
        self.heap: list[tuple[float, int, Conn]] = []
        self.ping_head, self.ping_tails = ping_parts(plan.payload_size)
        self.wall_offset = time.time() - time.monotonic()
        if plan.mode == "listen":
            self.interval = math.inf  # listen mode sends nothing after on_open
            self.listener = Listener(self.dialect, self.rec, self.wall_offset)
        self.series: dict[str, list[float]] = {"t": [], "connections_held": [],
                                               "messages_per_s": []}
        self.start = 0.0
        self.unreachable = asyncio.Event()
        self.ramp_done_at: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # tune_gc: the collector paced by this loop for the whole run (wsctl.runtime)
        self.collector = PacedCollector() if tune_gc else None
        self._trimmed = False  # the ramp's garbage given back to the OS (once)

    # sends: one scheduler for every connection -------------------------------------------

    def pump(self, conn: Conn, now: float) -> None:
        """Send every message of ``conn`` that is due by ``now`` (and allowed by the
        in-flight limit), then schedule its next one. No await."""
        channel = conn.channel
        if channel is None or conn.closed or conn.closing:
            return
        rec = self.rec
        limit = self.plan.in_flight
        interval = self.interval
        head, tails = self.ping_head, self.ping_tails
        send = channel.send
        sent_at = conn.sent_at
        k = conn.k
        while True:
            intended = conn.first_send + k * interval
            if intended > now or intended >= rec.rec_end:
                break
            if limit and k - conn.answered >= limit:
                conn.k = k
                conn.blocked = True
                return
            stamp = str(k)
            send(head + stamp + tails[len(stamp)])  # == payload(k, size), built cheaply
            sent_at.append(now)
            k += 1
            if intended >= rec.rec_start:
                rec.sent += 1
        conn.k = k
        if intended < rec.rec_end:
            heapq.heappush(self.heap, (intended, conn.index, conn))

    async def _sender(self) -> None:
        heap = self.heap
        clock = self.clock
        while True:
            now = clock.now()
            while heap and heap[0][0] <= now:
                conn = heapq.heappop(heap)[2]
                self.pump(conn, now)
            delay = (heap[0][0] - now) if heap else 0.01
            await clock.sleep(min(max(delay, MIN_WAIT), 0.01))

    # connections --------------------------------------------------------------------------

    def _launch(self, j: int, due: float) -> None:
        task = asyncio.get_running_loop().create_task(self._open(j, due))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open(self, j: int, due: float) -> None:
        plan = self.plan
        index = plan.index(j)
        conn = (Conn if self.listener is None else ListenConn)(self, index)
        rec = self.rec
        url = plan.url_for(j)
        extra: dict[str, Any] = {}
        dialect = self.dialect
        if dialect is not None:
            ctx = connection_context(url, index)
            url = dialect.url(url, ctx)
            if dialect.headers:
                extra["headers"] = dialect.headers_for(ctx)
            if dialect.subprotocols:
                extra["subprotocols"] = list(dialect.subprotocols)
        try:
            channel = await self.transport.connect(url, conn, timeout=plan.connect_timeout,
                                                   **extra)
        except Exception as exc:  # a ConnectError, or one a transport let through
            rec.connect_failed(classify_connect_error(exc).kind)
            self._check_unreachable()
            return
        done = self.clock.now()
        rec.connect.append(int((done - due) * 1e6))  # from the intended arrival instant
        conn.channel = channel
        conn.counted = True
        conn.opened_at = done
        rec.connected()
        self.conns.append(conn)
        if conn.closed:  # closed during the handshake's last step
            rec.closed(None, False)
            return
        if dialect is not None and dialect.on_open:
            for message in dialect.open_messages(ctx):
                channel.send(frame_text(message))
        if self.interval != math.inf:
            conn.first_send = done + phase(conn.index, self.interval)
            heapq.heappush(self.heap, (conn.first_send, conn.index, conn))

    def _check_unreachable(self) -> None:
        rec = self.rec
        if rec.opened == 0 and rec.failed >= min(10, self.plan.connections):
            self.unreachable.set()

    async def _arrivals(self) -> None:
        plan = self.plan
        schedule = ArrivalSchedule(self.start, plan.connections, plan.arrival)
        await run_arrivals(schedule, self.clock, self._launch)
        self.ramp_done_at = self.clock.now()

    # monitors -----------------------------------------------------------------------------

    async def _lag_monitor(self) -> None:
        clock = self.clock
        lag = self.rec.loop_lag
        while True:
            before = clock.now()
            await clock.sleep(LAG_INTERVAL)
            late = clock.now() - before - LAG_INTERVAL
            if before >= self.rec.rec_start:
                lag.append(max(0, int(late * 1e6)))

    async def _sampler(self) -> None:
        clock = self.clock
        rec = self.rec
        listen = self.listener is not None  # listen mode samples what arrives
        last_total = 0
        last_t = self.start
        while True:
            await clock.sleep(self.progress_interval)
            now = clock.now()
            total = rec.received if listen else rec.sent
            rate = (total - last_total) / (now - last_t) if now > last_t else 0.0
            last_total, last_t = total, now
            t = round(now - self.start, 3)
            self.series["t"].append(t)
            self.series["connections_held"].append(rec.held)
            self.series["messages_per_s"].append(round(rate, 1))
            if not self._trimmed and self.ramp_done_at is not None and not self._tasks:
                # Every connect has finished: what the handshakes allocated is free but
                # still counted in RSS (glibc keeps freed heap); hand it back, once.
                self._trimmed = True
                release_free_memory()
            if self.on_progress is not None:
                self.on_progress(self.snapshot(now, rate))

    def snapshot(self, now: float, rate: float = 0.0) -> dict[str, Any]:
        """Live figures for a progress display (and a worker's progress line)."""
        rec = self.rec
        return {"t": round(now - self.start, 3), "held": rec.held, "opened": rec.opened,
                "failed": rec.failed, "sent": rec.sent, "received": rec.received,
                "rate": round(rate, 1), "pid": os.getpid()}

    # the run ------------------------------------------------------------------------------

    async def run(self, start: float | None = None) -> Recorder:
        """Run the plan from ``start`` (a clock instant; default now) to its end."""
        plan = self.plan
        clock = self.clock
        self.start = clock.now() if start is None else start
        rec = self.rec
        rec.rec_start = self.start + plan.warmup
        rec.rec_end = rec.rec_start + plan.duration
        loop = asyncio.get_running_loop()
        helpers = [loop.create_task(self._arrivals()), loop.create_task(self._sender()),
                   loop.create_task(self._lag_monitor()), loop.create_task(self._sampler())]
        if self.collector is not None:
            self.collector.install()
            helpers.append(loop.create_task(self.collector.run(
                lambda: rec.held, lambda: sum(rec.closes.values()))))
        try:
            end = rec.rec_end
            while clock.now() < end and not self.unreachable.is_set():
                await clock.sleep(min(end - clock.now(), 0.1))
            await self._drain()
        finally:
            for task in (*helpers, *self._tasks):
                task.cancel()
            await asyncio.gather(*helpers, *self._tasks, return_exceptions=True)
            await self._close_all()
            if self.collector is not None:
                self.collector.uninstall()
        if self.listener is not None:
            settle(self.conns, rec)
            rec.per_connection = per_connection(self.conns, rec)
        return rec

    async def _drain(self) -> None:
        """Give answers to the last sends up to ``plan.drain`` seconds to arrive."""
        deadline = self.clock.now() + self.plan.drain
        while self.clock.now() < deadline and any(c.k > c.answered for c in self.conns
                                                  if not c.closed):
            await self.clock.sleep(0.02)

    async def _close_all(self) -> None:
        waits = []
        for conn in self.conns:
            if conn.channel is not None and not conn.closed:
                conn.closing = True
                conn.channel.close(1000, "bench done")
                waits.append(conn.channel.wait_closed())
        if waits:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), 10.0)


def release_free_memory() -> None:
    """Give the C heap's free pages back to the OS (glibc's ``malloc_trim``; a no-op where
    there is none). Nothing in use is touched: only RSS that no object holds goes."""
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


def connection_context(url: str, index: int) -> Context:
    """What the protocol block's templates are filled with for connection ``index``:
    ``{n}`` its index, ``{stream}`` the last segment of its URL's path (``/ws/b-3`` ->
    ``b-3``), ``${VAR}`` this process's environment."""
    path = url.split("?", 1)[0].rstrip("/")
    return Context(stream=path.rsplit("/", 1)[-1], n=index, env=os.environ)


async def run_arrivals(
    schedule: ArrivalSchedule, clock: Clock, launch: Callable[[int, float], None]
) -> None:
    """Call ``launch(j, due)`` for each connection at its instant; never waits for one."""
    while True:
        for j in schedule.take_due(clock.now()):
            launch(j, schedule.due_at(j))
        nxt = schedule.next_due()
        if nxt is None:
            return
        await clock.sleep(max(nxt - clock.now(), MIN_WAIT))
