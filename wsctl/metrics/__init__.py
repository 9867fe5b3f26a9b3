"""Metrics: HDR histograms, counters, and the versioned result object with its schema."""

from wsctl.metrics.histogram import Histogram, Unit
from wsctl.metrics.registry import GAUGE_UNITS, Gauge, GaugeUnit, MetricSet
from wsctl.metrics.result import SCHEMA, SCHEMA_VERSION, Result, merge, validate

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "GAUGE_UNITS",
    "Gauge",
    "GaugeUnit",
    "Histogram",
    "MetricSet",
    "Result",
    "Unit",
    "merge",
    "validate",
]
