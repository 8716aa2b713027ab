"""The half of the cross-replica `Events` adapters (postgres/events.py,
redis/events.py) that does not depend on the carrier: waiters kept in process by a
`LocalEvents`, a listener and a sender task started by `open` and stopped by
`close`, and the outage logged once while the subscription is down.

Each engine subclasses it with only how it subscribes (`_listen`), sends queued
topics (`_send`) and publishes a notify; so a lifecycle fix is made once.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import ClassVar, Unpack

import structlog

from strata_server.storage.events_relay import Outbox
from strata_server.storage.memory.events import LocalEvents, Pacing
from strata_server.storage.ports import Listener, Recheck

log = structlog.get_logger("strata.events")


class RelayedEvents(ABC):
    """Local waiters plus a listener and a sender task; an engine's adapter adds the
    carrier."""

    backend: ClassVar[str]
    """The engine's name in the outage log lines."""

    def __init__(self, **pacing: Unpack[Pacing]) -> None:
        # Degraded until the first subscription is in place.
        self._local = LocalEvents(complete=False, **pacing)
        self._outbox = Outbox()
        self._tasks: list[asyncio.Task[None]] = []
        self._settled = asyncio.Event()
        self._down = False
        self._closed = False

    async def _start(self, ready_within: float) -> None:
        """Start both tasks; return once the first subscription is in place or has
        failed, or after `ready_within` seconds."""
        self._tasks = [
            asyncio.create_task(self._listen(), name="strata-events-listen"),
            asyncio.create_task(self._send(), name="strata-events-send"),
        ]
        try:
            async with asyncio.timeout(ready_within):
                await self._settled.wait()
        except TimeoutError:
            pass  # still connecting: the fallback poll covers the wait

    @abstractmethod
    async def _listen(self) -> None:
        """Hold the subscription and wake local waiters for every other replica's
        topic; call `_subscribed` or `_unsubscribed` as it comes and goes."""

    @abstractmethod
    async def _send(self) -> None:
        """Send the outbox's topics to the other replicas, for ever."""

    def listen(self, *topics: str, recheck: Recheck | None = None) -> Listener:
        """Start listening on `topics` now, for notifies from any replica; `recheck`
        is shared by the topic's listeners and runs at the degraded interval while
        this replica's subscription is down."""
        return self._local.listen(*topics, recheck=recheck)

    async def wait(self, topic: str, within: float) -> bool:
        """Wait up to `within` seconds for a notify on `topic`, from any replica."""
        return await self._local.wait(topic, within)

    async def close(self) -> None:
        """Stop both tasks and close their connections."""
        self._closed = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._local.close()

    def _subscribed(self) -> None:
        """The subscription is in place: wakeups from every replica arrive."""
        if self._down:
            self._down = False
            log.info("events connection restored", backend=self.backend)
        self._local.set_degraded(False)
        self._settled.set()

    def _unsubscribed(self, error: Exception) -> None:
        """The subscription failed: wakeups may be missed, so topics are re-checked
        at the degraded interval, and everyone is woken once when it is back."""
        self._lost(error)
        self._local.set_degraded(True)
        self._settled.set()

    def _lost(self, error: Exception) -> None:
        if not self._down:
            self._down = True
            log.warning(
                "events connection lost: long polls fall back to polling until it returns",
                backend=self.backend,
                error=" ".join(str(error).split()) or type(error).__name__,
            )
