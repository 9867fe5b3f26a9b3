"""Histograms recorded in two real processes merge into exactly one histogram of all
samples (bench's bulk recording and the result's HDR encoding, end to end)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from array import array

import pytest

from wsctl.bench.samples import record_many
from wsctl.bench.workers import sum_progress, sum_series
from wsctl.metrics import Histogram, MetricSet, Result, merge

CHILD = """
import json, random, sys
from array import array
from wsctl.bench.samples import record_many
from wsctl.metrics import MetricSet, Result
seed = int(sys.argv[1])
rng = random.Random(seed)
values = array("q", (rng.randrange(50, 2_000_000) for _ in range(20_000)))
metrics = MetricSet()
record_many(metrics.histogram("rtt"), values)
metrics.add("messages.sent", len(values))
print(json.dumps(Result(kind="bench", metrics=metrics).to_dict()))
"""


def _samples(seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(50, 2_000_000) for _ in range(20_000)]


def test_two_processes_merge_to_one_histogram_of_all_samples() -> None:
    """Merged result of two processes == one histogram of both sample sets: same count,
    same percentiles and the same HDR encoding; counters add up."""
    outs = [subprocess.run([sys.executable, "-c", CHILD, str(seed)], capture_output=True,
                           text=True, check=True, timeout=60).stdout for seed in (1, 2)]
    merged = merge([Result.from_dict(json.loads(out)) for out in outs])
    whole = Histogram("rtt")
    for value in _samples(1) + _samples(2):
        whole.record(value / 1e6)
    got = merged.metrics.histograms["rtt"]
    assert got.count == 40_000
    assert got.summary() == whole.summary()
    assert Histogram.decode("rtt", "s", got.encode()).buckets() == whole.buckets()
    assert merged.metrics.counters["messages.sent"] == 40_000


def test_progress_and_series_of_processes_add_up() -> None:
    """Live figures and per-second series of several workers are added, not averaged."""
    snap = sum_progress([{"t": 1.0, "held": 3, "sent": 10, "rate": 5.0},
                         {"t": 1.1, "held": 4, "sent": 20, "rate": 6.0}])
    assert (snap["held"], snap["sent"], snap["rate"], snap["t"]) == (7, 30, 11.0, 1.1)
    series = sum_series([{"t": [1, 2, 3], "connections_held": [1, 2, 3],
                          "messages_per_s": [1, 1, 1]},
                         {"t": [1, 2], "connections_held": [5, 5], "messages_per_s": [2, 2]}])
    assert series["connections_held"] == [6, 7] and series["messages_per_s"] == [3, 3]



def _every_magnitude() -> list[int]:
    """0 µs to past the hour a histogram holds, and a negative one (both clamped)."""
    rng = random.Random(4)
    values = [0, 1, 2047, 2048, 2049, 4095, 4096, 3_600_000_000, 3_600_000_001, -5]
    return values + [int(rng.expovariate(1 / 10 ** rng.randrange(1, 10)))
                     for _ in range(30_000)]


@pytest.mark.parametrize("values", [_samples(3), _every_magnitude()],
                         ids=["rtt-like", "every-magnitude"])
def test_bulk_recording_equals_one_record_per_value(values: list[int]) -> None:
    """record_many (values folded into HDR buckets, one call per bucket) gives the same
    histogram, clamped count included, as Histogram.record for every value."""
    one = Histogram("rtt")
    for v in values:
        one.record(v / 1e6)
    bulk = MetricSet().histogram("rtt")
    record_many(bulk, array("q", values))
    assert bulk.summary() == one.summary() and bulk.buckets() == one.buckets()
    assert bulk.clamped == one.clamped
