"""Reconnecting probe clients: a pure state machine, its asyncio driver, and fleets."""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Name -> its module, loaded when asked for: bench (and scenarios) import
# wsctl.probe.dialect and wsctl.probe.sequence without the driver, the fleet and the
# machine, so a bench worker process starts without them.
_EXPORTS = {
    "ConnectError": "driver", "Link": "driver", "Probe": "driver",
    "websockets_connector": "driver", "Fleet": "fleet", "COUNTERS": "machine",
    "HISTOGRAMS": "machine", "MODES": "machine", "ProbeConfig": "machine",
    "ProbeMachine": "machine", "Record": "machine", "State": "machine",
    "new_metrics": "machine",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"wsctl.probe.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
