"""What the cross-replica events adapters (postgres.py, redis.py) share: limits, the
outbox of topics to send and the reconnect backoff."""

from __future__ import annotations

import asyncio
import random

POSTGRES_CHANNEL = "strata_events"
"""The LISTEN/NOTIFY channel of events.postgres, which the PostgreSQL store also
NOTIFYs on when a write carries its commit notice. Here, in a module with no imports
of its own, so that the store needs nothing else of this package, and events.postgres
nothing of the store: the dependency goes one way."""
MAX_PENDING = 1024
"""Most distinct topics queued for sending; beyond that a wakeup stays local."""
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0
READY_WITHIN = 5.0
"""How long `open` waits for the first subscription (or its failure) before returning."""


class Backoff:
    """Exponential reconnect delays with jitter, from BACKOFF_FIRST up to BACKOFF_MAX."""

    def __init__(self) -> None:
        self._delay = BACKOFF_FIRST

    def reset(self) -> None:
        """Start again from the shortest delay (after a successful connect)."""
        self._delay = BACKOFF_FIRST

    def next(self) -> float:
        """Seconds to sleep before the next connect attempt."""
        delay, self._delay = self._delay, min(self._delay * 2, BACKOFF_MAX)
        return delay * random.uniform(0.5, 1.0)


class Outbox:
    """Topics waiting to be sent to the other replicas, each queued once at most:
    a topic queued again before it is sent goes out once."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()

    def put(self, topic: str) -> None:
        """Queue `topic`, unless it is queued or MAX_PENDING topics are (the sender
        is far behind, as in an outage: the waiters' fallback poll covers it)."""
        if topic in self._queued or len(self._queued) >= MAX_PENDING:
            return
        self._queued.add(topic)
        self._queue.put_nowait(topic)

    async def batch(self) -> list[str]:
        """Every queued topic, waiting for one when there is none. They are unmarked
        before they are sent: a notify from now on must be sent again."""
        topics = [await self._queue.get()]
        while not self._queue.empty():
            topics.append(self._queue.get_nowait())
        self._queued.difference_update(topics)
        return topics
