"""Hostile bodies against the chaos API: a 400 (or 413) naming the problem, nothing stored."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from wsctl.chaos.server import ChaosServer

UPSTREAM = "127.0.0.1:9"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with ChaosServer(api="127.0.0.1:0") as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            created = await client.post(
                "/proxies", json={"name": "p", "listen": "127.0.0.1:0", "upstream": UPSTREAM})
            assert created.status_code == 201
            yield client


async def state(client: httpx.AsyncClient) -> tuple[object, object]:
    """Everything the API stores: proxies with toxics, and p's schedules."""
    return ((await client.get("/proxies")).json(),
            (await client.get("/proxies/p/schedules")).json())


async def refused(client: httpx.AsyncClient, path: str, body: str | bytes,
                  fragment: str, status: int = 400) -> None:
    """POST ``body`` to ``path``: ``status`` with ``fragment`` in the error; nothing changed."""
    before = await state(client)
    response = await client.post(path, content=body)
    assert response.status_code == status, response.text[:300]
    assert fragment in response.json()["error"], response.json()
    assert await state(client) == before


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(("body", "fragment"), [
    ('{"name":"q","listen":"127.0.0.1:\u00b2","upstream":"127.0.0.1:9"}',
     "listen '127.0.0.1:\u00b2' is not host:port"),
    (DEEP, "nested too deeply"),
    ('{"name":"a/b","upstream":"127.0.0.1:9"}', "name: use 1-200 of"),
    ('{"name":"' + "n" * 201 + '","upstream":"127.0.0.1:9"}', "name: use 1-200 of"),
])
async def test_bad_proxies_are_refused(client, body, fragment):
    """A non-ASCII port, 100k-deep JSON, a name with '/' or over 200 chars: 400, no proxy."""
    await refused(client, "/proxies", body, fragment)


@pytest.mark.parametrize(("body", "fragment"), [
    ('{"type":"latency","attributes":{"latency":' + "1" * 400 + "}}",
     "attributes.latency: must be at most 2147483647"),
    ('{"type":"latency","attributes":{"latency":1e400}}', "attributes.latency"),
    ('{"type":"latency","name":"x/y"}', "name: use 1-200 of"),
    ('{"type":["latency"]}', "invalid toxic type"),
    ('{"type":{"a":1}}', "invalid toxic type"),
    (DEEP, "nested too deeply"),
])
async def test_bad_toxics_are_refused(client, body, fragment):
    """Out-of-range attributes, unsafe names, non-string types, deep JSON: 400, no toxic."""
    await refused(client, "/proxies/p/toxics", body, fragment)


@pytest.mark.parametrize(("body", "fragment"), [
    ('{"toxic":{"type":"latency"},"at":NaN}', "at: cannot read nan"),
    ('{"toxic":{"type":"latency"},"for":1,"every":Infinity}', "every: at most 87600h"),
    ('{"toxic":{"type":"latency"},"at":1e400}', "at: at most 87600h"),
    ('{"toxic":{"type":"latency"},"for":"1us","every":"2us"}', "every: must be at least 10ms"),
    ('{"toxic":{"type":"latency","name":"a/b"},"for":1}', "name: use 1-200 of"),
])
async def test_bad_schedules_are_refused_and_not_stored(client, body, fragment):
    """Non-finite, overflowing or sub-10ms timings are 400 and leave no schedule behind."""
    await refused(client, "/proxies/p/schedules", body, fragment)


async def test_body_over_one_mib_is_413(client):
    """A body over 1 MiB is refused with 413 before it is parsed; nothing is created."""
    body = '{"name":"q","upstream":"127.0.0.1:9","pad":"' + "x" * (1 << 20) + '"}'
    await refused(client, "/proxies", body, "larger than 1 MiB", 413)


async def test_names_of_the_safe_charset_work_end_to_end(client):
    """A 200-character name of the allowed characters can be created, read and deleted."""
    name = "a-Z_0.9~" * 25
    assert (await client.post("/proxies", json={"name": name, "upstream": UPSTREAM})
            ).status_code == 201
    assert (await client.get(f"/proxies/{name}")).status_code == 200
    assert (await client.delete(f"/proxies/{name}")).status_code == 204
