"""Idle streams: a client stream that goes quiet is given up on, and a server stream
that has nothing to send costs as little as it can.

An upload or import holds staging (a temporary file, a multipart upload) from its
first chunk to its end; a client that stops sending without closing the stream
would hold it forever. Each message must come within an idle time, or the call
fails with DEADLINE_EXCEEDED (reason IDLE_TIMEOUT), and the caller's `finally`
removes the staging. A slow but steady client is never cut off: the clock restarts
with every message.

A following stream that has nothing to send sends a heartbeat now and then
(`heartbeat_at`), and the topic it waits on is re-checked in the database by one
probe shared by all its listeners (storage/event_rechecks.py), which says with its
answer whether time alone may change it (`Probed`).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping
from typing import Generic, TypeVar

from strata_server.core.errors import DeadlineExceeded
from strata_server.core.values import frozen

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

HEARTBEAT_TICKS = 16
"""Shared ticks per heartbeat interval (see `heartbeat_at`)."""
MAX_TICK_SECONDS = 1.0
"""Longest time between two shared heartbeat ticks."""


async def idle_limited(items: AsyncIterator[T], seconds: float, setting: str) -> AsyncIterator[T]:
    """`items`, failing with DeadlineExceeded when the next takes longer than `seconds`
    to come (`setting` names the knob in the message)."""
    while True:
        try:
            async with asyncio.timeout(seconds):
                item = await anext(items)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise DeadlineExceeded(
                f"the client sent nothing for {seconds:g} s, the server's idle limit "
                f"({setting}); what it sent was discarded",
                reason="IDLE_TIMEOUT",
                metadata={"idle_seconds": f"{seconds:g}"},
            ) from None
        yield item


def heartbeat_at(quiet_since: float, every: float) -> float:
    """When an idle stream that last sent something at `quiet_since` (event loop time)
    sends a heartbeat: `every` seconds later, moved on to the next shared tick.

    Ticks fall at the multiples of `every / HEARTBEAT_TICKS` (MAX_TICK_SECONDS at most)
    of the loop's clock, so the heartbeats of many idle streams come due in the same
    pass of the event loop and are written together. A gRPC message costs the server
    mostly per pass (the write through the core, its completion handed back from the
    poller thread to the loop), so heartbeats written together cost a fraction of
    the same heartbeats spread out (bench/RESULTS.md, "idle streams"). A heartbeat
    is at most one tick late: the stream stays silent for `every` at least."""
    tick = min(every / HEARTBEAT_TICKS, MAX_TICK_SECONDS)
    return math.ceil((quiet_since + every) / tick) * tick


@frozen
class Probed:
    """What a topic's re-check found: `state`, compared with the previous answer (a
    change wakes the topic's listeners), and whether time alone may change it
    (`moving`: a queue holding jobs that may come due, changes committed but not yet
    readable). A topic whose probe is moving is probed again at its interval; one
    that is not rests until a write on it (its notify) or the safety interval.

    `ready`: the answer is news by itself, for listeners that may have looked just
    before it became true (a queue with a job leasable now: it may have come due
    between a consumer's empty lease and this probe, which no write announces). A
    first answer otherwise only sets the baseline; a ready one also wakes them,
    costing at most one needless look."""

    state: object
    moving: bool
    ready: bool = False


class Batched(Generic[K, V]):
    """Lookups of one key each, answered by one call of `fetch` for every key asked
    in the same pass of the event loop: the re-checks of many topics that fall due
    together (storage/memory/events.py starts them in one pass) cost one query, not
    one each. A key `fetch` does not return is answered None; a failed `fetch`
    fails every lookup it answers."""

    def __init__(self, fetch: Callable[[list[K]], Awaitable[Mapping[K, V]]]) -> None:
        self._fetch = fetch
        self._asked: dict[K, list[asyncio.Future[V | None]]] = {}
        self._running: set[asyncio.Task[None]] = set()

    async def get(self, key: K) -> V | None:
        """The value for `key`, fetched with the other keys asked in this pass."""
        loop = asyncio.get_running_loop()
        if not self._asked:
            loop.call_soon(self._send)
        answer: asyncio.Future[V | None] = loop.create_future()
        self._asked.setdefault(key, []).append(answer)
        return await answer

    def _send(self) -> None:
        asked, self._asked = self._asked, {}
        task = asyncio.get_running_loop().create_task(self._answer(asked))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _answer(self, asked: dict[K, list[asyncio.Future[V | None]]]) -> None:
        try:
            found = await self._fetch(list(asked))
        except asyncio.CancelledError:
            for answers in asked.values():
                for answer in answers:
                    answer.cancel()
            raise
        except Exception as error:
            for answers in asked.values():
                for answer in answers:
                    if not answer.done():
                        answer.set_exception(error)
            return
        for key, answers in asked.items():
            for answer in answers:
                if not answer.done():
                    answer.set_result(found.get(key))
