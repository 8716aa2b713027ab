"""In-process wakeups: the events adapter of the embedded shape (one process), and
the waiter registry the cross-replica adapters deliver into.

A listener on a topic is woken by a notify on that topic in this process. Notifies
carry no data: a woken consumer always re-reads the database, so a lost or
duplicate wakeup costs at most one extra query, never a lost job.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import TracebackType


class Listener:
    """Wakeups on a fixed set of topics, registered from creation until `close`:
    a notify that lands between a consumer's database check and its `wait` is
    kept, not lost. Make one with `LocalEvents.listen` (or any Events adapter's)."""

    def __init__(self, registry: LocalEvents, topics: tuple[str, ...]) -> None:
        self._registry = registry
        self._topics = topics
        self._fired: set[str] = set()
        self._event = asyncio.Event()
        for topic in topics:
            registry._listeners[topic].add(self)

    def _fire(self, topic: str) -> None:
        self._fired.add(topic)
        self._event.set()

    async def wait(self, within: float) -> set[str]:
        """Wait up to `within` seconds for a notify on any topic; returns the topics
        notified since the last wait (empty on timeout), and re-arms."""
        if not self._fired:
            try:
                async with asyncio.timeout(within):
                    await self._event.wait()
            except TimeoutError:
                pass
        fired, self._fired = self._fired, set()
        self._event.clear()
        return fired

    def close(self) -> None:
        """Stop listening."""
        for topic in self._topics:
            listeners = self._registry._listeners.get(topic)
            if listeners is not None:
                listeners.discard(self)
                if not listeners:
                    del self._registry._listeners[topic]

    def __enter__(self) -> Listener:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class LocalEvents:
    """Topic-keyed asyncio wakeups; `notify` is cheap when nobody listens."""

    def __init__(self) -> None:
        self._listeners: defaultdict[str, set[Listener]] = defaultdict(set)

    def notify(self, topic: str, *, announced: bool = False) -> None:
        """Wake every current listener on `topic` (there are no other replicas)."""
        for listener in self._listeners.get(topic, ()):
            listener._fire(topic)

    def commit_notice(self, topic: str) -> None:
        """None: nothing to announce beyond this process."""
        return None

    def listen(self, *topics: str) -> Listener:
        """Start listening on `topics` now (use as a context manager)."""
        return Listener(self, topics)

    async def wait(self, topic: str, within: float) -> bool:
        """Wait up to `within` seconds for a notify on `topic`; True if one came."""
        with self.listen(topic) as listener:
            return bool(await listener.wait(within))

    async def close(self) -> None:
        """Nothing to release in process."""
