"""The dashboard's files, served by the reference server itself (no CDN, no build step).

``GET /`` is ``static/index.html``; ``GET /static/<name>`` is one file of ``static/``.
Only plain names of files that ship in that folder are served (an allow-list built from
the folder, never a path joined from the request), so ``..``, encoded slashes and
sub-folders are all 404.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Response

STATIC_DIR = Path(__file__).with_name("static")
STATIC_PREFIX = "/static/"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}

# Same-origin everything; WebSockets to any ws:/wss: host because a page may be served
# behind a proxy whose public name the server does not know.
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Security-Policy",
     "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
     "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-cache"),
)

_NAME = re.compile(r"[A-Za-z0-9_-]+\.[a-z]+")


@dataclass(frozen=True, slots=True)
class StaticFile:
    """One servable file: its body and content type."""

    name: str
    body: str
    content_type: str


@functools.cache
def static_files() -> dict[str, StaticFile]:
    """Every servable file of ``static/``, by name, read once."""
    files: dict[str, StaticFile] = {}
    for path in sorted(STATIC_DIR.iterdir()):
        content_type = CONTENT_TYPES.get(path.suffix)
        if content_type and path.is_file() and _NAME.fullmatch(path.name):
            files[path.name] = StaticFile(path.name, path.read_text("utf-8"), content_type)
    return files


def lookup(path: str) -> StaticFile | None:
    """The file for a request path (without its query), or None when it is not one."""
    if path == "/":
        name = "index.html"
    elif path.startswith(STATIC_PREFIX):
        name = path[len(STATIC_PREFIX):]
    else:
        return None
    if not _NAME.fullmatch(name):
        return None
    return static_files().get(name)


def is_static_path(path: str) -> bool:
    """True for paths this module owns: ``/`` and everything under ``/static/``."""
    return path == "/" or path.startswith(STATIC_PREFIX)


def respond(conn: ServerConnection, path: str) -> Response | None:
    """The HTTP response for ``/`` or ``/static/...`` (200 or 404); None for other paths."""
    if not is_static_path(path):
        return None
    found = lookup(path)
    if found is None:
        response = conn.respond(404, f"not found: {path[:200]}\n")
    else:
        response = conn.respond(200, found.body)
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = found.content_type
    for name, value in SECURITY_HEADERS:
        response.headers[name] = value
    return response


__all__ = ["STATIC_DIR", "StaticFile", "lookup", "respond", "static_files"]
