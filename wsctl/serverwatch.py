"""Watching the server under test: its process (RSS, CPU) and its ``/metrics`` page.

``wsctl run`` watches the reference server it started; ``wsctl bench`` watches whatever
server it loads (``--server-pid``, and ``/metrics`` when the server is the reference
one). Both read through ``ServerWatcher``; the Prometheus text is read by one parser,
``parse_metrics``. The HTTP client is a few lines over ``asyncio.open_connection``: an
HTTP library would cost half a second of import inside a running scenario's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import psutil

# Figures read from /metrics: sample name (without ``_total``) -> figure. Labelled series
# of one name are added up (refusals by reason).
FIGURES = {
    "process_resident_memory_bytes": "rss",
    "process_cpu_seconds": "cpu_s",
    "wsctl_server_connections": "connections",
    "wsctl_server_refused": "refused",
    "wsctl_server_dead_detected": "dead_detected",
}
# What a failed fetch can raise (refused, reset, timed out, cut short, not HTTP).
FETCH_ERRORS = (OSError, TimeoutError, ValueError, EOFError, asyncio.LimitOverrunError)


def parse_metrics(text: str) -> dict[str, float]:
    """The ``FIGURES`` found in Prometheus text (a figure absent from the page is absent
    here); ValueError when the text is not Prometheus's format."""
    # prometheus_client loads all of itself: only where a page is parsed.
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:  # by sample name: "# TYPE" lines vary by exporter
            key = FIGURES.get(sample.name.removesuffix("_total"))
            if key is not None:
                out[key] = out.get(key, 0.0) + float(sample.value)
    return out


@dataclass(frozen=True, slots=True)
class Page:
    """An HTTP response: status, content type and body text."""

    status: int
    content_type: str
    text: str


async def http_get(url: str) -> Page:
    """GET ``url`` (http or https, certificates not checked: a test server's own) with
    ``Connection: close``; raises one of ``FETCH_ERRORS``. Bound it with a timeout."""
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    host, port = parts.hostname or "127.0.0.1", parts.port or (443 if tls else 80)
    context = None
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(host, port, ssl=context)
    try:
        writer.write(f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                     "Connection: close\r\n\r\n".encode("ascii"))
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        fields = status_line.split(" ")
        if len(fields) < 2 or not fields[1].isdigit():
            raise ValueError(f"GET {url}: not an HTTP response")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await _chunked(reader)
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        else:
            body = await reader.read()
        return Page(int(fields[1]), headers.get("content-type", ""),
                    body.decode("utf-8", errors="replace"))
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        body += await reader.readexactly(size)
        await reader.readexactly(2)
    return bytes(body)


def read_process(pid: int) -> tuple[float, float] | None:
    """RSS (bytes) and CPU seconds (user + system) of ``pid``; None when it is gone or
    not ours to read."""
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            rss = float(process.memory_info().rss)
            times = process.cpu_times()
    except psutil.Error:
        return None
    return rss, float(times.user + times.system)


class ServerWatcher:
    """One server: its process (``pid``, None when not known or not running) and its
    HTTP routes at ``base`` (``http://host:port``)."""

    def __init__(self, base: str, pid: int | None = None) -> None:
        self.base = base
        self.pid = pid

    def rss(self) -> int | None:
        """Resident memory of the process in bytes (None when there is none to read)."""
        figures = read_process(self.pid) if self.pid is not None else None
        return int(figures[0]) if figures is not None else None

    def process(self) -> tuple[float, float] | None:
        """RSS and CPU seconds of the process (see ``read_process``)."""
        return read_process(self.pid) if self.pid is not None else None

    async def get(self, path: str, timeout: float) -> Page:
        """GET ``path`` on the server; raises one of ``FETCH_ERRORS``."""
        async with asyncio.timeout(timeout):
            return await http_get(self.base + path)

    async def scrape(self, timeout: float) -> dict[str, float] | None:
        """The ``/metrics`` figures (``parse_metrics``), or None when the page could not
        be read (refused, silent past ``timeout``, not 200, not Prometheus text)."""
        try:
            page = await self.get("/metrics", timeout)
            if page.status != 200:
                return None
            return parse_metrics(page.text)
        except FETCH_ERRORS:
            return None

    def __repr__(self) -> str:
        return f"ServerWatcher({self.base!r}, pid={self.pid})"


__all__ = ["FETCH_ERRORS", "FIGURES", "Page", "ServerWatcher", "http_get", "parse_metrics",
           "read_process"]
