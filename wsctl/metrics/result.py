"""The versioned result object every command writes and every report reads.

A result is a plain JSON object (``SCHEMA`` below is its JSON Schema, also published as
``docs/result-schema.json``)::

    {"schema_version": 1, "kind": "probe", "tool": "wsctl 0.1.0",
     "started_at": 1764140000.25, "duration": 30.0, "target": "ws://…",
     "config": {…}, "metrics": {"connect_time": {"type": "histogram", "unit": "s",
     "count": 10, "mean": 0.0012, …, "hdr": "HISTFAAA…"},
     "messages.lost": {"type": "counter", "value": 0},
     "server.rss_per_connection": {"type": "gauge", "unit": "bytes", "value": 28364.8}},
     "details": {…}}

Durations are in seconds. Each histogram carries its HdrHistogram encoding so results
from several processes merge exactly (``merge``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from wsctl import __version__
from wsctl.errors import CONNECT_KINDS, STATUS_KIND_PREFIX, InvalidInput
from wsctl.metrics.histogram import Histogram
from wsctl.metrics.registry import GAUGE_UNITS, MetricSet

SCHEMA_VERSION = 1

_NUMBER_OR_NULL = {"type": ["number", "null"]}
_HISTOGRAM = {
    "type": "object",
    "required": ["type", "unit", "count", "mean", "p50", "p90", "p99", "p99.9", "max", "hdr"],
    "properties": {
        "type": {"const": "histogram"},
        "unit": {"enum": ["s", "count"]},
        "count": {"type": "integer", "minimum": 0},
        **{k: _NUMBER_OR_NULL for k in ("mean", "min", "p50", "p90", "p99", "p99.9", "max")},
        "hdr": {"type": "string", "description": "HdrHistogram compressed base64 encoding"},
    },
    "additionalProperties": False,
}
_COUNTER = {
    "type": "object",
    "required": ["type", "value"],
    "properties": {
        "type": {"const": "counter"},
        "value": {"type": "integer", "minimum": 0},
    },
    "additionalProperties": False,
}

_GAUGE = {
    "type": "object",
    "required": ["type", "unit", "value"],
    "properties": {
        "type": {"const": "gauge"},
        "unit": {"enum": list(GAUGE_UNITS)},
        "value": {"type": "number"},
    },
    "additionalProperties": False,
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://wsctl.invalid/schemas/result-1.json",
    "title": "wsctl result",
    "description": "One run's outcome: metrics (durations in seconds) and run details.",
    "type": "object",
    "required": ["schema_version", "kind", "tool", "started_at", "duration", "metrics"],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "kind": {"type": "string", "description": "the command that produced it: probe, …"},
        "tool": {"type": "string", "description": "wsctl and its version"},
        "started_at": {"type": "number", "description": "wall-clock start, Unix seconds"},
        "duration": {"type": "number", "minimum": 0, "description": "seconds"},
        "target": {"type": ["string", "null"]},
        "config": {"type": "object"},
        "metrics": {
            "type": "object",
            "propertyNames": {"pattern": "^[a-z_][a-z0-9_]*(\\.[a-z0-9_]+)*$"},
            "additionalProperties": {"oneOf": [_HISTOGRAM, _COUNTER, _GAUGE]},
        },
        "details": {"type": "object", "description": "kind-specific extras"},
    },
    "additionalProperties": False,
}


@dataclass(slots=True)
class Result:
    """One run's outcome; ``to_dict`` gives the JSON object ``SCHEMA`` describes."""

    kind: str
    metrics: MetricSet
    started_at: float = field(default_factory=time.time)
    duration: float = 0.0
    target: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    tool: str = f"wsctl {__version__}"

    def to_dict(self) -> dict[str, Any]:
        metrics: dict[str, Any] = {}
        for name in sorted(self.metrics.histograms):
            hist = self.metrics.histograms[name]
            metrics[name] = {
                "type": "histogram", "unit": hist.unit, **hist.summary(), "hdr": hist.encode()
            }
        for name in sorted(self.metrics.counters):
            metrics[name] = {"type": "counter", "value": self.metrics.counters[name]}
        for name in sorted(self.metrics.gauges):
            gauge = self.metrics.gauges[name]
            metrics[name] = {"type": "gauge", "unit": gauge.unit, "value": gauge.value}
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": self.kind,
            "tool": self.tool,
            "started_at": self.started_at,
            "duration": self.duration,
            "target": self.target,
            "config": self.config,
            "metrics": metrics,
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Result:
        """Rebuild a result (histograms included) from its JSON object; validates first."""
        validate(obj)
        metrics = MetricSet()
        for name, value in obj["metrics"].items():
            if value["type"] == "histogram":
                metrics.histograms[name] = Histogram.decode(name, value["unit"], value["hdr"])
            elif value["type"] == "gauge":
                metrics.set_gauge(name, value["value"], value["unit"])
            else:
                metrics.counters[name] = value["value"]
        return cls(
            kind=obj["kind"],
            metrics=metrics,
            started_at=obj["started_at"],
            duration=obj["duration"],
            target=obj.get("target"),
            config=obj.get("config", {}),
            details=obj.get("details", {}),
            tool=obj["tool"],
        )

    def value(self, metric: str) -> float | int | None:
        """A scalar by criterion name: ``messages.lost`` or ``reconnect_time.p99``."""
        if metric in self.metrics.counters:
            return self.metrics.counters[metric]
        if metric in self.metrics.gauges:
            return self.metrics.gauges[metric].value
        if metric.startswith(_STATUS_FAMILY) and metric[len(_STATUS_FAMILY):].isdigit() \
                and _CONNECTS_CLASSIFIED in self.metrics.counters:
            # A run that classifies its failed connects (every fixed errors.<kind> is
            # emitted, 0 included) would have counted this status had the server sent
            # it: an unseen code is a measured 0, not a missing metric.
            return 0
        name, _, stat = metric.rpartition(".")
        if stat == "9" and name.endswith(".p99"):  # "p99.9" contains a dot
            name, stat = name[: -len(".p99")], "p99.9"
        hist = self.metrics.histograms.get(name)
        if hist is None:
            raise KeyError(f"no metric named {metric!r}")
        summary = hist.summary()
        if stat not in summary:
            raise KeyError(f"{name} has no statistic {stat!r}")
        value: float | int | None = summary[stat]
        return value


_STATUS_FAMILY = f"errors.{STATUS_KIND_PREFIX}"
_CONNECTS_CLASSIFIED = f"errors.{next(iter(CONNECT_KINDS))}"


def merge(results: list[Result]) -> Result:
    """Combine results of one run split over processes: histograms merged, counters added."""
    if not results:
        raise ValueError("nothing to merge")
    metrics = MetricSet()
    for result in results:
        metrics.merge(result.metrics)
    first = results[0]
    start = min(r.started_at for r in results)
    end = max(r.started_at + r.duration for r in results)
    return Result(
        kind=first.kind,
        metrics=metrics,
        started_at=start,
        duration=end - start,
        target=first.target,
        config=first.config,
        details={"merged_from": len(results)},
    )


def validate(obj: Any) -> None:
    """Raise ``InvalidInput`` naming the first place where ``obj`` breaks ``SCHEMA``."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(SCHEMA)
    error = jsonschema.exceptions.best_match(validator.iter_errors(obj))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise InvalidInput(f"result does not match schema v{SCHEMA_VERSION} at {where}: "
                           f"{error.message}")
