"""The bench's messages, shared by the asyncio engine and the Locust user: the echo/ping
payload and the cheap checks on what comes back. Pure; no I/O.

The payload is a protocol v1 ``ping`` (``{"type":"ping","t":T,"p":"xx…"}``) of about the
asked size: an echo server sends it back unchanged, the reference server answers ``pong``
with the same ``t``.
"""

from __future__ import annotations

import json

__all__ = ["event_ts", "is_other_protocol_frame", "is_pong", "payload", "ping_parts"]


def payload(stamp: int | str, size: int) -> str:
    """One ping of about ``size`` bytes stamped ``t: stamp`` (a sequence number or a time)."""
    head = f'{{"type":"ping","t":{stamp}'
    pad = size - len(head) - 1 - 7  # '}' and ',"p":""'
    if pad <= 0:
        return head + "}"
    return head + ',"p":"' + "x" * pad + '"}'


def ping_parts(size: int) -> tuple[str, list[str]]:
    """``payload(k, size)`` in parts, for a hot path that sends many: it is
    ``head + str(k) + tails[len(str(k))]`` for every k >= 0 (the padding depends only on
    how many digits k has)."""
    head = '{"type":"ping","t":'
    tails = [""] + [payload(10 ** (digits - 1), size)[len(head) + digits:]
                    for digits in range(1, 21)]
    return head, tails


def is_pong(reply: str | bytes, stamp: str) -> bool:
    """Whether ``reply`` is the reference server's ``pong`` to the ping stamped ``stamp``."""
    if not isinstance(reply, str) or not reply.startswith('{"type":"pong"'):
        return False
    try:
        return float(json.loads(reply)["t"]) == float(stamp)
    except (ValueError, KeyError, TypeError):
        return False


def is_other_protocol_frame(reply: str | bytes, stamp: str) -> bool:
    """A protocol v1 frame that is not the answer to this ping (welcome, event, old pong)."""
    return (isinstance(reply, str) and reply.startswith('{"type":"')
            and not reply.startswith('{"type":"ping"') and not is_pong(reply, stamp)
            and not reply.startswith('{"type":"error"'))


def event_ts(data: str) -> float | None:
    """The ``ts`` of a protocol v1 ``event`` frame, read without a JSON parse."""
    i = data.find('"ts":')
    if i < 0:
        return None
    end = data.find(",", i)
    try:
        return float(data[i + 5 : end if end > 0 else None])
    except ValueError:
        return None
