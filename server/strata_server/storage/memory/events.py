"""In-process wakeups: the events adapter of the embedded shape (one process), and
the waiter registry the cross-replica adapters deliver into.

A listener on a topic is woken by a notify on that topic in this process. Notifies
carry no data: a woken consumer always re-reads the database, so a lost or
duplicate wakeup costs at most one extra query, never a lost job.

An idle stream costs nothing between wakeups: it waits on its listener without a
timeout of its own. What covers the wakeups that never come (a write on a replica
while the events channel between replicas was down, a scheduled job coming due, a
SQLite file other processes write too) is a re-check shared per topic
(storage/event_rechecks.py): the first listener that brings a `Recheck` starts it,
its probe (one cheap query) wakes the topic's listeners when its answer changed,
and the last listener to leave stops it. However many streams follow one
transcript, watch one collection or wait on one queue, their topic costs one probe
when it is due, and a topic is due only when something may have changed unseen.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from types import TracebackType
from typing import TypedDict

from strata_server.storage.event_rechecks import Rechecks
from strata_server.storage.ports import Recheck

RECHECK_SECONDS = 300.0
"""Default interval of a topic's re-check while wakeups flow (a safety net only)."""
DEGRADED_SECONDS = 1.0
"""Default interval of a topic's re-check while wakeups may be missed."""


class Pacing(TypedDict, total=False):
    """How often topics are re-checked (`LocalEvents`' keywords, defaults there): the
    cross-replica adapters take them as they are and hand them to their LocalEvents,
    so the defaults are stated once."""

    recheck_seconds: float
    degraded_seconds: float


class _Timer:
    """One loop timer for every listener whose wait ends in the same millisecond:
    the heartbeats of many idle streams, which fall due on shared ticks
    (core.idle.heartbeat_at), share one, and its end wakes them in one pass."""

    __slots__ = ("at", "handle", "listeners")

    def __init__(self, at: int, handle: asyncio.TimerHandle) -> None:
        self.at = at
        self.handle = handle
        self.listeners: set[Listener] = set()


class Listener:
    """Wakeups on a fixed set of topics, registered from creation until `close`:
    a notify that lands between a consumer's database check and its `wait` is
    kept, not lost. Make one with `LocalEvents.listen` (or any Events adapter's)."""

    def __init__(
        self, registry: LocalEvents, topics: tuple[str, ...], recheck: Recheck | None
    ) -> None:
        self._registry = registry
        self._topics = topics
        self._fired: set[str] = set()
        self._event = asyncio.Event()
        self._recheck = recheck
        for topic in topics:
            registry._listeners[topic].add(self)
        if recheck is not None:
            registry._rechecks.use(recheck)

    def _fire(self, topic: str) -> None:
        self._fired.add(topic)
        self._event.set()

    async def wait(self, within: float | None) -> set[str]:
        """Wait up to `within` seconds (None: until woken) for a notify on any topic;
        returns the topics notified since the last wait (empty on timeout), and
        re-arms."""
        if not self._fired:
            if within is None:
                await self._event.wait()
            elif within <= 0:
                await asyncio.sleep(0)
            else:
                timer = self._registry._timer(within)
                timer.listeners.add(self)
                try:
                    await self._event.wait()
                finally:
                    self._registry._leave(timer, self)
        fired, self._fired = self._fired, set()
        self._event.clear()
        return fired

    def close(self) -> None:
        """Stop listening (and stop the topic's re-check if no one else uses it)."""
        for topic in self._topics:
            listeners = self._registry._listeners.get(topic)
            if listeners is not None:
                listeners.discard(self)
                if not listeners:
                    del self._registry._listeners[topic]
        if self._recheck is not None:
            self._registry._rechecks.drop(self._recheck.topic)
            self._recheck = None

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
    """Topic-keyed asyncio wakeups; `notify` is cheap when nobody listens.

    `degraded` says wakeups may be missed: always for a store that other processes
    write without telling this one (`complete=False`), and while a cross-replica
    adapter's channel is down (it sets it through `set_degraded`)."""

    def __init__(
        self,
        *,
        complete: bool = True,
        recheck_seconds: float = RECHECK_SECONDS,
        degraded_seconds: float = DEGRADED_SECONDS,
    ) -> None:
        self._listeners: defaultdict[str, set[Listener]] = defaultdict(set)
        self._timers: dict[int, _Timer] = {}  # by the millisecond they end
        self._degraded = not complete
        self._rechecks = Rechecks(
            self._wake,
            recheck_seconds=recheck_seconds,
            degraded_seconds=degraded_seconds,
            degraded=self._degraded,
        )

    @property
    def rechecks(self) -> int:
        """Probes run so far (for tests and benchmarks)."""
        return self._rechecks.probes

    @property
    def rechecked_topics(self) -> set[str]:
        """The topics whose re-check runs now (for tests)."""
        return self._rechecks.topics

    @property
    def degraded(self) -> bool:
        """Whether wakeups may be missed now."""
        return self._degraded

    def set_degraded(self, degraded: bool) -> None:
        """Say whether wakeups may be missed from now on. Becoming whole again wakes
        every listener once, since some wakeups may have been missed meanwhile."""
        if degraded == self._degraded:
            return
        self._degraded = degraded
        self._rechecks.set_degraded(degraded)
        if not degraded:
            self.wake_all()

    def wake_all(self) -> None:
        """Wake every current listener, on every topic."""
        for topic in list(self._listeners):
            self.notify(topic)

    def notify(self, topic: str, *, announced: bool = False) -> None:
        """Wake every current listener on `topic` (there are no other replicas), and
        bring its re-check forward when time may matter to it now."""
        self._wake(topic)
        self._rechecks.poke(topic)

    def _wake(self, topic: str) -> None:
        for listener in self._listeners.get(topic, ()):
            listener._fire(topic)

    def commit_notice(self, topic: str) -> None:
        """None: nothing to announce beyond this process."""
        return None

    async def send(self, topic: str) -> None:
        """`notify`: there is no channel beyond this process to wait for."""
        self.notify(topic)

    def listen(self, *topics: str, recheck: Recheck | None = None) -> Listener:
        """Start listening on `topics` now (use as a context manager), with `recheck`
        covering one of them."""
        return Listener(self, topics, recheck)

    async def wait(self, topic: str, within: float) -> bool:
        """Wait up to `within` seconds for a notify on `topic`; True if one came."""
        with self.listen(topic) as listener:
            return bool(await listener.wait(within))

    async def close(self) -> None:
        """Stop the re-checks."""
        await self._rechecks.close()

    def _timer(self, within: float) -> _Timer:
        """The timer that ends a wait of `within` seconds from now (rounded up to the
        millisecond, the event loop's own resolution)."""
        loop = asyncio.get_running_loop()
        at = math.ceil((loop.time() + within) * 1000)
        timer = self._timers.get(at)
        if timer is None:
            timer = self._timers[at] = _Timer(at, loop.call_at(at / 1000, self._ring, at))
        return timer

    def _ring(self, at: int) -> None:
        timer = self._timers.pop(at, None)
        if timer is not None:
            for listener in timer.listeners:
                listener._event.set()

    def _leave(self, timer: _Timer, listener: Listener) -> None:
        timer.listeners.discard(listener)
        if not timer.listeners and self._timers.get(timer.at) is timer:
            del self._timers[timer.at]
            timer.handle.cancel()
