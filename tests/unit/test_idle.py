"""core.idle: a client stream that goes quiet fails with DEADLINE_EXCEEDED."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from strata_server.core.errors import DeadlineExceeded
from strata_server.core.idle import idle_limited


async def messages(*gaps: float) -> AsyncIterator[int]:
    for n, gap in enumerate(gaps):
        await asyncio.sleep(gap)
        yield n


async def test_a_steady_stream_passes_whole() -> None:
    got = [n async for n in idle_limited(messages(0, 0.01, 0.01, 0.01), 5, "X")]
    assert got == [0, 1, 2, 3]


async def test_a_quiet_stream_fails_after_what_it_sent() -> None:
    got = []
    with pytest.raises(DeadlineExceeded) as raised:
        async for n in idle_limited(messages(0, 0, 30), 0.05, "STRATA_X_SECONDS"):
            got.append(n)
    assert got == [0, 1]
    assert raised.value.reason == "IDLE_TIMEOUT"
    assert "STRATA_X_SECONDS" in raised.value.message
    assert raised.value.metadata == {"idle_seconds": "0.05"}
