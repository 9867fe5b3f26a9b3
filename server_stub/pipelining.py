"""One HTTP request at a time on a connection that is still in its opening handshake.

websockets parses whatever follows the request as WebSocket frames at once, before the
response is sent. A second pipelined request (``GET /ws/health`` twice in one write)
then fails as a bad frame and the connection closes with no answer at all. Here the
bytes after the request wait until the handshake is decided: a 101 parses them as
frames, any other response is sent and the connection closed (websockets discards the
rest), so the first request is always answered. A head that is not HTTP at all (a NUL
in a header name, a bare LF) gets a 400 where websockets would close without a word.
"""

from __future__ import annotations

import http
from collections.abc import Generator
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import InvalidMessage
from websockets.protocol import OPEN, Protocol, State
from websockets.server import ServerProtocol


class _AfterHandshake(Protocol):
    def parse(self) -> Generator[None]:
        while self.state is State.CONNECTING:
            yield  # held in the reader until the response is decided
        yield from super().parse()


class _OneRequestProtocol(ServerProtocol, _AfterHandshake):
    """ServerProtocol whose frame parsing starts only once the handshake is done, and
    that answers a request it could not parse with a 400 before closing."""

    def send_eof(self) -> None:
        exc = self.handshake_exc  # after an EOFError the peer has left: nobody to answer
        if (self.state is State.CONNECTING and isinstance(exc, InvalidMessage)
                and not isinstance(exc.__cause__, EOFError) and not self.eof_sent):
            response = self.reject(http.HTTPStatus.BAD_REQUEST,
                                   "Failed to open a WebSocket connection: "
                                   "did not receive a valid HTTP request.\n")
            self.writes.append(response.serialize())
        super().send_eof()


class OneRequestConnection(ServerConnection):
    """ServerConnection whose protocol answers the first request before reading more."""

    def __init__(self, protocol: ServerProtocol, *args: Any, **kwargs: Any) -> None:
        if type(protocol) is ServerProtocol:  # the parser, started already, reads the MRO late
            protocol.__class__ = _OneRequestProtocol
        super().__init__(protocol, *args, **kwargs)

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        await super().handshake(*args, **kwargs)
        reader = self.protocol.reader
        if self.protocol.state is OPEN and (reader.buffer or reader.eof):
            # Bytes or an EOF that arrived during the handshake: parse them now, as
            # data_received would have, rather than when (if ever) more data comes.
            next(self.protocol.parser)
            events = self.protocol.events_received()
            self.send_data()
            for event in events:
                self.process_event(event)
