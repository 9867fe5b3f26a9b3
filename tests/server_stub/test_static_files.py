"""GET / and /static/<name>: the dashboard's files, right content types, nothing else."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from server_stub import static_files
from server_stub.static_files import STATIC_DIR, lookup


async def raw_get(port: int, path: str) -> tuple[int, bytes]:
    """Send ``GET path`` exactly as written (no client-side normalisation of ``..``)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    status = int(response.split(b" ", 2)[1])
    return status, response.partition(b"\r\n\r\n")[2]


def test_the_shipped_files_are_exactly_the_dashboards_four():
    """static_files() serves index.html, wsclient.js, dashboard.js and dashboard.css."""
    assert sorted(static_files.static_files()) == [
        "dashboard.css", "dashboard.js", "index.html", "wsclient.js"]


@pytest.mark.parametrize("path", [
    "/static/../main.py", "/static/..%2fmain.py", "/static/%2e%2e/main.py",
    "/static/..", "/static/", "/static//etc/passwd", "/static/sub/index.html",
    "/static/wsclient.js/", "/static/.wsclient.js", "/static/WSCLIENT.JS",
    "/static/main.py", "/index.html", "/favicon.ico",
])
def test_lookup_refuses_anything_but_a_plain_shipped_name(path):
    """Traversal, encoded slashes, sub-paths and unknown names find no file."""
    assert lookup(path) is None


def test_lookup_maps_root_to_index():
    """``/`` is index.html and ``/static/<name>`` is that file, with its content type."""
    root = lookup("/")
    assert root is not None and root.name == "index.html"
    assert root.content_type == "text/html; charset=utf-8"
    script = lookup("/static/wsclient.js")
    assert script is not None
    assert script.body == (STATIC_DIR / "wsclient.js").read_text("utf-8")
    assert script.content_type == "text/javascript; charset=utf-8"


async def test_root_serves_the_dashboard_with_safe_headers(make_server):
    """GET / (with a query) is the dashboard page, loading only same-origin files."""
    server = await make_server()
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{server.port}/?stream=alert-1")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'self'" in response.headers["content-security-policy"]
    page = response.text
    for name in ("/static/wsclient.js", "/static/dashboard.js", "/static/dashboard.css"):
        assert name in page
    assert "http://" not in page and "https://" not in page  # no CDN


@pytest.mark.parametrize(("name", "content_type"), [
    ("wsclient.js", "text/javascript; charset=utf-8"),
    ("dashboard.js", "text/javascript; charset=utf-8"),
    ("dashboard.css", "text/css; charset=utf-8"),
])
async def test_static_files_have_their_content_type_and_exact_bytes(make_server, name,
                                                                    content_type):
    """/static/<name> is the file's exact bytes with the right Content-Type and length."""
    server = await make_server()
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{server.port}/static/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.content == (STATIC_DIR / name).read_bytes()
    assert int(response.headers["content-length"]) == len(response.content)


@pytest.mark.parametrize("path", [
    "/static/../main.py", "/static/..%2f..%2fpyproject.toml", "/static/nope.js",
    "/static/", "/static/../../../../etc/passwd",
])
async def test_traversal_and_unknown_files_are_404_over_http(make_server, path):
    """Over the wire, paths outside the shipped files are 404 and leak no file content."""
    server = await make_server()
    status, body = await raw_get(server.port, path)
    assert status == 404
    assert body.startswith(b"not found")


async def test_other_routes_are_unchanged(make_server):
    """/metrics, /ws/health and the 404 for unknown paths still answer as before."""
    server = await make_server()
    base = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{base}/metrics")).status_code == 200
        assert (await client.get(f"{base}/ws/health")).json()["status"] == "ok"
        unknown = await client.get(f"{base}/nope")
    assert unknown.status_code == 404
    assert "streams are at /ws/{stream}" in unknown.text


async def test_websocket_upgrade_on_root_is_refused(make_server):
    """A WebSocket handshake on / is 404, not answered with the HTML page."""
    server = await make_server()
    with pytest.raises(InvalidStatus) as refused:
        await connect(f"ws://127.0.0.1:{server.port}/")
    assert refused.value.response.status_code == 404
