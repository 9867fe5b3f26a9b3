"""Run reports built in Python for the report tests: a passing scenario with series and
a reconnect-time distribution, a failing one, one that could not run, one with no series.
Figures come from real MetricSets, so histograms carry real HDR encodings."""

from __future__ import annotations

import random

from wsctl.metrics import MetricSet, Result
from wsctl.results.criteria import downgrade, judge_all, parse, parse_all
from wsctl.results.outcome import RunReport, ScenarioOutcome, Series, TimelineEntry

STARTED = 1_764_140_000.0
XSS_NAME = "<script>alert(1)</script>"


def metrics(reconnects: int, lost: int, seed: int = 1) -> MetricSet:
    """A probe run's metrics: reconnect/resume/connect times, counters, a gauge."""
    rng = random.Random(seed)
    m = MetricSet()
    for _ in range(reconnects):
        rt = rng.uniform(0.4, 2.5)
        m.histogram("reconnect_time").record(rt)
        m.histogram("resume_time").record(rt + rng.uniform(0.001, 0.02))
        m.histogram("reconnect_attempts", "count").record(rng.choice((1, 1, 2, 3)))
    for _ in range(50):
        m.histogram("connect_time").record(rng.uniform(0.001, 0.01))
    m.histogram("detect_time")  # present but empty: no samples
    m.add("messages.received", 12_000)
    m.add("messages.lost", lost)
    m.add("probes.gave_up", 0)
    m.set_gauge("server.rss_per_connection", 28_364.8, "bytes")
    return m


def series(duration: int, with_rss: bool = True) -> Series:
    """One sample a second, as wsctl.scenario.sampler writes it: connections dip at 5 s
    and come back, attempts spike; lost counts connections lost per interval."""
    t = [float(i) for i in range(1, duration + 1)]
    connections = [200.0 if not 5 <= i < 8 else 20.0 * (i - 4) for i in range(duration)]
    attempts = [0.0] * duration
    attempts[5], attempts[6] = 180.0, 40.0
    lost = [0.0] * duration
    lost[5] = 200.0  # connections lost in the interval (the server was killed)
    columns = {
        "connections": connections,
        "attempts": attempts,
        "messages": [400.0 if c == 200 else 50.0 for c in connections],
        "lost": lost,
    }
    if with_rss:
        columns["server_rss"] = [60e6 + 1e5 * i for i in range(duration)]
    return Series(interval=1.0, t=t, columns=columns)


def timeline() -> list[TimelineEntry]:
    return [
        TimelineEntry(at=5.002, wall=STARTED + 5.0, do="server.kill", planned=5.0,
                      detail="SIGKILL pid 4242"),
        TimelineEntry(at=7.01, wall=STARTED + 7.0, do="server.start", planned=7.0),
        TimelineEntry(at=12.0, wall=STARTED + 12.0, do="toxic", planned=12.0,
                      detail="latency downstream 300 ms for 5 s"),
    ]


def passing() -> ScenarioOutcome:
    result = Result("run", metrics(200, 0), started_at=STARTED, duration=20.0)
    criteria = [
        parse("reconnect_time.mean", "< 5s", "Reconnection within 5 seconds on average"),
        parse("messages.lost", "== 0", "No lost messages during a reconnect"),
        parse("server.rss_per_connection", "<= 32KiB"),
    ]
    return ScenarioOutcome(
        name="server-restart", description="The server is killed and back 2 s later.",
        file="scenarios/ep-0001.yaml", result=result, verdicts=judge_all(criteria, result),
        timeline=timeline(), series=series(20))


def failing() -> ScenarioOutcome:
    result = Result("run", metrics(100, 7, seed=2), started_at=STARTED + 20, duration=15.0)
    criteria = parse_all({
        "reconnect_time.p99": {"expect": "< 1s", "ep": "p99 reconnection under one second"},
        "messages.lost": "== 0",
        "detect_time.p99": "< 2s",  # empty histogram: error, never a pass
    })
    return ScenarioOutcome(
        name=XSS_NAME, description="A name & description <b>people</b> wrote",
        file="scenarios/ep-0001.yaml", result=result, verdicts=judge_all(criteria, result),
        timeline=[TimelineEntry(at=3.0, wall=STARTED + 23, do="cut", planned=3.0,
                                error="no connection to cut")],
        series=series(15, with_rss=False))


def could_not_run() -> ScenarioOutcome:
    return ScenarioOutcome(
        name="graceful-restart", description="", file="scenarios/ep-0001.yaml",
        result=None, error="server would not start: port 8765 is taken")


def no_series() -> ScenarioOutcome:
    result = Result("run", metrics(0, 0, seed=3), started_at=STARTED + 40, duration=5.0)
    criteria = [parse("connect_time.p50", "< 100ms", "Connection set-up stays fast")]
    return ScenarioOutcome(
        name="quiet", description="Nothing happens; probes stay connected.",
        file="scenarios/quiet.yaml", result=result, verdicts=judge_all(criteria, result))


def full_report() -> RunReport:
    """Four scenarios: passed, failed (with an unjudgeable criterion), error, no series."""
    return RunReport(suite="ep-0001", file="scenarios/ep-0001.yaml",
                     scenarios=[passing(), failing(), could_not_run(), no_series()],
                     started_at=STARTED, duration=61.5)


def passing_report() -> RunReport:
    return RunReport(suite="smoke", file="scenarios/smoke.yaml",
                     scenarios=[passing(), no_series()], started_at=STARTED, duration=25.0)


SATURATED = "the probes' event loop ran 630 ms late (p99); use probes.processes"


def inconclusive() -> ScenarioOutcome:
    """Timing criteria made INCONCLUSIVE by a later pass; a count criterion still passes."""
    result = Result("run", metrics(150, 0, seed=4), started_at=STARTED + 50, duration=10.0)
    criteria = [
        parse("reconnect_time.p99", "< 5s", "Reconnection happens within 5 seconds"),
        parse("connect_time.p50", "< 1ms"),  # would fail: inconclusive all the same
        parse("messages.lost", "== 0"),
    ]
    return ScenarioOutcome(
        name="reconnect-storm", description="Every probe reconnects at once.",
        file="scenarios/ep-0001.yaml", result=result,
        verdicts=downgrade(judge_all(criteria, result), SATURATED),
        series=series(10, with_rss=False))


def inconclusive_report() -> RunReport:
    """One passing and one inconclusive scenario: nothing failed."""
    return RunReport(suite="ep-0001", file="scenarios/ep-0001.yaml",
                     scenarios=[passing(), inconclusive()], started_at=STARTED, duration=30.0)
