"""In-process wakeups: the events adapter of the embedded shape (one process).

A waiter on a topic is woken by a notify on that topic in this process. Notifies
carry no data: a woken consumer always re-reads the database, so a lost or
duplicate wakeup costs at most one extra query, never a lost job.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict


class LocalEvents:
    """Topic-keyed asyncio wakeups; `notify` is cheap when nobody waits."""

    def __init__(self) -> None:
        self._waiters: defaultdict[str, set[asyncio.Event]] = defaultdict(set)

    def notify(self, topic: str) -> None:
        """Wake every current waiter on `topic`."""
        for event in self._waiters.pop(topic, ()):
            event.set()

    async def wait(self, topic: str, within: float) -> bool:
        """Wait up to `within` seconds for a notify on `topic`; True if one came."""
        event = asyncio.Event()
        waiters = self._waiters[topic]
        waiters.add(event)
        try:
            async with asyncio.timeout(within):
                await event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            waiters.discard(event)
            if not waiters and self._waiters.get(topic) is waiters:
                del self._waiters[topic]

    async def close(self) -> None:
        """Nothing to release in process."""
