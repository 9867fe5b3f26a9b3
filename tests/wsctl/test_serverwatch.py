"""The one server watcher: the Prometheus parser, the small HTTP client, the process."""

from __future__ import annotations

import asyncio
import os

import pytest

from wsctl.serverwatch import ServerWatcher, http_get, parse_metrics, read_process

pytestmark = pytest.mark.timeout(30)

PAGE = (  # as prometheus_client's generate_latest writes it
    "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
    "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 4.0e+07\n"
    "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 3.5\n"
    "# TYPE wsctl_server_connections gauge\nwsctl_server_connections 7.0\n"
    "# TYPE wsctl_server_connections_opened_total counter\n"
    "wsctl_server_connections_opened_total 40.0\n"
    "# TYPE wsctl_server_refused_total counter\n"
    'wsctl_server_refused_total{reason="capacity"} 3.0\n'
    'wsctl_server_refused_total{reason="per_client"} 2.0\n'
    'wsctl_server_refused_created{reason="capacity"} 1.7e+09\n'
    "# TYPE wsctl_server_dead_detected_total counter\n"
    "wsctl_server_dead_detected_total 4.0\n"
)


def test_parse_metrics_sums_labelled_counters_and_skips_look_alikes() -> None:
    """Refusals are summed over their reasons; connections is the gauge, not _opened;
    _created samples are not counts; a figure not on the page is not made up."""
    assert parse_metrics(PAGE) == {"rss": 4.0e7, "cpu_s": 3.5, "connections": 7.0,
                                   "refused": 5.0, "dead_detected": 4.0}
    assert parse_metrics("wsctl_server_connections 2\n") == {"connections": 2.0}


async def serve(responses: dict[str, bytes]) -> tuple[asyncio.Server, str]:
    """A raw HTTP server on 127.0.0.1 answering each path with its bytes verbatim."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        path = request.split(b" ")[1].decode()
        writer.write(responses.get(path, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def test_http_get_reads_sized_chunked_and_unsized_bodies() -> None:
    """Content-Length, chunked transfer and read-to-close bodies all arrive whole; the
    status and content type come back as sent."""
    server, base = await serve({
        "/sized": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"
                  b"hello",
        "/chunked": b"HTTP/1.1 503 Busy\r\nContent-Type: application/json\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=1\r\n:1}\r\n0\r\n\r\n",
        "/unsized": b"HTTP/1.0 200 OK\r\n\r\nuntil close",
    })
    async with server:
        sized = await http_get(base + "/sized")
        chunked = await http_get(base + "/chunked")
        unsized = await http_get(base + "/unsized")
    assert (sized.status, sized.content_type, sized.text) == (200, "text/plain", "hello")
    assert (chunked.status, chunked.content_type, chunked.text) == (
        503, "application/json", '{"a":1}')
    assert (unsized.status, unsized.text) == (200, "until close")


async def test_scrape_gives_figures_or_none_never_an_exception() -> None:
    """A 200 Prometheus page gives its figures; a 404, a silent server and a refused
    port give None."""
    body = PAGE.encode()
    server, base = await serve({"/metrics": b"HTTP/1.1 200 OK\r\nContent-Length: "
                                + str(len(body)).encode() + b"\r\n\r\n" + body})
    async with server:
        assert (await ServerWatcher(base).scrape(2.0) or {}).get("refused") == 5.0
        assert await ServerWatcher(base + "/nothing-here").scrape(2.0) is None

    done = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await done.wait()
        writer.close()

    quiet = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = quiet.sockets[0].getsockname()[1]
    async with quiet:
        assert await ServerWatcher(f"http://127.0.0.1:{port}").scrape(0.2) is None
        done.set()
        await asyncio.sleep(0.05)
    assert await ServerWatcher(f"http://127.0.0.1:{port}").scrape(2.0) is None


def test_process_figures_of_a_live_process_and_of_none() -> None:
    """This process has RSS and CPU time; a pid that does not exist has no figures."""
    figures = read_process(os.getpid())
    assert figures is not None and figures[0] > 1e6 and figures[1] > 0
    assert ServerWatcher("http://127.0.0.1:1", os.getpid()).rss() == pytest.approx(
        figures[0], rel=0.5)
    assert read_process(2**22 + 12345) is None
    assert ServerWatcher("http://127.0.0.1:1").rss() is None
