"""``wsctl chaos``: a fault-injection TCP proxy with Toxiproxy's API and WebSocket faults.

``Chaos`` holds the proxies; ``ChaosServer`` serves them with the HTTP API in the
current event loop; ``FAULTS`` is the table of every fault type. See ``docs/chaos.md``.
"""

from typing import TYPE_CHECKING, Any

from wsctl.chaos.faults import FAULTS
from wsctl.chaos.model import DEFAULT_API, ProxySpec, Toxic, toxic_from_mapping
from wsctl.chaos.proxy import Chaos, Proxy
from wsctl.chaos.schedule import Schedule, Timing

if TYPE_CHECKING:
    from wsctl.chaos.server import ChaosServer


def __getattr__(name: str) -> Any:
    # ChaosServer pulls in uvicorn and starlette: load it only when asked for, so
    # every other wsctl command (and the chaos client commands) start without them.
    if name == "ChaosServer":
        from wsctl.chaos.server import ChaosServer

        return ChaosServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "DEFAULT_API",
    "FAULTS",
    "Chaos",
    "ChaosServer",
    "Proxy",
    "ProxySpec",
    "Schedule",
    "Timing",
    "Toxic",
    "toxic_from_mapping",
]
