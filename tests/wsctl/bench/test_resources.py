"""The bench's server watch over real HTTP: the reference server's pages and a pid."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from wsctl.bench.resources import ServerWatch

pytestmark = pytest.mark.timeout(30)

REFERENCE = ("# TYPE wsctl_server_connections gauge\nwsctl_server_connections 12.0\n"
             'wsctl_server_refused_total{reason="capacity"} 2.0\n'
             "process_resident_memory_bytes 5.0e+07\n")


@pytest.fixture
def http_server() -> Iterator[tuple[str, dict[str, str]]]:
    """A threaded HTTP/1.0 server (bodies end at close) serving ``pages`` by path."""
    pages: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json" if self.path == "/ws/health"
                             else "text/plain")
            self.end_headers()
            self.wfile.write((body or "").encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.server_address[1]}/ws/x", pages
    finally:
        server.shutdown()
        server.server_close()


def test_a_reference_server_is_read_from_metrics_health_and_its_pid(http_server) -> None:
    """Connections and refusals from /metrics, the health JSON, RSS and CPU from the pid
    (the pid's RSS wins over the page's)."""
    url, pages = http_server
    pages["/metrics"] = REFERENCE
    pages["/ws/health"] = json.dumps({"status": "ok", "connections": 12})
    watch = ServerWatch(url, os.getpid(), timeout=2.0)
    sample = watch.sample()
    assert watch.reference is True
    assert sample.sources == ["metrics", f"pid {os.getpid()}"]
    assert (sample.connections, sample.refused) == (12.0, 2.0)
    assert sample.health == {"status": "ok", "connections": 12}
    assert sample.rss is not None and sample.rss != 5.0e7 and sample.cpu_s is not None


def test_a_server_without_wsctl_metrics_is_not_scraped_again(http_server) -> None:
    """A page without wsctl_server_ figures marks the server as not the reference one:
    no figure is taken from it, and later samples do not ask again."""
    url, pages = http_server
    pages["/metrics"] = "process_resident_memory_bytes 5.0e+07\n"
    watch = ServerWatch(url, timeout=2.0)
    first = watch.sample()
    assert watch.reference is False and first.sources == [] and first.rss is None
    pages["/metrics"] = REFERENCE
    assert watch.sample().connections is None
