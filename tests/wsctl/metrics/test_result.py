"""The versioned result object and its published JSON Schema."""

import json
from pathlib import Path

import pytest

from wsctl.errors import CONNECT_KINDS, InvalidInput
from wsctl.metrics import SCHEMA, MetricSet, Result, merge, validate

DOC_SCHEMA = Path(__file__).parents[3] / "docs" / "result-schema.json"


def sample(lost=0, rtts=(0.01, 0.02)):
    metrics = MetricSet([("rtt", "s"), ("reconnect_attempts", "count")], ["messages.lost"])
    for v in rtts:
        metrics.record("rtt", v)
    metrics.add("messages.lost", lost)
    return Result(kind="probe", metrics=metrics, started_at=1000.0, duration=5.0,
                  target="ws://127.0.0.1:1/ws/a", config={"count": 1})


def test_result_validates_against_its_schema():
    """to_dict() output passes the JSON Schema, through a JSON round trip."""
    obj = json.loads(json.dumps(sample().to_dict()))
    validate(obj)
    assert obj["schema_version"] == 1
    assert obj["metrics"]["rtt"]["type"] == "histogram"
    assert obj["metrics"]["messages.lost"] == {"type": "counter", "value": 0}


def test_published_schema_matches_the_code():
    """docs/result-schema.json is exactly the schema the code validates with."""
    assert json.loads(DOC_SCHEMA.read_text()) == SCHEMA


@pytest.mark.parametrize("breakage", [
    lambda o: o.pop("metrics"),
    lambda o: o.update(schema_version=2),
    lambda o: o["metrics"]["rtt"].pop("p99"),
    lambda o: o["metrics"]["messages.lost"].update(value=-1),
    lambda o: o["metrics"].update({"Bad Name": {"type": "counter", "value": 1}}),
])
def test_broken_results_are_rejected_with_a_location(breakage):
    """A result that breaks the schema raises InvalidInput naming where."""
    obj = sample().to_dict()
    breakage(obj)
    with pytest.raises(InvalidInput, match="schema v1"):
        validate(obj)


def test_from_dict_restores_histograms_exactly():
    """A result read back from JSON has the same summaries and counters."""
    original = sample(lost=3)
    again = Result.from_dict(json.loads(json.dumps(original.to_dict())))
    assert again.metrics.histograms["rtt"].summary() == \
        original.metrics.histograms["rtt"].summary()
    assert again.value("messages.lost") == 3


def test_value_reads_criterion_names():
    """value() answers counters and histogram statistics, p99.9 included."""
    result = sample(rtts=[i / 1000 for i in range(1, 1001)])
    assert result.value("messages.lost") == 0
    assert result.value("rtt.count") == 1000
    assert result.value("rtt.p99.9") == pytest.approx(0.999, rel=2e-3)
    with pytest.raises(KeyError):
        result.value("nonexistent.p50")


def test_an_unseen_http_status_is_a_measured_zero_only_where_connects_are_classified():
    """errors.status_503 reads 0 in a run that counts connect failures by kind (it would
    have been counted), and stays unmeasured (KeyError) in one that does not."""
    classified = MetricSet([], [f"errors.{kind}" for kind in CONNECT_KINDS])
    classified.add("errors.status_401", 3)
    result = Result(kind="probe", metrics=classified, started_at=0.0, duration=1.0)
    assert result.value("errors.status_503") == 0
    assert result.value("errors.status_401") == 3
    with pytest.raises(KeyError):
        result.value("errors.status_abc")
    with pytest.raises(KeyError):
        sample().value("errors.status_503")


def test_merge_combines_processes_without_averaging_percentiles():
    """merge() pools histogram values: p50 of the union, not the mean of p50s."""
    fast = sample(lost=1, rtts=[0.001] * 90)
    slow = sample(lost=2, rtts=[1.0] * 10)
    merged = merge([fast, slow])
    assert merged.value("messages.lost") == 3
    assert merged.value("rtt.count") == 100
    assert merged.value("rtt.p50") == pytest.approx(0.001, rel=1e-2)
    assert merged.value("rtt.p99") == pytest.approx(1.0, rel=1e-2)
    validate(merged.to_dict())
