"""core.idle: a client stream that goes quiet fails with DEADLINE_EXCEEDED."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from strata_server.core.errors import DeadlineExceeded
from strata_server.core.idle import (
    HEARTBEAT_TICKS,
    MAX_TICK_SECONDS,
    heartbeat_at,
    idle_limited,
)


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


def test_heartbeats_fall_due_on_shared_ticks_at_most_one_tick_late() -> None:
    every = 15.0
    tick = every / HEARTBEAT_TICKS
    quiet = [1000.0 + i * 0.01 for i in range(90)]  # streams gone quiet within 0.9 s
    due = {heartbeat_at(q, every) for q in quiet}
    assert len(due) <= 2  # one or two ticks for all of them, not 90 timers
    for q in quiet:
        at = heartbeat_at(q, every)
        assert q + every <= at < q + every + tick
        assert at / tick == pytest.approx(round(at / tick))
    # A long interval's ticks are at most MAX_TICK_SECONDS apart.
    assert heartbeat_at(0.5, 3600) - (0.5 + 3600) < MAX_TICK_SECONDS
    # A short interval keeps its heartbeats close to it.
    assert 0.3 <= heartbeat_at(0.0, 0.3) < 0.3 + 0.3 / HEARTBEAT_TICKS
