"""The sampler: open connections, attempts per second and the 1 s series, from records."""

from wsctl.probe.machine import Record, State
from wsctl.scenario.sampler import Sampler

C, OPEN, L, B, X = State.CONNECTING, State.OPEN, State.LOST, State.BACKOFF, State.CLOSED


def rec(at, probe, previous, state, reason=""):
    return Record(at, probe, previous, state, reason)


def start_and_open(sampler, probe, at, opened):
    sampler.records([rec(at, probe, C, C, "start")])
    sampler.records([rec(opened, probe, C, OPEN, "attempt 1")])


def test_open_count_follows_state_changes_and_ignores_notes():
    """Opens add one, leaving open removes one; a 'resumed' note (open -> open) is not a
    new connection."""
    sampler = Sampler(start=10.0)
    for probe in range(3):
        start_and_open(sampler, probe, 10.0, 10.1)
    assert sampler.open == 3
    sampler.records([rec(10.5, 0, OPEN, OPEN, "resumed: 3 replayed")])
    assert sampler.open == 3
    sampler.records([rec(11.0, 1, OPEN, L, "closed 1006"), rec(11.0, 1, L, B, "retry in 0.2s")])
    assert sampler.open == 2 and sampler.lost == 1
    sampler.records([rec(12.0, 2, OPEN, X, "duration reached")])
    assert sampler.open == 1
    assert sampler.last_change == 12.0


def test_closes_are_counted_by_code_when_an_open_connection_ends():
    """closes.<code>: lost with a code (1001, 1006) or closed by the server (1000); a
    heartbeat abort has no code and is not counted."""
    sampler = Sampler(start=0.0)
    for probe in range(4):
        start_and_open(sampler, probe, 0.0, 0.1)
    sampler.records([Record(1.0, 0, OPEN, L, "closed 1001 going away", 1001),
                     Record(1.0, 1, OPEN, L, "closed 1006", 1006),
                     Record(1.0, 2, OPEN, L, "no pong within 1s", None),
                     Record(1.0, 3, OPEN, X, "closed 1000", 1000)])
    assert dict(sampler.closes) == {1001: 1, 1006: 1, 1000: 1}


def test_attempts_are_bucketed_per_second_and_the_peak_is_the_busiest_second():
    """Each 'start' and each backoff -> connecting is one attempt, counted in the second
    (since the start) it happened in."""
    sampler = Sampler(start=100.0)
    sampler.records([rec(100.2, p, C, C, "start") for p in range(4)])
    sampler.records([rec(103.1 + p / 100, p, B, C, "attempt 2") for p in range(7)])
    sampler.records([rec(104.9, 0, B, C, "attempt 3")])
    assert sampler.attempts == 12
    assert dict(sampler.buckets) == {0: 4, 3: 7, 4: 1}
    assert sampler.peak_attempts_per_s == 7


def test_series_rows_count_per_interval_and_levels_at_the_sample():
    """attempts, lost and messages are per interval; connections is the level then;
    server_rss appears only when given."""
    sampler = Sampler(start=0.0)
    start_and_open(sampler, 0, 0.0, 0.1)
    start_and_open(sampler, 1, 0.0, 0.2)
    sampler.sample(1.0, messages_received=40, server_rss=1000.0)
    sampler.records([rec(1.5, 0, OPEN, L, "closed 1006"), rec(1.5, 0, L, B),
                     rec(1.7, 0, B, C, "attempt 1")])
    sampler.sample(2.0, messages_received=50, server_rss=0.0)
    series = sampler.series()
    assert series.t == [1.0, 2.0]
    assert series.columns == {"connections": [2, 1], "attempts": [2, 1],
                              "messages": [40, 10], "lost": [0, 1],
                              "server_rss": [1000.0, 0.0]}
    assert "server_rss" not in Sampler(0.0).series().columns


def test_the_last_row_can_carry_the_level_before_the_probes_stopped():
    """At the end the probes close themselves; the last row keeps the level they had."""
    sampler = Sampler(start=0.0)
    start_and_open(sampler, 0, 0.0, 0.1)
    sampler.records([rec(2.0, 0, OPEN, X, "duration reached")])
    sampler.sample(2.05, messages_received=0, connections=1)
    assert sampler.series().columns["connections"] == [1] and sampler.open == 0


def test_steady_needs_every_probe_open_and_a_quiet_settle_time():
    """Steady state: all probes open and no open/close for 2 s."""
    sampler = Sampler(start=0.0)
    start_and_open(sampler, 0, 0.0, 0.5)
    assert not sampler.steady(3.0, probes=2)  # one of two open
    start_and_open(sampler, 1, 0.0, 1.5)
    assert not sampler.steady(3.0, probes=2)  # 1.5 s since the last open
    assert sampler.steady(3.5, probes=2)
    sampler.records([rec(4.0, 1, OPEN, L, "no pong within 1s")])
    assert not sampler.steady(9.0, probes=2)


def test_server_attempts_count_only_attempts_that_reached_a_server():
    """Refused connects (nothing listening) are attempts but not server load; opens and
    costly failures (503, timeout) count in the second they ended in."""
    sampler = Sampler(start=0.0)
    refused = [Record(0.5 + p / 100, p, C, B, "retry", None, "refused") for p in range(9)]
    sampler.records(refused)
    sampler.records([Record(2.2, 0, C, OPEN, "attempt 2"),
                     Record(2.3, 1, C, B, "retry", None, "status_503"),
                     Record(2.4, 2, C, B, "retry", None, "timeout"),
                     Record(3.1, 3, C, B, "retry", None, "dns")])
    assert sampler.peak_server_attempts_per_s == 3
    assert dict(sampler.server_buckets) == {2: 3}
