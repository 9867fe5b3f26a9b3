"""benchmarks/soak.py's pieces: its raw frames and the hostile answers it counts."""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.serverproc import ServerProcess

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def soak() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCHMARKS))  # the script imports its sibling _servers
    try:
        yield importlib.import_module("soak")
    finally:
        sys.path.remove(str(BENCHMARKS))


class _Stop:
    def is_set(self) -> bool:
        return False


def test_close_code_reads_the_servers_close_frame(soak: ModuleType) -> None:
    """close_code finds a close frame after other frames, and says when there is none."""
    text = b"\x81\x02{}"
    assert soak.close_code(text + b"\x88\x02\x03\xf0") == "1008"
    assert soak.close_code(b"\x81\x7e\x00\x80" + b"x" * 128 + b"\x88\x02\x03\xf1") == "1009"
    assert soak.close_code(b"\x88\x00") == "1005"
    assert soak.close_code(text) == "no_close"


def test_frame_lengths_and_mask(soak: ModuleType) -> None:
    """frame() writes the 7-bit, 16-bit and 64-bit length forms, masked unless told not to."""
    assert soak.frame(0x1, b"hi", mask=False) == b"\x81\x02hi"
    assert soak.frame(0x2, b"x" * 200)[:4] == b"\x82\xfe\x00\xc8"
    assert soak.frame(0x2, b"", length=1 << 20, mask=False) == b"\x82\x7f" + (1 << 20).to_bytes(8)
    masked = soak.frame(0x1, b"abcd")
    key = masked[2:6]
    assert bytes(b ^ key[i] for i, b in enumerate(masked[6:])) == b"abcd"


async def test_every_malformed_input_is_closed_with_a_protocol_code(soak: ModuleType) -> None:
    """Each malformed frame the soak sends gets a close frame of 1002, 1007, 1008 or 1009."""
    server = ServerProcess()
    try:
        hostile: Any = soak.Hostile(server.port, server.port, "127.0.0.1:1", _Stop(), None)

        async def answer(bad: bytes) -> tuple[bytes, str]:
            reader, writer, head = await soak.raw_ws(server.port, "/ws/malformed", "127.0.0.4")
            assert head.startswith(b"HTTP/1.1 101")
            writer.write(bad)
            code = soak.close_code(await soak.drain_to_eof(reader, 5))
            soak.close_quietly(writer)
            return bad[:40], code

        answers = await asyncio.gather(*(answer(bad) for bad in soak.Hostile.MALFORMED))
        assert all(code in {"1002", "1007", "1008", "1009"} for _, code in answers), answers
        await hostile.duplicate_headers("127.0.0.5")
        await hostile.pipelined("127.0.0.6")
        assert set(hostile.counts) <= {"duplicate_headers:400", "pipelined:200"}
        assert sum(hostile.counts.values()) == 2
    finally:
        server.close()
        await asyncio.sleep(0)
