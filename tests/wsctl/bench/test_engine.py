"""The open-model scheduler and the send pacing, on a fake clock (no sockets, no sleeping)."""

from __future__ import annotations

import asyncio

import pytest

from wsctl.bench.engine import (
    MIN_WAIT,
    ArrivalSchedule,
    Conn,
    Engine,
    run_arrivals,
)
from wsctl.bench.messages import event_ts, payload, ping_parts
from wsctl.bench.plan import BenchPlan
from wsctl.clock import FakeClock
from wsctl.errors import ConnectError


class FakeChannel:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed = False

    def send(self, data: str) -> None:
        self.sent.append(data)

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        return None

    @property
    def buffered(self) -> int:
        return 0


class SlowTransport:
    """Every connect takes ``delay`` seconds of fake time; records when each started."""

    name = "fake"

    def __init__(self, clock: FakeClock, delay: float, fail_every: int = 0) -> None:
        self.clock = clock
        self.delay = delay
        self.started: list[float] = []
        self.fail_every = fail_every

    async def connect(self, url, receiver, *, timeout, ssl=None):
        self.started.append(self.clock.now())
        n = len(self.started)
        await self.clock.sleep(self.delay)
        if self.fail_every and n % self.fail_every == 0:
            raise ConnectError("refused", "connection refused")
        return FakeChannel()


def plan(**kw: object) -> BenchPlan:
    base: dict[str, object] = dict(url="ws://127.0.0.1:9/ws/b-{n}", connections=10,
                                   connect_rate=5.0, message_rate=0.0, duration=4.0, drain=0.0)
    base.update(kw)
    return BenchPlan(**base)  # type: ignore[arg-type]


def test_schedule_hands_out_each_index_once_at_its_instant() -> None:
    """take_due returns exactly the indices whose instant has come, each once, in order."""
    s = ArrivalSchedule(100.0, 5, lambda j: j * 0.5)
    assert list(s.take_due(99.9)) == []
    assert list(s.take_due(100.0)) == [0]
    assert list(s.take_due(101.2)) == [1, 2]
    assert s.next_due() == 101.5
    assert list(s.take_due(200.0)) == [3, 4]
    assert s.next_due() is None


async def test_arrivals_stay_on_schedule_when_connects_take_two_seconds() -> None:
    """Open model: with every connect taking 2 s, connection i still starts at exactly i/R."""
    clock = FakeClock()
    started: list[float] = []

    async def slow(j: int) -> None:
        started.append(clock.now())
        await clock.sleep(2.0)

    tasks: list[asyncio.Task[None]] = []
    runner = asyncio.create_task(run_arrivals(
        ArrivalSchedule(0.0, 10, lambda j: j / 5.0), clock,
        lambda j, due: tasks.append(asyncio.create_task(slow(j)))))
    await clock.advance(10.0)
    await runner
    await asyncio.gather(*tasks)
    assert started == [i / 5.0 for i in range(10)]


class RecordingClock(FakeClock):
    """A fake clock that remembers every wait it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        await super().sleep(seconds)


async def test_schedulers_never_wait_less_than_a_millisecond() -> None:
    """Arrivals and sends 0.2 ms apart: the schedulers wait at least MIN_WAIT (uvloop rounds a
    shorter timer to 0 ms and the loop would spin), and every connection and send still
    carries its planned instant, so connect_time and rtt stay honest."""
    assert MIN_WAIT == 0.001
    clock = RecordingClock()
    launched: list[tuple[int, float]] = []
    runner = asyncio.create_task(run_arrivals(
        ArrivalSchedule(0.0, 20, lambda j: j * 0.0002), clock,
        lambda j, due: launched.append((j, due))))
    await clock.advance(0.01)
    await runner
    assert [due for _, due in launched] == [j * 0.0002 for j in range(20)]
    assert clock.waits and min(clock.waits) >= MIN_WAIT

    clock = RecordingClock()
    engine = Engine(plan(connections=1, message_rate=5000.0, in_flight=0, duration=0.05),
                    clock=clock)
    channel = FakeChannel()
    conn = Conn(engine, 0)
    conn.channel = channel  # type: ignore[assignment]
    engine.heap.append((0.0, 0, conn))
    sender = asyncio.create_task(engine._sender())
    await clock.advance(0.004)
    sender.cancel()
    positive = [w for w in clock.waits if w > 0]
    assert positive and min(positive) >= MIN_WAIT
    assert len(channel.sent) >= 15  # 0.2 ms apart: every due send went out in batches


async def test_engine_counts_slow_connects_from_their_intended_instant() -> None:
    """Through the engine: starts at i/R despite 2 s connects; connect_time is 2 s each,
    refusals are counted by kind, and the peak of connections held is right."""
    clock = FakeClock()
    transport = SlowTransport(clock, 2.0, fail_every=5)
    engine = Engine(plan(), transport=transport, clock=clock)  # type: ignore[arg-type]
    run = asyncio.create_task(engine.run(start=0.0))
    await clock.advance(6.0)
    rec = await run
    assert transport.started == [i / 5.0 for i in range(10)]
    assert list(rec.connect) == [2_000_000] * 8
    assert rec.opened == 8 and rec.failed == 2 and rec.errors["refused"] == 2
    assert rec.held_max == 8
    assert rec.closes["1000"] == 0  # fake channels never call back on close


async def test_workers_interleave_to_the_same_arrival_instants() -> None:
    """Split over 3 processes, the shares' arrival instants together are i/R for every i."""
    whole = plan(connections=10)
    instants = sorted(share.arrival(j) for share in whole.split(3)
                      for j in range(share.connections))
    assert instants == [i / 5.0 for i in range(10)]
    assert sorted(share.index(j) for share in whole.split(3)
                  for j in range(share.connections)) == list(range(10))


def _engine(in_flight: int, rate: float = 10.0) -> tuple[Engine, Conn, FakeChannel]:
    clock = FakeClock()
    engine = Engine(plan(message_rate=rate, in_flight=in_flight), transport=SlowTransport(
        clock, 0.0), clock=clock)  # type: ignore[arg-type]
    engine.rec.rec_start, engine.rec.rec_end = 0.0, 100.0
    conn = Conn(engine, 0)
    channel = FakeChannel()
    conn.channel = channel
    return engine, conn, channel


def test_a_send_held_back_by_an_unanswered_one_is_timed_from_its_intended_instant() -> None:
    """Serialized sends (in_flight 1) behind a 500 ms answer: each later send's rtt counts
    from when it should have gone (0.1 s, 0.2 s, …), the uncorrected one from when it went."""
    engine, conn, channel = _engine(in_flight=1)
    engine.pump(conn, 0.0)
    assert len(channel.sent) == 1
    engine.pump(conn, 0.45)  # four more are due but the first is unanswered
    assert len(channel.sent) == 1 and conn.blocked
    conn.on_message('{"type":"pong","t":0}', 0.5)  # answer after a 500 ms stall
    assert len(channel.sent) == 2  # the next one goes at once
    conn.on_message('{"type":"pong","t":1}', 0.501)
    conn.on_message('{"type":"pong","t":2}', 0.502)
    rec = engine.rec
    assert list(rec.rtt[:3]) == [500_000, 401_000, 302_000]
    assert list(rec.rtt_uncorrected[:3]) == [500_000, 1_000, 1_000]
    assert rec.sent == len(channel.sent)


def test_unlimited_in_flight_sends_everything_due_when_the_loop_was_late() -> None:
    """in_flight 0: a loop 350 ms late sends the 4 due messages at once, each with its own
    intended instant, and schedules the next for 0.4 s."""
    engine, conn, channel = _engine(in_flight=0)
    engine.pump(conn, 0.35)
    assert len(channel.sent) == 4
    assert [i for i, _ in conn.pending()] == [0.0, 0.1, 0.2, 0.30000000000000004]
    assert engine.heap[0][0] == 0.4


def test_many_unanswered_sends_keep_their_instants_as_answers_come() -> None:
    """in_flight 0, 300 sends due at once, answered one by one: every answer is timed from
    its own intended instant and actual send instant while the list of send instants is
    trimmed, and is empty once all are answered."""
    engine, conn, channel = _engine(in_flight=0, rate=100.0)
    engine.pump(conn, 2.995)  # 300 due: 0.00, 0.01, ... 2.99
    assert len(channel.sent) == 300
    for n in range(300):
        conn.on_message('{"type":"pong","t":0}', 3.0 + n / 1000)
        if n == 150:
            assert len(conn.sent_at) < 300  # trimmed on the way
            assert conn.pending()[0] == (pytest.approx(1.51), 2.995)
    rec = engine.rec
    assert list(rec.rtt) == [int((3.0 + n / 1000 - n * 0.01) * 1e6) for n in range(300)]
    assert list(rec.rtt_uncorrected) == [int((3.0 + n / 1000 - 2.995) * 1e6)
                                         for n in range(300)]
    assert conn.sent_at == [] and conn.pending() == []


def test_pings_built_from_parts_are_the_payload() -> None:
    """ping_parts rebuilds payload(k, size) exactly for every digit count and size."""
    for size in (0, 10, 30, 64, 1000):
        head, tails = ping_parts(size)
        for k in (0, 7, 10, 99, 12345, 10**12, 10**19 - 1):
            stamp = str(k)
            assert head + stamp + tails[len(stamp)] == payload(k, size)


def test_sends_before_the_warmup_ends_are_not_counted() -> None:
    """Messages intended before the recording window are sent but not counted or timed."""
    engine, conn, channel = _engine(in_flight=0)
    engine.rec.rec_start = 0.25
    engine.pump(conn, 0.35)
    conn.on_message('{"type":"pong","t":0}', 0.4)
    assert len(channel.sent) == 4 and engine.rec.sent == 1
    assert len(engine.rec.rtt) == 0


def test_payload_size_and_event_ts() -> None:
    """Payloads are JSON of about the asked size; an event's ts is read without JSON."""
    import json

    for size in (0, 30, 64, 1000):
        text = payload(7, size)
        assert json.loads(text)["t"] == 7
        if size >= 40:
            assert len(text) == size
    assert event_ts('{"type":"event","offset":3,"ts":1764140000.25,"data":{}}') == 1764140000.25
    assert event_ts('{"type":"event"}') is None
