"""The pure probe state machine, driven with explicit virtual instants."""

import json

import pytest

from tests.wsctl.probe.helpers import event, machine, welcome
from wsctl.backoff import BackoffPolicy
from wsctl.probe.machine import (
    Abort,
    Close,
    Closed,
    Connect,
    Connected,
    ConnectFailed,
    PongReceived,
    Received,
    Send,
    SendPing,
    State,
    Stop,
    Tick,
)


def opened(m, at=0.0, hello=None):
    """Start, connect at ``at`` and (resume mode) receive a welcome."""
    m.start(0.0)
    m.handle(Connected(at))
    if hello is not None:
        m.handle(Received(at, 100.0, hello))
    return m


def summary(m, name):
    return m.metrics.histograms[name].summary()


def test_start_connects_to_the_indexed_url():
    """The first action connects at once, with {n} replaced by the probe's index."""
    m = machine()
    actions = m.start(0.0)
    assert actions == [Connect("ws://127.0.0.1:9/ws/s3", 10.0)]
    assert m.state is State.CONNECTING


def test_connected_records_connect_time_and_opens():
    """Connected moves to open and records connect_time from the attempt's start."""
    m = machine()
    m.start(5.0)
    m.handle(Connected(5.25))
    assert m.state is State.OPEN
    assert summary(m, "connect_time")["max"] == pytest.approx(0.25, rel=1e-3)


def test_connect_time_starts_at_the_links_own_stamp_of_the_tcp_connect():
    """A link that stamped its TCP connect (started_at) times connect_time from there, not
    from when the machine asked; a stamp from before the attempt is not believed."""
    m = machine()
    m.start(5.0)
    m.handle(Connected(5.25, started_at=5.1))
    assert summary(m, "connect_time")["max"] == pytest.approx(0.15, rel=1e-3)
    m = machine()
    m.start(5.0)
    m.handle(Connected(5.25, started_at=4.0))
    assert summary(m, "connect_time")["max"] == pytest.approx(0.25, rel=1e-3)


def test_app_heartbeat_follows_welcome_interval_and_measures_rtt():
    """After a welcome the app ping goes out each interval; its pong gives rtt."""
    m = opened(machine(), hello=welcome(interval=2, timeout=1))
    assert m.deadline == 2.0
    actions = m.handle(Tick(2.0))
    assert len(actions) == 1 and isinstance(actions[0], Send)
    assert json.loads(actions[0].text) == {"type": "ping", "t": 2.0}
    m.handle(Received(2.04, 0, '{"type":"pong","t":2.0}'))
    assert summary(m, "rtt")["max"] == pytest.approx(0.04, rel=1e-3)
    assert m.deadline == 4.0


def test_missing_pong_declares_half_open_connection_dead():
    """No pong within the timeout: abort, lost, backoff; detect_time from the fault."""
    m = opened(machine(), hello=welcome(interval=1, timeout=1))
    m.handle(Tick(1.0))  # ping sent at t=1
    m.fault_injected(0.5)
    assert m.deadline == 2.0
    actions = m.handle(Tick(2.0))
    assert isinstance(actions[0], Abort)
    assert m.state is State.BACKOFF
    assert summary(m, "detect_time")["max"] == pytest.approx(1.5, rel=1e-3)
    assert m.metrics.counters["connections.lost"] == 1
    states = [r.state for r in m.take_records()]
    assert states[-2:] == [State.LOST, State.BACKOFF]


def test_heartbeat_options_override_the_welcome():
    """--heartbeat-interval/timeout win over the server's advertised values."""
    m = opened(machine(heartbeat_interval=0.5, heartbeat_timeout=0.25),
               hello=welcome(interval=30, timeout=30))
    assert m.deadline == 0.5
    m.handle(Tick(0.5))
    assert m.deadline == 0.75


def test_offsets_count_received_duplicated_reordered_lost():
    """Offsets classify events; a hole never filled is lost when the run ends."""
    m = opened(machine(), hello=welcome(offset=0))
    for offset in (1, 2, 2, 5, 3, 6):  # dup 2; 3 and 4 skipped; 3 late; 4 never
        m.handle(Received(0.1, 100.0, event(offset)))
    m.handle(Stop(1.0))
    c = m.metrics.counters
    assert (c["messages.received"], c["messages.duplicated"], c["messages.reordered"],
            c["messages.lost"]) == (6, 1, 1, 1)


def test_resume_url_carries_epoch_and_last_offset():
    """After a loss the reconnect asks for epoch and the highest offset received."""
    m = opened(machine(), hello=welcome(epoch="E9", offset=4))
    m.handle(Received(0.1, 100.0, event(5)))
    m.handle(Closed(1.0, 1006))
    actions = m.handle(Tick(m.deadline))
    assert actions == [Connect("ws://127.0.0.1:9/ws/s3?epoch=E9&offset=5", 10.0)]


def test_recovered_resume_measures_times_and_counts_replays():
    """A recovered welcome yields resume_time, replayed count, and outage_time."""
    m = opened(machine(), hello=welcome(epoch="E", offset=0))
    m.handle(Received(0.5, 100.0, event(1)))
    m.handle(Closed(1.0, 1011, "keepalive ping timeout"))
    assert m.deadline == 2.0  # exponential base 1 s
    m.handle(Tick(2.0))
    m.handle(Connected(2.1))
    m.handle(Received(2.2, 100.0, welcome(epoch="E", offset=3, replayed=2)))
    m.handle(Received(2.3, 100.0, event(2)))
    m.handle(Received(2.3, 100.0, event(3)))
    assert summary(m, "reconnect_time")["max"] == pytest.approx(1.1, rel=1e-3)
    assert summary(m, "resume_time")["max"] == pytest.approx(1.2, rel=1e-3)
    assert summary(m, "outage_time")["max"] == pytest.approx(1.8, rel=1e-3)
    assert summary(m, "reconnect_attempts")["max"] == 1
    c = m.metrics.counters
    assert (c["messages.replayed"], c["resyncs"], c["messages.lost"]) == (2, 0, 0)


def test_recovered_false_is_a_declared_resync_not_loss():
    """An epoch change counts a resync; the gap it declares is not counted lost."""
    m = opened(machine(), hello=welcome(epoch="old", offset=0))
    m.handle(Received(0.1, 100.0, event(1)))
    m.handle(Closed(1.0, 1006))
    m.handle(Tick(m.deadline))
    m.handle(Connected(2.5))
    m.handle(Received(2.5, 100.0, welcome(epoch="new", offset=7, recovered=False)))
    m.handle(Received(2.6, 100.0, event(8)))
    m.handle(Stop(3.0))
    c = m.metrics.counters
    assert (c["resyncs"], c["messages.lost"], c["messages.received"]) == (1, 0, 2)
    assert m.epoch == "new"


def test_gap_after_recovered_true_counts_as_lost():
    """A server that claims recovery but skips offsets is caught: those are lost."""
    m = opened(machine(), hello=welcome(epoch="E", offset=0))
    m.handle(Received(0.1, 100.0, event(1)))
    m.handle(Closed(1.0, 1006))
    m.handle(Tick(m.deadline))
    m.handle(Connected(2.5))
    m.handle(Received(2.5, 100.0, welcome(epoch="E", offset=4, replayed=1)))
    m.handle(Received(2.6, 100.0, event(4)))  # 2 and 3 never come
    m.handle(Stop(3.0))
    assert m.metrics.counters["messages.lost"] == 2


def test_delivery_latency_uses_server_ts_and_wall_clock():
    """delivery_latency = wall time received - event ts."""
    m = opened(machine(), hello=welcome())
    m.handle(Received(0.1, 100.25, event(1, ts=100.0)))
    assert summary(m, "delivery_latency")["max"] == pytest.approx(0.25, rel=1e-3)


def test_no_welcome_within_connect_timeout_reconnects():
    """A server that accepts but never welcomes is abandoned after connect_timeout."""
    m = opened(machine(connect_timeout=2))
    assert m.deadline == 2.0
    actions = m.handle(Tick(2.0))
    assert isinstance(actions[0], Abort) and m.state is State.BACKOFF


def test_close_1000_is_final():
    """A normal closure ends the probe: no reconnect."""
    m = opened(machine(), hello=welcome())
    assert m.handle(Closed(1.0, 1000, "bye")) == []
    assert m.state is State.CLOSED and m.deadline is None


@pytest.mark.parametrize("code", [1001, 1006, 1011, 1013])
def test_other_close_codes_reconnect(code):
    """1001/1006/1011/1013 lead to backoff and another attempt."""
    m = opened(machine(), hello=welcome())
    m.handle(Closed(1.0, code))
    assert m.state is State.BACKOFF
    assert isinstance(m.handle(Tick(m.deadline))[0], Connect)


def test_retry_hint_in_close_reason_is_honoured():
    """A 1013 reason with retry_ms=N waits at least N ms before reconnecting."""
    m = opened(machine(), hello=welcome())
    m.handle(Closed(1.0, 1013, "over capacity; retry_ms=4500"))
    assert m.deadline == pytest.approx(5.5)


def test_http_retry_after_is_honoured():
    """A 503 with Retry-After delays the next attempt at least that long."""
    m = machine()
    m.start(0.0)
    m.handle(ConnectFailed(0.1, "handshake rejected: HTTP 503", retry_after=3))
    assert m.deadline == pytest.approx(3.1)


def test_refused_connects_retry_on_the_fast_path_and_503s_back_off():
    """kind refused (nothing listening) waits at most ``fast``; a 503 waits the policy's
    exponential step; the failure's kind is on the backoff record."""
    m = machine(backoff=BackoffPolicy(kind="exponential", base=1, cap=8, fast=0.2))
    m.start(0.0)
    m.handle(ConnectFailed(0.0, "connection refused", kind="refused"))
    assert 0.1 <= m.deadline <= 0.2
    assert m.take_records()[-1].kind == "refused"
    m.handle(Tick(m.deadline))
    at = m.attempt_started
    m.handle(ConnectFailed(at, "HTTP 503", kind="status_503"))
    assert m.deadline == pytest.approx(at + 1)
    assert m.metrics.counters["errors.refused"] == 1


def test_gives_up_after_max_attempts_with_the_reason():
    """Refused max_attempts times: gave_up, counted, reason kept for the report."""
    m = machine(backoff=BackoffPolicy(kind="exponential", base=1, max_attempts=3, fast=None))
    m.start(0.0)
    now = 0.0
    for _ in range(3):
        m.handle(ConnectFailed(now, "connection refused"))
        if m.deadline is not None:
            now = m.deadline
            m.handle(Tick(now))
    assert m.state is State.GAVE_UP and now == 3.0
    assert m.metrics.counters["probes.gave_up"] == 1
    assert m.metrics.counters["connections.failed"] == 3
    assert "connection refused" in m.last_error
    assert "gave up after 3 attempts" in m.take_records()[-1].reason


def test_reconnect_attempts_counts_failures_in_the_recovery():
    """Two refusals then success: reconnect_attempts records 3 for that recovery."""
    m = opened(machine(), hello=welcome())
    m.handle(Closed(1.0, 1006))
    for _ in range(2):
        m.handle(Tick(m.deadline))
        m.handle(ConnectFailed(m.attempt_started + 0.01, "connection refused"))
    m.handle(Tick(m.deadline))
    m.handle(Connected(m.attempt_started + 0.01))
    m.handle(Received(m.attempt_started + 0.02, 100.0, welcome()))
    assert summary(m, "reconnect_attempts")["max"] == 3


def test_duration_stops_with_a_normal_close():
    """At the end of the duration the probe closes with 1000 and is done."""
    m = machine(duration=5)
    opened(m, hello=welcome(interval=10, timeout=10))
    assert m.deadline == 5.0
    assert m.handle(Tick(5.0)) == [Close(1000, "duration reached")]
    assert m.done


def test_echo_mode_sends_at_rate_and_times_round_trips():
    """Echo mode sends seq-numbered messages at the rate; echoes give rtt and counts."""
    m = machine(mode="echo", echo_rate=2, heartbeat="off")
    m.start(0.0)
    first = m.handle(Connected(0.0))
    assert len(first) == 1 and json.loads(first[0].text)["wsctl_echo"] == 0
    assert m.deadline == 0.5
    m.handle(Received(0.01, 0, first[0].text))
    second = m.handle(Tick(0.5))
    m.handle(Tick(1.0))  # third sent, never echoed
    m.handle(Received(0.53, 0, second[0].text))
    assert m.metrics.counters["messages.sent"] == 3
    assert m.metrics.counters["messages.received"] == 2
    assert summary(m, "rtt")["max"] == pytest.approx(0.03, rel=1e-2)
    m.handle(Closed(1.2, 1006))  # the unanswered one is lost with the connection
    assert m.metrics.counters["messages.lost"] == 1


def test_protocol_heartbeat_in_listen_mode():
    """Listen mode pings at protocol level; only the matching pong counts."""
    m = machine(mode="listen", heartbeat_interval=1, heartbeat_timeout=0.5)
    m.start(0.0)
    m.handle(Connected(0.0))
    assert m.handle(Tick(1.0)) == [SendPing(1.0)]
    m.handle(PongReceived(1.2, sent_at=0.7))  # stale
    assert m.deadline == 1.5
    m.handle(PongReceived(1.1, sent_at=1.0))
    assert m.deadline == 2.0
    m.handle(Received(1.3, 0, "anything"))
    assert m.metrics.counters["messages.received"] == 1


def test_listen_mode_outage_time_from_last_to_first_message():
    """outage_time spans the last message before a loss to the first after it."""
    m = machine(mode="listen", heartbeat="off")
    m.start(0.0)
    m.handle(Connected(0.0))
    m.handle(Received(0.4, 0, "a"))
    m.handle(Closed(1.0, 1001))
    m.handle(Tick(m.deadline))
    m.handle(Connected(2.0))
    m.handle(Received(2.5, 0, "b"))
    assert summary(m, "outage_time")["max"] == pytest.approx(2.1, rel=1e-3)


def test_fault_marker_ignored_when_probe_not_open():
    """A probe already down when the fault happens records no detect_time."""
    m = machine()
    m.start(0.0)
    m.fault_injected(0.0)
    m.handle(ConnectFailed(0.1, "connection refused"))
    assert summary(m, "detect_time")["count"] == 0


def test_records_serialise_with_wall_time():
    """Records become JSON-ready dicts with wall time, from/to states and reason."""
    m = machine()
    m.start(10.0)
    m.handle(ConnectFailed(10.5, "connection refused"))
    rec = m.take_records()[-1].to_json(wall_offset=1000.0)
    assert rec["t"] == 1010.5 and rec["from"] == "connecting" and rec["to"] == "backoff"
    assert m.take_records() == []


def steady_backoff():
    """Every retry waits exactly 1 s, so the tests' timelines are easy to follow."""
    return BackoffPolicy(kind="exponential", base=1, cap=1)


def test_drop_before_welcome_stays_in_the_same_recovery():
    """A connection lost before its welcome continues the recovery: one of each metric."""
    m = opened(machine(backoff=steady_backoff()),
               hello=welcome(epoch="E", offset=0, interval=30, timeout=30))
    m.handle(Received(9.5, 100.0, event(1)))
    m.fault_injected(9.8)
    m.handle(Closed(10.0, 1006))
    assert m.deadline == 11.0
    m.handle(Tick(11.0))
    m.handle(Connected(11.0))
    m.handle(Closed(11.5, 1013))  # before its welcome
    assert m.deadline == 12.5
    m.handle(Tick(12.5))
    assert m.take_records()[-1].reason == "attempt 2"
    m.handle(Connected(12.5))
    m.handle(Received(12.6, 100.0, welcome(epoch="E", offset=1, replayed=0)))
    m.handle(Received(12.7, 100.0, event(2)))
    expected = {"reconnect_time": 2.5, "resume_time": 2.6, "reconnect_attempts": 2,
                "outage_time": 3.2, "detect_time": 0.2}
    for name, value in expected.items():
        s = summary(m, name)
        assert s["count"] == 1, name
        assert s["max"] == pytest.approx(value, rel=1e-3), name
    c = m.metrics.counters
    assert (c["connections.opened"], c["connections.lost"], c["probes.gave_up"]) == (3, 2, 0)
    assert m.reconnects == 1


def test_single_drop_recoveries_are_measured_each_once():
    """Two drops, each after its welcome, are two recoveries with unchanged values."""
    m = opened(machine(backoff=steady_backoff()),
               hello=welcome(epoch="E", offset=0, interval=30, timeout=30))
    for lost_at, offset in ((10.0, 1), (20.0, 2)):
        m.handle(Received(lost_at - 0.5, 100.0, event(offset)))
        m.handle(Closed(lost_at, 1006))
        m.handle(Tick(lost_at + 1.0))
        m.handle(Connected(lost_at + 1.25))
        m.handle(Received(lost_at + 1.5, 100.0, welcome(epoch="E", offset=offset)))
        m.handle(Received(lost_at + 1.75, 100.0, event(offset + 1)))
    expected = {"reconnect_time": 1.25, "resume_time": 1.5, "reconnect_attempts": 1,
                "outage_time": 2.25}
    for name, value in expected.items():
        s = summary(m, name)
        assert s["count"] == 2, name
        assert s["min"] == pytest.approx(value, rel=1e-3), name
        assert s["max"] == pytest.approx(value, rel=1e-3), name
    assert m.reconnects == 2 and m.metrics.counters["connections.lost"] == 2


def test_giving_up_after_a_drop_before_welcome_records_no_recovery():
    """A recovery that ends in gave_up records no reconnect or resume time."""
    m = opened(machine(backoff=BackoffPolicy(kind="exponential", base=1, cap=1,
                                             max_attempts=1)),
               hello=welcome(interval=30, timeout=30))
    m.handle(Closed(10.0, 1006))
    m.handle(Tick(11.0))
    m.handle(Connected(11.0))
    m.handle(Closed(11.5, 1006))
    assert m.state is State.GAVE_UP
    assert m.metrics.counters["probes.gave_up"] == 1
    assert m.metrics.counters["connections.lost"] == 2
    for name in ("reconnect_time", "resume_time", "reconnect_attempts"):
        assert summary(m, name)["count"] == 0, name
    assert m.reconnects == 0


@pytest.mark.parametrize("mode", ["echo", "listen"])
def test_echo_and_listen_recover_when_the_connection_opens(mode):
    """Without a welcome, each reopened connection ends a recovery: two drops, two."""
    m = machine(mode=mode, heartbeat="off", backoff=steady_backoff())
    m.start(0.0)
    m.handle(Connected(0.0))
    m.handle(Closed(10.0, 1006))
    m.handle(Tick(11.0))
    m.handle(Connected(11.0))
    m.handle(Closed(11.5, 1006))
    m.handle(Tick(12.5))
    m.handle(Connected(12.75))
    reconnect = summary(m, "reconnect_time")
    assert reconnect["count"] == 2
    assert reconnect["min"] == pytest.approx(1.0, rel=1e-3)
    assert reconnect["max"] == pytest.approx(1.25, rel=1e-3)
    attempts = summary(m, "reconnect_attempts")
    assert (attempts["count"], attempts["max"]) == (2, 1)
    assert "resume_time" not in m.metrics.histograms  # not measurable without a resume
    assert m.reconnects == 2
