"""measurement_problem: which runs are flagged (and why), which are not."""

import pytest

from wsctl.metrics import MetricSet, Result
from wsctl.probe.sanity import measurement_problem


def result(mode="listen", dialect=None, details=None, **counters):
    metrics = MetricSet()
    for name, value in counters.items():
        metrics.add(name.replace("__", "."), value)
    base = {"probes": 1, "faults": 0, "closed_by_server": 0}
    return Result(kind="probe", metrics=metrics, config={"mode": mode, "dialect": dialect},
                  details={**base, **(details or {})})


def test_a_clean_run_is_not_flagged():
    """Frames valid, connections held: None."""
    assert measurement_problem(result(messages__received=100, connections__opened=1)) is None


@pytest.mark.parametrize(("mode", "dialect", "cause"), [
    ("resume", None, "not the reference protocol (v1): for another service use --mode "
                     "listen with a protocol block"),
    ("echo", None, "not echoes of the probe's messages"),
    ("listen", {"adapter": "socketio"}, "not Socket.IO"),
    ("listen", {"sequence": "seq"}, "protocol.sequence"),
])
def test_mostly_invalid_frames_name_the_mode_s_likely_cause(mode, dialect, cause):
    """49 of 50 frames invalid: the share, the counts and the mode's likely cause."""
    problem = measurement_problem(result(mode, dialect, messages__invalid=49,
                                         messages__received=1, connections__opened=1))
    assert problem is not None and problem.startswith("98% of frames (49 of 50)")
    assert cause in problem


def test_half_invalid_is_not_most():
    """Exactly half the frames invalid is not 'most'."""
    assert measurement_problem(result(messages__invalid=5, messages__received=5,
                                      connections__opened=1)) is None


def test_most_attempts_failed_or_dropped_is_flagged_unless_a_fault_was_announced():
    """Failed attempts or dropped connections past half are flagged with the most common
    error; the same figures in a run with announced faults are expected."""
    failed = result(connections__failed=3, connections__opened=1,
                    details={"errors": {"handshake rejected: HTTP 503": 1}})
    assert measurement_problem(failed) == (
        "3 of 4 connection attempts failed; most common: handshake rejected: HTTP 503: the "
        "figures describe the failures, not the service")
    dropped = result(connections__lost=3, connections__opened=4)
    problem = measurement_problem(dropped)
    assert problem is not None and problem.startswith("3 of 4 connections were dropped")
    assert "--socketio" in problem
    for run in (failed, dropped):
        run.details["faults"] = 1
        assert measurement_problem(run) is None


def test_probes_closed_early_by_the_server_are_flagged():
    """A final 1000 close from the server before the end, for most probes."""
    problem = measurement_problem(result(connections__opened=2, details={
        "probes": 2, "closed_by_server": 2}))
    assert problem is not None and "2 of 2 probes were closed by the server" in problem
