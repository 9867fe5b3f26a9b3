"""The metric catalog: names resolve, statistics split off, and the docs list them all."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsctl.errors import CONNECT_KINDS
from wsctl.metrics.catalog import FAMILIES, METRICS, lookup, split
from wsctl.probe.machine import COUNTERS, ERROR_COUNTERS, HISTOGRAMS

DOC = Path(__file__).parents[3] / "docs" / "metrics.md"


def test_every_probe_metric_is_in_the_catalog() -> None:
    """What a probe records can be named in a criterion."""
    for name, unit in HISTOGRAMS:
        info = METRICS[name]
        assert (info.kind, info.unit) == ("histogram", unit)
    for name in COUNTERS + ERROR_COUNTERS:
        assert METRICS[name].kind == "counter"


def test_every_connect_failure_kind_is_a_counter_and_typos_are_not() -> None:
    """errors.<kind> is known for every fixed kind and for errors.status_<code>; any other
    errors.* name (a typo) is refused before a run, with a suggestion."""
    for kind in CONNECT_KINDS:
        assert split(f"errors.{kind}") == (METRICS[f"errors.{kind}"], None)
    assert lookup("errors.status_401") is not None
    assert lookup("errors.closed_1006") is not None
    assert lookup("errors.refsued") is None and lookup("errors.status_") is None
    with pytest.raises(KeyError, match="did you mean 'errors.refused'"):
        split("errors.refsued")


def test_split_separates_statistic_and_knows_families() -> None:
    """p99.9 is one statistic; errors.<kind> and closes.<code> are open families."""
    assert split("reconnect_time.p99.9")[1] == "p99.9"
    assert split("messages.lost") == (METRICS["messages.lost"], None)
    assert lookup("errors.status_503") is not None and lookup("closes.1006") is not None
    assert lookup("errors.") is None and lookup("errors.a.b") is None
    with pytest.raises(KeyError, match="did you mean"):
        split("reconect_time.mean")


def test_docs_list_every_metric() -> None:
    """docs/metrics.md has a row for every name in the catalog."""
    text = DOC.read_text()
    for name in [*METRICS, *(f.name for f in FAMILIES.values())]:
        assert f"| `{name}` |" in text, name
