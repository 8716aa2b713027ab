"""The re-checks of the topics that streams wait on: one probe per topic, however
many listeners share it, run by one scheduler for the whole registry.

A topic's probe runs when its listeners first need it (its first answer is taken
at once), then only when something may have changed that no wakeup announces:
- while wakeups may be missed (`degraded`: the events channel between replicas is
  down, or other processes write the SQLite file), every `degraded_seconds`, or
  every `Recheck.every` where that is shorter (being degraded never slows one);
- while its probe says time alone may change its answer (`Probed.moving`: a queue
  holding jobs that may come due, changes committed but not yet readable), every
  `Recheck.every`; and within `every` of a notify on the topic, since a write may
  have started such a time (a scheduled job, a change waiting to settle);
- otherwise every `recheck_seconds`, a safety net (0: never).

Probe times are rounded up to the multiples of their interval on the loop's clock,
so the topics due in one interval are probed in one pass of the loop: probes that
share a `core.idle.Batched` lookup (every followed transcript's) then cost one
query per round, not one per topic. A probe whose answer changed wakes the topic's
listeners: the first answer only while wakeups may be missed, since while they flow
a change after a listener's own first read wakes it anyway, or when it says it is
news by itself (`Probed.ready`: a job that came due unannounced).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
from collections.abc import Callable

import structlog

from strata_server.core.idle import Probed
from strata_server.storage.ports import Recheck

log = structlog.get_logger("strata.events")

_UNSET = object()


def probe_task_name(topic: str) -> str:
    """The name of the task running `topic`'s probe: a task dump then says what each
    probe checks, and a test can tell the probe's store calls from the streams'."""
    return f"strata-recheck {topic}"


def _tick_after(time: float, interval: float) -> float:
    """The first multiple of `interval` after `time`."""
    return (math.floor(time / interval) + 1) * interval


class _Check:
    """One topic's re-check: its probe, its listeners' count, its last answer and
    when it runs next."""

    __slots__ = ("due", "last", "moving", "poked", "probing", "ran_for", "recheck", "users")

    def __init__(self, recheck: Recheck) -> None:
        self.recheck = recheck
        self.users = 0
        self.last: object = _UNSET
        self.moving = recheck.every is not None
        self.due: float | None = None  # when it is planned to run (None: not planned)
        self.ran_for = 0.0  # the time its last probe was planned for
        self.probing = False
        self.poked = False  # notified while its probe ran


class Rechecks:
    """The re-checks of one registry; `wake` wakes a topic's local listeners."""

    def __init__(
        self,
        wake: Callable[[str], None],
        *,
        recheck_seconds: float,
        degraded_seconds: float,
        degraded: bool,
    ) -> None:
        self._wake = wake
        self._recheck_seconds = recheck_seconds
        self._degraded_seconds = degraded_seconds
        self._degraded = degraded
        self._checks: dict[str, _Check] = {}
        self._planned: list[tuple[float, int, _Check]] = []
        self._order = itertools.count()
        self._replan = asyncio.Event()
        self._scheduler: asyncio.Task[None] | None = None
        self._probes: set[asyncio.Task[None]] = set()
        self.probes = 0
        """Probes run so far (for tests and benchmarks)."""

    @property
    def topics(self) -> set[str]:
        """The topics re-checked now."""
        return set(self._checks)

    def use(self, recheck: Recheck) -> None:
        """A listener of `recheck.topic` needs it re-checked (the first starts it)."""
        check = self._checks.get(recheck.topic)
        if check is None:
            check = self._checks[recheck.topic] = _Check(recheck)
            self._plan(check, asyncio.get_running_loop().time())
        check.users += 1

    def drop(self, topic: str) -> None:
        """A listener of `topic` has gone (the last stops its re-check)."""
        check = self._checks.get(topic)
        if check is None:
            return
        check.users -= 1
        if check.users <= 0:
            del self._checks[topic]
            check.due = None  # its planned run, if any, is skipped
            if not self._checks:
                self._replan.set()  # the scheduler stops

    def poke(self, topic: str) -> None:
        """A write on `topic`: a topic re-checked for what time changes is probed
        within its interval."""
        check = self._checks.get(topic)
        if check is None or check.recheck.every is None:
            return
        if check.probing:
            check.poked = True
            return
        every = check.recheck.every
        now = asyncio.get_running_loop().time()
        self._plan(check, _tick_after(max(now, check.ran_for + every / 2), every))

    def set_degraded(self, degraded: bool) -> None:
        """Wakeups may be missed from now on (every topic is probed at once, then
        every `degraded_seconds`), or no longer."""
        self._degraded = degraded
        if degraded:
            now = asyncio.get_running_loop().time()
            for check in self._checks.values():
                self._plan(check, now)

    async def close(self) -> None:
        """Stop the scheduler and the probes in flight."""
        tasks = [*self._probes, *([self._scheduler] if self._scheduler else [])]
        self._checks.clear()
        self._planned.clear()
        self._scheduler = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _plan(self, check: _Check, at: float) -> None:
        """Run `check` at `at`, unless it already runs earlier."""
        if check.due is not None and check.due <= at:
            return
        check.due = at
        earliest = not self._planned or at < self._planned[0][0]
        heapq.heappush(self._planned, (at, next(self._order), check))
        if self._scheduler is None:
            self._scheduler = asyncio.get_running_loop().create_task(
                self._schedule(), name="strata-rechecks"
            )
        elif earliest:
            self._replan.set()

    def _plan_next(self, check: _Check) -> None:
        """Plan `check`'s next run after a probe, by the rules in the module docstring."""
        recheck, ran_for = check.recheck, check.ran_for
        if self._degraded:
            interval: float | None = min(self._degraded_seconds, recheck.every or math.inf)
        elif recheck.every is not None and (check.moving or check.poked):
            interval = recheck.every
        else:
            interval = self._recheck_seconds or None
        check.poked = False
        if interval is not None:
            self._plan(check, _tick_after(ran_for + interval / 2, interval))

    async def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._checks:  # the last listener has gone: the next one starts it
                self._planned.clear()
                self._scheduler = None
                return
            now = loop.time()
            while self._planned and self._planned[0][0] <= now:
                at, _, check = heapq.heappop(self._planned)
                if check.due != at or self._checks.get(check.recheck.topic) is not check:
                    continue  # planned again for another time, or stopped
                check.due = None
                if check.probing:  # planned again while its probe runs: that plans next
                    continue
                check.ran_for = at
                check.probing = True
                probe = loop.create_task(
                    self._probe(check), name=probe_task_name(check.recheck.topic)
                )
                self._probes.add(probe)
                probe.add_done_callback(self._probes.discard)
            self._replan.clear()
            within = self._planned[0][0] - now if self._planned else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    await self._replan.wait()

    async def _probe(self, check: _Check) -> None:
        recheck = check.recheck
        self.probes += 1
        try:
            answer = await recheck.probe()
        except Exception as error:  # the streams meet the error on their own reads
            log.debug("recheck failed", topic=recheck.topic, error=str(error))
        else:
            state = answer.state if isinstance(answer, Probed) else answer
            ready = False
            if isinstance(answer, Probed):
                check.moving, ready = answer.moving, answer.ready
            if state != check.last and (check.last is not _UNSET or self._degraded or ready):
                self._wake(recheck.topic)
            check.last = state
        finally:
            check.probing = False
        if self._checks.get(recheck.topic) is check:
            self._plan_next(check)
