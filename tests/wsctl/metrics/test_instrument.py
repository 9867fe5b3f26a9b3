"""The instrument's own health: saturation bounds and calls too close for it to make."""

from __future__ import annotations

from wsctl.metrics.instrument import Instrument, ProcessHealth


def test_a_quiet_instrument_is_not_saturated() -> None:
    """Lag and CPU under every bound: no saturation, distortion is the worst stall."""
    inst = Instrument((ProcessHealth("w0", 0.3, 0.002, 0.015),
                       ProcessHealth("w1", 0.4, 0.004, 0.030)))
    assert inst.saturation() is None and inst.measured
    assert inst.distortion == 0.030


def test_each_bound_names_the_process_and_what_to_change() -> None:
    """Lag p99, lag max and CPU each make it saturated, and the reason says which."""
    lagging = Instrument((ProcessHealth("probes", 0.5, 0.63, 0.9),))
    reason = lagging.saturation()
    assert reason is not None
    assert "probes" in reason and "630 ms late at p99" in reason and "900 ms" in reason
    assert "probes.processes" in reason
    busy = Instrument((ProcessHealth("w3", 0.97, 0.001, 0.01),))
    assert "97% of a core" in (busy.saturation() or "")


def test_a_figure_nearer_its_bound_than_the_worst_stall_is_too_close() -> None:
    """4.79 s against < 5 s with a 300 ms stall cannot be called; 0.14 s can."""
    inst = Instrument((ProcessHealth("probes", 0.2, 0.01, 0.3),))
    assert inst.too_close(4.79, 5.0) is not None
    assert inst.too_close(0.14, 5.0) is None


def test_from_json_reads_what_processes_report() -> None:
    """A worker's JSON (cpu, loop_lag_p99, loop_lag_max) round-trips; missing is None."""
    inst = Instrument.from_json([{"name": "w0", "cpu": 0.2, "loop_lag_p99": 0.001,
                                  "loop_lag_max": 0.02}, {"name": "w1"}])
    assert inst.processes[0].to_json()["loop_lag_max"] == 0.02
    assert inst.processes[1].lag_p99 is None and inst.saturation() is None
    assert not Instrument.from_json([{"name": "x"}]).measured
