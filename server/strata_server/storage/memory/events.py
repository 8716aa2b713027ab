"""In-process wakeups: the events adapter of the embedded shape (one process), and
the waiter registry the cross-replica adapters deliver into.

A listener on a topic is woken by a notify on that topic in this process. Notifies
carry no data: a woken consumer always re-reads the database, so a lost or
duplicate wakeup costs at most one extra query, never a lost job.

An idle stream costs nothing between wakeups: it waits on its listener without a
timeout of its own. What covers the wakeups that never come (a write on a replica
while the events channel between replicas was down, a scheduled job coming due, a
SQLite file other processes write too) is a re-check shared per topic: the first
listener that brings a `Recheck` starts one task for its topic, which runs the
probe (one cheap query) every so often and wakes the topic's listeners when the
probe's answer changed; the last listener to leave stops it. However many streams
follow one transcript, watch one collection or wait on one queue, their topic costs
one query per interval. The interval is `Recheck.every` when the probe says what
time alone changes (a queue's due jobs), else `degraded_seconds` while wakeups may
be missed (`degraded`) and `recheck_seconds` (0: never) while they flow.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from types import TracebackType

import structlog

from strata_server.storage.ports import Recheck

log = structlog.get_logger("strata.events")

RECHECK_SECONDS = 300.0
"""Default interval of a topic's re-check while wakeups flow (a safety net only)."""
DEGRADED_SECONDS = 1.0
"""Default interval of a topic's re-check while wakeups may be missed."""


_UNSET = object()


class _TopicCheck:
    """The one re-check task of a topic, and how many listeners use it."""

    def __init__(self, registry: LocalEvents, recheck: Recheck) -> None:
        self.users = 0
        self.task = asyncio.get_running_loop().create_task(
            self._run(registry, recheck), name=f"strata-recheck {recheck.topic[:80]}"
        )

    @staticmethod
    async def _run(registry: LocalEvents, recheck: Recheck) -> None:
        # The first answer is taken at once, as the first listener makes its own
        # first read: while wakeups flow, a change after either read wakes it anyway.
        # While they may be missed, that first answer wakes the listeners too, since
        # a change may have landed between the two reads.
        last: object = _UNSET
        first = True
        while True:
            if not first:
                if recheck.every is not None:
                    await asyncio.sleep(recheck.every)
                else:
                    await registry._pause()
            registry.rechecks += 1
            try:
                state = await recheck.probe()
            except Exception as error:  # the streams meet the error on their own reads
                log.debug("recheck failed", topic=recheck.topic, error=str(error))
                first = False
                continue
            if state != last and (last is not _UNSET or registry.degraded):
                registry.notify(recheck.topic)
            last = state
            first = False


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
            registry._use_check(recheck)

    def _fire(self, topic: str) -> None:
        self._fired.add(topic)
        self._event.set()

    async def wait(self, within: float | None) -> set[str]:
        """Wait up to `within` seconds (None: until woken) for a notify on any topic;
        returns the topics notified since the last wait (empty on timeout), and
        re-arms."""
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
        """Stop listening (and stop the topic's re-check if no one else uses it)."""
        for topic in self._topics:
            listeners = self._registry._listeners.get(topic)
            if listeners is not None:
                listeners.discard(self)
                if not listeners:
                    del self._registry._listeners[topic]
        if self._recheck is not None:
            self._registry._drop_check(self._recheck.topic)
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
        self._checks: dict[str, _TopicCheck] = {}
        self._recheck_seconds = recheck_seconds
        self._degraded_seconds = degraded_seconds
        self._degraded = not complete
        self._went_degraded = asyncio.Event()
        if self._degraded:
            self._went_degraded.set()
        self.rechecks = 0
        """Probes run so far (for tests and benchmarks)."""

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
        if degraded:
            self._went_degraded.set()
        else:
            self._went_degraded = asyncio.Event()
            self.wake_all()

    def wake_all(self) -> None:
        """Wake every current listener, on every topic."""
        for topic in list(self._listeners):
            self.notify(topic)

    def notify(self, topic: str, *, announced: bool = False) -> None:
        """Wake every current listener on `topic` (there are no other replicas)."""
        for listener in self._listeners.get(topic, ()):
            listener._fire(topic)

    def commit_notice(self, topic: str) -> None:
        """None: nothing to announce beyond this process."""
        return None

    def listen(self, *topics: str, recheck: Recheck | None = None) -> Listener:
        """Start listening on `topics` now (use as a context manager), with `recheck`
        covering one of them."""
        return Listener(self, topics, recheck)

    async def wait(self, topic: str, within: float) -> bool:
        """Wait up to `within` seconds for a notify on `topic`; True if one came."""
        with self.listen(topic) as listener:
            return bool(await listener.wait(within))

    async def close(self) -> None:
        """Stop the re-check tasks."""
        checks, self._checks = self._checks, {}
        for check in checks.values():
            check.task.cancel()
        for check in checks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await check.task

    async def _pause(self) -> None:
        """Sleep until a topic's next re-check is due."""
        if self._degraded:
            await asyncio.sleep(self._degraded_seconds)
            return
        # Wakes early when wakeups start to be missed, then re-checks at once.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._recheck_seconds or None):
                await self._went_degraded.wait()

    def _use_check(self, recheck: Recheck) -> None:
        check = self._checks.get(recheck.topic)
        if check is None:
            check = self._checks[recheck.topic] = _TopicCheck(self, recheck)
        check.users += 1

    def _drop_check(self, topic: str) -> None:
        check = self._checks.get(topic)
        if check is None:
            return
        check.users -= 1
        if check.users <= 0:
            del self._checks[topic]
            check.task.cancel()
