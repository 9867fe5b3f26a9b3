"""Reconnecting probe clients: a pure state machine, its asyncio driver, and fleets."""

from wsctl.probe.driver import ConnectError, Link, Probe, websockets_connector
from wsctl.probe.fleet import Fleet
from wsctl.probe.machine import (
    COUNTERS,
    HISTOGRAMS,
    MODES,
    ProbeConfig,
    ProbeMachine,
    Record,
    State,
    new_metrics,
)

__all__ = [
    "COUNTERS",
    "HISTOGRAMS",
    "MODES",
    "ConnectError",
    "Fleet",
    "Link",
    "Probe",
    "ProbeConfig",
    "ProbeMachine",
    "Record",
    "State",
    "new_metrics",
    "websockets_connector",
]
