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
import struct
import sys
import time
from urllib.parse import urlsplit

from wsctl.probe.ioclock import io_wake, woke

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


# Linux's SO_TIMESTAMPNS (Python's socket module does not name it): the kernel stamps each
# segment when it reaches the socket, and recvmsg() returns the stamp of the last segment
# it read as a struct timespec of CLOCK_REALTIME.
_SO_TIMESTAMPNS = 35 if sys.platform.startswith("linux") else None
_TIMESPEC = struct.Struct("@ll")
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size)
_READ = 65536


def stamp_arrivals(sock: socket.socket, on: bool = True) -> bool:
    """Ask the kernel to stamp when each segment reaches ``sock`` (``on=False``: stop);
    False where it cannot (not Linux, refused)."""
    if _SO_TIMESTAMPNS is None:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, int(on))
    except OSError:
        return False
    return True


async def read_first(sock: socket.socket, not_before: float
                     ) -> tuple[bytes, tuple[float, float]]:
    """The first bytes ``sock`` receives (b"" at end of stream) and when they arrived, as
    ``(time.monotonic(), time.time())``: the kernel's stamp of the segment when
    ``stamp_arrivals`` is on, else (or if it is later) the loop's wake-up that reported
    the socket (``wsctl.probe.ioclock``), else the instant it was read. A process waiting
    for a CPU, or busy with other probes, learns of a response later than it came; the
    kernel's stamp does not move with that. A stamp before ``not_before`` (the request
    went out then: the wall clock was stepped) is not used. Raises the OSError the read
    raised (reset, ...)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[tuple[bytes, tuple[float, float]]] = loop.create_future()
    fd = sock.fileno()

    def ready() -> None:
        if done.done():
            return
        try:
            data, ancillary, _, _ = sock.recvmsg(_READ, _ANCILLARY)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            loop.remove_reader(fd)
            done.set_exception(exc)
            return
        loop.remove_reader(fd)
        at = woke(io_wake())
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and \
                    len(payload) >= _TIMESPEC.size:
                seconds, nanoseconds = _TIMESPEC.unpack_from(payload)
                wall = seconds + nanoseconds * 1e-9
                mono = wall + (time.monotonic() - time.time())
                if not_before <= mono < at[0]:
                    at = (mono, wall)
        done.set_result((data, at))

    loop.add_reader(fd, ready)
    try:
        return await done
    finally:
        loop.remove_reader(fd)  # cancelled (a timeout) while waiting; else a no-op


__all__ = ["ip_address_of", "open_socket", "read_first", "stamp_arrivals"]
