"""The bench's transports by name.

The interface (``Transport``, ``Channel``, ``Receiver``) is in ``wsctl.bench.transport_base``
and re-exported here. Implementations, each imported only when asked for:
``"websockets"`` (``wsctl.bench.transport_websockets``) and ``"picows"``
(``wsctl.bench.transport_picows``; it must define ``PicowsTransport``, a no-argument
class). Connect failures are ``wsctl.errors.ConnectError`` from the one classifier,
``wsctl.errors.classify_connect_error``.
"""

from __future__ import annotations

from wsctl.bench.transport_base import Channel, Receiver, Transport
from wsctl.errors import InvalidInput

__all__ = [
    "Channel",
    "Receiver",
    "Transport",
    "get_transport",
    "transport_names",
]


def transport_names() -> tuple[str, ...]:
    """The names ``--transport`` accepts."""
    return ("websockets", "picows")


def get_transport(name: str) -> Transport:
    """The transport called ``name``; unknown or not installed -> InvalidInput."""
    if name == "websockets":
        from wsctl.bench.transport_websockets import WebsocketsTransport

        return WebsocketsTransport()
    if name == "picows":
        try:
            from wsctl.bench.transport_picows import PicowsTransport
        except ImportError as exc:
            raise InvalidInput(
                f"--transport picows is not available ({exc}); "
                "install it with `pip install picows` or use --transport websockets"
            ) from exc
        transport: Transport = PicowsTransport()
        return transport
    raise InvalidInput(
        f"unknown --transport {name!r}; choose one of: {', '.join(transport_names())}"
    )
