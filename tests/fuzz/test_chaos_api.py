"""Arbitrary JSON bodies on every chaos API route that takes one: the answer is a 2xx, or
a 4xx with a JSON ``{error, status}`` body and nothing changed; never a 5xx, and
``GET /proxies`` stays valid JSON."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.support import budget
from wsctl.chaos.server import ChaosServer

UPSTREAM = "127.0.0.1:9"  # discard: nothing connects through the proxies here


@pytest.fixture(scope="module")
def api() -> Iterator[httpx.Client]:
    """The chaos server (in-process, its own loop in a thread) and a client for its API."""
    loop = asyncio.new_event_loop()
    started: list[str] = []
    stop = asyncio.Event()
    ready = threading.Event()

    async def main() -> None:
        async with ChaosServer(api="127.0.0.1:0") as server:
            started.append(server.url)
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10), "chaos server did not start"
    nodelay = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    with httpx.Client(base_url=started[0], timeout=10, transport=nodelay) as client:
        yield client
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()


_KNOWN: list[Any] = []  # the baseline's state, while no example has changed it


def baseline(client: httpx.Client) -> Any:
    """Only proxy ``p`` (toxic ``t``, no schedule): what every example starts from; returns
    its state. Rebuilt only after an example changed something (each request costs ~40 ms)."""
    if _KNOWN:
        return _KNOWN[0]
    for name in client.get("/proxies").json():
        assert client.delete(f"/proxies/{name}").status_code == 204
    assert client.post("/proxies", json={"name": "p", "listen": "127.0.0.1:0",
                                         "upstream": UPSTREAM}).status_code == 201
    assert client.post("/proxies/p/toxics", json={"name": "t", "type": "latency"}
                       ).status_code == 200
    _KNOWN.append(state(client))
    return _KNOWN[0]


def state(client: httpx.Client) -> Any:
    """Everything the API stores that a body could change."""
    proxies = client.get("/proxies")
    assert proxies.status_code == 200
    return proxies.json(), {name: client.get(f"/proxies/{name}/schedules").json()
                            for name in proxies.json()}


ROUTES = ["/proxies", "/proxies/p", "/proxies/p/toxics", "/proxies/p/toxics/t",
          "/proxies/p/schedules", "/populate", "/reset", "/proxies/p/connections/1/toxics",
          "/proxies/nope/toxics"]

numbers = (st.integers() | st.floats() | st.sampled_from([0, -1, 2**31, 2**63, 10**400])
           | st.sampled_from(["1e400", "NaN", "1us", "5s", "-1s", "10ms"]))
leaf = st.none() | st.booleans() | numbers | st.text(max_size=30) | st.sampled_from(
    ["latency", "bandwidth", "timeout", "slicer", "drop_frames", "close", "upstream",
     "downstream", "127.0.0.1:0", UPSTREAM, "p", "t", "a/b", "n" * 201, "127.0.0.1:\u00b2"])
values = st.recursive(leaf, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=16)
keys = st.sampled_from(["name", "listen", "upstream", "enabled", "type", "stream", "toxicity",
                        "attributes", "toxic", "at", "for", "every", "connection", "latency",
                        "jitter", "rate", "timeout", "code"])
shaped = st.recursive(st.dictionaries(keys, leaf, max_size=6),
                      lambda inner: st.dictionaries(keys, inner | leaf, max_size=6)
                      | st.lists(inner, max_size=3), max_leaves=20)


def encode(body: Any) -> bytes:
    return json.dumps(body, allow_nan=True, default=str).encode()


@example("/proxies/p/schedules", {"toxic": {"type": "latency"}, "at": float("nan")})
@example("/proxies/p/toxics", {"type": ["latency"]})
@example("/populate", [{"name": "p", "upstream": UPSTREAM, "listen": "127.0.0.1:0"},
                       {"name": "q", "upstream": "x"}])
@given(st.sampled_from(ROUTES), shaped | values)
@budget(100)
def test_bodies_get_2xx_or_a_4xx_that_changes_nothing(api, route, body):
    """2xx, or 4xx with {error, status} and the stored state unchanged; never 5xx."""
    before = baseline(api)
    method = "PATCH" if route in ("/proxies/p", "/proxies/p/toxics/t") and isinstance(
        body, dict) and body.get("enabled") is None else "POST"
    response = api.request(method, route, content=encode(body))
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        error = response.json()
        assert error["status"] == response.status_code and isinstance(error["error"], str)
        assert state(api) == before, response.text[:300]
    else:
        _KNOWN.clear()
        state(api)  # still listable as JSON


@given(st.sampled_from(ROUTES), st.binary(max_size=200) | st.integers(1, 3000).map(
    lambda n: b"{" * n))
@budget(30)
def test_bodies_that_are_not_json_are_a_400(api, route, raw):
    """Bytes that are not a JSON document: 400 with {error, status} (or the route's own 2xx
    where it reads no body), nothing changed."""
    before = baseline(api)
    response = api.post(route, content=raw)
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert response.json()["status"] == response.status_code
        assert state(api) == before
    else:
        _KNOWN.clear()
