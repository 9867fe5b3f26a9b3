"""``wsctl chaos``: a fault-injection TCP proxy with Toxiproxy's API and WebSocket faults.

``Chaos`` holds the proxies; ``ChaosServer`` serves them with the HTTP API in the
current event loop; ``FAULTS`` is the table of every fault type. See ``docs/chaos.md``.
"""

from wsctl.chaos.faults import FAULTS
from wsctl.chaos.proxy import Chaos, ChaosError, Proxy, Toxic
from wsctl.chaos.schedule import Schedule, Timing
from wsctl.chaos.server import DEFAULT_API, ChaosServer

__all__ = [
    "DEFAULT_API",
    "FAULTS",
    "Chaos",
    "ChaosError",
    "ChaosServer",
    "Proxy",
    "Schedule",
    "Timing",
    "Toxic",
]
