"""The proxy core's typed calls and the WsctlErrors it refuses with (no HTTP in sight)."""

from __future__ import annotations

import pytest

from wsctl.chaos.faults.latency import Latency
from wsctl.chaos.model import ProxySpec
from wsctl.chaos.proxy import Chaos, Toxic
from wsctl.clock import FakeClock
from wsctl.errors import Conflict, InvalidInput, NotFound


async def test_names_taken_are_conflicts_and_missing_ones_not_found() -> None:
    """A second proxy or toxic of one name is Conflict; an unknown name is NotFound."""
    chaos = Chaos(clock=FakeClock())
    proxy = await chaos.create(name="p", upstream="127.0.0.1:9", enabled=False)
    with pytest.raises(Conflict, match="proxy already exists"):
        await chaos.create(name="p", upstream="127.0.0.1:9", enabled=False)
    with pytest.raises(NotFound, match="proxy not found"):
        chaos.get("q")
    proxy.add_toxic(Toxic("latency"))
    with pytest.raises(Conflict, match="toxic already exists"):
        proxy.add_toxic(Toxic("latency"))
    with pytest.raises(NotFound, match="toxic not found"):
        await proxy.remove_toxic("nope")
    with pytest.raises(NotFound, match="schedule not found"):
        proxy.schedule("1")
    await chaos.close()


async def test_bad_arguments_are_invalid_input_and_change_nothing() -> None:
    """A malformed address or a non-bool enabled is InvalidInput; the proxy is as it was."""
    chaos = Chaos(clock=FakeClock())
    await chaos.create(name="p", upstream="127.0.0.1:9", enabled=False)
    with pytest.raises(InvalidInput, match="upstream 'nowhere' is not host:port"):
        await chaos.create(name="q", upstream="nowhere")
    with pytest.raises(InvalidInput, match="listen 'x' is not host:port"):
        await chaos.update("p", listen="x")
    assert chaos.get("p").listen == "127.0.0.1:0" and list(chaos.proxies) == ["p"]
    with pytest.raises(InvalidInput, match="duplicate proxy name 'a'"):
        await chaos.populate([ProxySpec("a", "127.0.0.1:9"), ProxySpec("a", "127.0.0.1:8")])
    assert list(chaos.proxies) == ["p"]
    await chaos.close()


async def test_update_toxic_replaces_only_what_is_given() -> None:
    """update_toxic with a config keeps the toxicity, and with a toxicity keeps the config."""
    chaos = Chaos(clock=FakeClock())
    proxy = await chaos.create(name="p", upstream="127.0.0.1:9", enabled=False)
    proxy.add_toxic(Toxic("latency", Latency(latency=5), toxicity=0.5))
    first = await proxy.update_toxic("latency_downstream", config=Latency(latency=7))
    assert (first.config, first.toxicity) == (Latency(latency=7), 0.5)
    second = await proxy.update_toxic("latency_downstream", toxicity=0.25)
    assert (second.config, second.toxicity) == (Latency(latency=7), 0.25)
    assert proxy.toxics["latency_downstream"] is second
    with pytest.raises(InvalidInput, match="toxicity"):
        await proxy.update_toxic("latency_downstream", toxicity=2.0)
    await chaos.close()
