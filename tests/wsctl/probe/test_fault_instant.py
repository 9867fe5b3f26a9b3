"""A fault instant given after the fact still pairs with the loss it caused (virtual time)."""

import pytest

from tests.wsctl.probe.helpers import machine, welcome
from wsctl.backoff import BackoffPolicy
from wsctl.probe.machine import MAX_UNPAIRED, Closed, Connected, Received, Tick


def steady():
    """Open at 0 (welcome at once); every retry waits exactly 1 s."""
    m = machine(backoff=BackoffPolicy(kind="exponential", base=1, cap=1))
    m.start(0.0)
    m.handle(Connected(0.0))
    m.handle(Received(0.0, 100.0, welcome(interval=30, timeout=30)))
    return m


def lose_and_recover(m, lost, welcome_at=None):
    """Lose the connection at ``lost``, reconnect 1 s later and resume."""
    m.handle(Closed(lost, 1006))
    m.handle(Tick(lost + 1))
    m.handle(Connected(lost + 1))
    m.handle(Received(welcome_at or lost + 1, 100.0,
                      welcome(offset=0, interval=30, timeout=30)))


def detects(m):
    hist = m.metrics.histograms["detect_time"]
    return hist.count, hist.summary()["max"]


def test_fault_told_after_the_loss_was_noticed_yields_detect_time():
    """An instantaneous fault at 5.0 noticed at 5.02, told at 5.3: detect_time 20 ms."""
    m = steady()
    m.handle(Closed(5.02, 1006))
    m.fault_injected(5.0)
    count, worst = detects(m)
    assert count == 1 and worst == pytest.approx(0.02, rel=1e-3)


def test_fault_told_after_the_recovery_still_pairs_with_its_loss():
    """The probe lost at 5.01 and was back at 6.01 before the fault instant 5.0 arrived."""
    m = steady()
    lose_and_recover(m, 5.01)
    m.fault_injected(5.0)
    count, worst = detects(m)
    assert count == 1 and worst == pytest.approx(0.01, rel=1e-3)


def test_told_twice_counts_once():
    """The same fault instant given twice (before and after) yields one detect_time."""
    m = steady()
    m.fault_injected(5.0)
    m.handle(Closed(5.03, 1006))
    m.fault_injected(5.0)
    assert detects(m)[0] == 1


def test_probe_not_open_at_the_fault_records_nothing():
    """Lost at 1, open again at 2, lost at 3: a fault at 1.5 (the probe was down) pairs
    with no loss, and a later loss does not take it either."""
    m = steady()
    lose_and_recover(m, 1.0)
    m.handle(Closed(3.0, 1006))
    m.fault_injected(1.5)
    m.handle(Tick(4.0))
    m.handle(Connected(4.0))
    assert detects(m)[0] == 0
    assert m.fault_at is None


def test_each_late_fault_takes_the_first_loss_after_it():
    """Losses at 2.01 and 5.03; faults told late at 2.0 then 5.0: 10 ms and 30 ms."""
    m = steady()
    lose_and_recover(m, 2.01)
    lose_and_recover(m, 5.03)
    m.fault_injected(2.0)
    m.fault_injected(5.0)
    hist = m.metrics.histograms["detect_time"]
    assert hist.count == 2
    assert hist.summary()["min"] == pytest.approx(0.01, rel=1e-2)
    assert hist.summary()["max"] == pytest.approx(0.03, rel=1e-2)


def test_past_fault_not_yet_noticed_waits_for_the_loss():
    """A half-open fault at 5.0 told at 5.5, noticed at 7.0: detect_time 2 s."""
    m = steady()
    m.fault_injected(5.0)
    assert m.fault_at == 5.0
    m.handle(Closed(7.0, 1006))
    count, worst = detects(m)
    assert count == 1 and worst == pytest.approx(2.0, rel=1e-3)


def test_fault_older_than_the_losses_kept_is_not_guessed():
    """When more losses happened since a late fault than are kept, none is paired."""
    m = steady()
    for i in range(MAX_UNPAIRED + 1):
        lose_and_recover(m, 10.0 + 3 * i)
    m.fault_injected(9.0)
    assert detects(m)[0] == 0
    m.fault_injected(10.0 + 3 * MAX_UNPAIRED - 0.5)  # the newest loss is still known
    assert detects(m)[0] == 1
