"""A probe's TCP connect, done before websockets is involved, so that a refused one is cheap.

A probe retries a connect refused by the kernel every ~250 ms (``backoff.fast``): in a
reconnect storm hundreds of probes per worker do so through the whole outage. Through
websockets' ``connect()`` each refused attempt costs ~250 us of the worker's loop (its
URI parsing, options, ``create_connection``'s resolution); a plain non-blocking socket
costs a third of that, and the loop that stamps every other probe's instants stays
free. A socket that connects gets its opening request at once (the driver's
``_handshake_over``), or is handed to websockets' ``connect()`` (``sock=``) for wss://.

Only for a host written as an IP address: a name is left to websockets, which resolves
it on every attempt as before (a DNS failure stays a DNS failure). Over a socket it was
given websockets follows no HTTP redirect; a 3xx is then a failed attempt, as it is for
a browser's WebSocket.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import select
import socket
from urllib.parse import urlsplit

Address = tuple[socket.AddressFamily, tuple[str, int]]


@functools.lru_cache(maxsize=4096)
def ip_address_of(url: str) -> Address | None:
    """The socket family and (host, port) of a ws:// or wss:// ``url`` whose host is an
    IP address; None for a host name or anything websockets should judge itself."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        return None
    try:
        ip = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return None
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    default = 443 if parts.scheme == "wss" else 80
    return family, (str(ip), port or default)


async def open_socket(url: str) -> socket.socket | None:
    """A connected non-blocking socket to ``url``'s address, or None when its host is a
    name (websockets connects then). Raises the OSError the connect raised (refused,
    unreachable, ...) with the socket closed; cancelled, the socket is closed too."""
    address = ip_address_of(url)
    if address is None:
        return None
    family, target = address
    # proto TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on a socket whose
    # proto says TCP. With Nagle on, a heartbeat written while the previous segment
    # waited for its delayed ACK sat in the kernel 33-40 ms, all of it inside rtt
    # (benchmarks/observer.py: ~4% of rtt samples).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setblocking(False)
        err = sock.connect_ex(target)
        if err == errno.EINPROGRESS:
            # A refusal on this host is known before connect() returns (the RST is
            # handled inside the call): read it now and skip a selector round trip.
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            # Over loopback the three-way handshake is over by then too: a zero-timeout
            # poll says so for a syscall's cost, where waiting for the loop's own
            # selector queues behind every other probe's callbacks (~0.2 ms of a busy
            # worker, all of it inside connect_time).
            if not err and not _writable_now(sock):
                await _writable(sock)
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err and err != errno.EISCONN:
            raise OSError(err, f"Connect call failed {target}")
    except BaseException:
        sock.close()
        raise
    return sock


def _writable_now(sock: socket.socket) -> bool:
    """Whether ``sock``'s connect is already over, without waiting (poll, not select:
    a worker's descriptors run past select's 1024)."""
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    return bool(poller.poll(0))


async def _writable(sock: socket.socket) -> None:
    """Until ``sock``'s connect is over (its fd selects writable), as asyncio's
    ``sock_connect`` waits."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    fd = sock.fileno()

    def ready() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_writer(fd, ready)
    try:
        await done
    finally:
        loop.remove_writer(fd)


__all__ = ["ip_address_of", "open_socket"]
