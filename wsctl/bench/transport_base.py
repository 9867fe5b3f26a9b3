"""The bench's one small transport interface; implementations import only this module.

A transport opens a WebSocket and hands back a :class:`Channel`; incoming messages
go straight to a :class:`Receiver` callback with the receipt time, so the hot path has
no queue, no future and no await per message. Sends are non-blocking writes.

    Transport.connect(url, receiver, timeout=..., ssl=..., headers=..., subprotocols=...)
        -> Channel
        (raises wsctl.errors.ConnectError, kinds as for every wsctl client)
    Channel.send(text)  Channel.close(code, reason)  await Channel.wait_closed()
    Receiver.on_message(data, at)  Receiver.on_close(code, reason)

The implementations live in ``wsctl.bench.transport`` (websockets, and the lookup by name)
and ``wsctl.bench.transport_picows``; neither imports the other.
"""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import Sequence
from typing import Protocol

__all__ = ["Channel", "Receiver", "Transport"]


class Receiver(Protocol):
    """What a channel calls back into; both methods run on the event loop, never block."""

    def on_message(self, data: str | bytes, at: float) -> None:
        """A whole message arrived; ``at`` is ``time.monotonic()`` on receipt."""

    def on_close(self, code: int | None, reason: str) -> None:
        """The connection is closed; ``code`` is None when no close frame came (1006)."""


class Channel(Protocol):
    """An open WebSocket connection as the bench drives it."""

    def send(self, data: str) -> None:
        """Queue or write one text message now; never awaits."""

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; returns at once."""

    async def wait_closed(self) -> None:
        """Return when the TCP connection is gone."""

    @property
    def buffered(self) -> int:
        """Bytes written but not yet sent (backpressure)."""


class Transport(Protocol):
    """Opens channels. ``name`` is what ``--transport`` calls it."""

    name: str

    async def connect(
        self,
        url: str,
        receiver: Receiver,
        *,
        timeout: float,
        ssl: ssl_module.SSLContext | None = None,
        headers: Sequence[tuple[str, str]] = (),
        subprotocols: Sequence[str] = (),
    ) -> Channel:
        """Open a WebSocket to ``url`` with extra handshake ``headers`` and offering
        ``subprotocols``; raises :class:`wsctl.errors.ConnectError`."""
        ...
