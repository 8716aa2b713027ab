"""The leases a worker holds and the heartbeat that extends them, without doing
any I/O: `LeaseBook` says when each lease is next extended, and `Heartbeat.beats`
is the heartbeat's loop, a machine (`strata._machines`) that the blocking worker
runs in a thread and the asyncio worker in a task.

A handler may run longer than a lease lasts; extending every held lease every
third of its duration, on a schedule of its own, lets two extensions fail before
the job is given to another worker.

The heartbeat must end when its worker does, whatever the handler did. So it
never relies on one wakeup or one cancellation reaching it: every sleep has a
bound (`IDLE_BEAT_SECONDS`) after which it looks at `closed` again, and an
extension in flight is cancelled when `closed` is set. (Python 3.11's
`asyncio.wait_for` can swallow a task's cancellation that arrives just as the
awaited event is set; an earlier heartbeat that ended only by cancellation and
then slept with no bound hung its worker that way.)
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterable
from datetime import timedelta
from typing import Any, TypeAlias

from strata import _queue_requests
from strata._machines import Machine, Sleep, Stoppable
from strata._rpc import Rpc
from strata._transport import Cancelled
from strata.errors import FailedPrecondition, LeaseLost, NotFound, StrataError
from strata.jobs import Job

LOG = logging.getLogger("strata.worker")
"""Where workers report lost leases, failed jobs and server trouble."""

Steps: TypeAlias = Generator[Rpc[Any, Any], Any, None]
"""Calls to make one after the other: each yielded `Rpc` is sent, and its result
sent back into the generator, or its `StrataError` thrown into it."""

Event: TypeAlias = threading.Event | asyncio.Event
"""The blocking worker's events are threading's, the asyncio worker's asyncio's."""


def advance(
    steps: Steps, reply: Any = None, error: StrataError | None = None
) -> Rpc[Any, Any] | None:
    """The next call of `steps`, once the previous one returned `reply` or raised
    `error`; None when there is none."""
    try:
        return steps.send(reply) if error is None else steps.throw(error)
    except StopIteration:
        return None


RETRY_EXTEND_SECONDS = 1.0
"""How soon a lease extension that failed for a transient reason is tried again
(or at the next beat, if that comes earlier)."""

IDLE_BEAT_SECONDS = 1.0
"""Longest the heartbeat sleeps between two looks at its book and at `closed`,
so that a lost wakeup delays it by this much at most, never forever."""

CLOSE_SECONDS = 5.0
"""Longest a worker waits for its heartbeat to end once closed (then, on
asyncio, once more after cancelling it): a sleep ends at once and an extension
in flight is cancelled, so it takes far less."""

_GONE = (LeaseLost, NotFound, FailedPrecondition)
"""Errors of an extension that mean the lease is not the worker's any more."""


class LeaseBook:
    """The leases a worker holds, and when each is next extended: every third of
    the lease duration, so that two extensions may fail before the lease ends.

    Shared by the worker's loop (which holds and releases jobs) and its heartbeat
    (which runs `beat`), from any thread.
    """

    def __init__(
        self, lease_duration: timedelta, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not isinstance(lease_duration, timedelta) or lease_duration <= timedelta(0):
            raise ValueError("lease_duration must be a positive timedelta")
        self.lease_duration = lease_duration
        """How long each lease (and each extension) lasts."""
        self.interval = lease_duration.total_seconds() / 3
        """Seconds between two extensions of a lease."""
        self._clock = clock
        self._lock = threading.Lock()
        self._due: dict[str, float] = {}
        self._jobs: dict[str, Job] = {}
        self._lost: set[str] = set()

    def hold(self, jobs: Iterable[Job]) -> None:
        """Start keeping the leases of `jobs`, just leased."""
        with self._lock:
            due = self._clock() + self.interval
            for job in jobs:
                self._jobs[job.id] = job
                self._due[job.id] = due

    def release(self, job: Job) -> bool:
        """Stop keeping `job`'s lease; False when the lease was lost meanwhile."""
        with self._lock:
            self._due.pop(job.id, None)
            held = self._jobs.pop(job.id, None) is not None
            lost = job.id in self._lost
            self._lost.discard(job.id)
        return held and not lost

    def held(self) -> list[Job]:
        """The jobs whose leases are kept, lost ones excepted."""
        with self._lock:
            return [job for job_id, job in self._jobs.items() if job_id not in self._lost]

    def wait_time(self) -> float | None:
        """Seconds until the next extension is due; None when there is none to make."""
        with self._lock:
            if not self._due:
                return None
            return max(0.0, min(self._due.values()) - self._clock())

    def beat(self) -> Steps:
        """Extend the leases that are due. A lease found lost stops being
        extended and is reported once; a transient failure is retried soon."""
        with self._lock:
            now = self._clock()
            due = [self._jobs[job_id] for job_id, when in self._due.items() if when <= now]
        for job in due:
            sent = self._clock()
            try:
                yield _queue_requests.extend_lease(job, self.lease_duration)
            except _GONE as error:
                if not self._extended(job, None):
                    continue  # released (acked) meanwhile: nothing was lost
                LOG.warning(
                    "job %s of queue %s: lease lost (%s); skipping the job, which the "
                    "queue may give to another worker",
                    job.id,
                    job.queue,
                    error,
                )
            except StrataError as error:
                self._extended(job, sent + min(self.interval, RETRY_EXTEND_SECONDS))
                LOG.warning("job %s: could not extend its lease, will retry: %s", job.id, error)
            else:
                self._extended(job, sent + self.interval)

    def _extended(self, job: Job, next_due: float | None) -> bool:
        """After an extension: when the next is due, or None when the lease is
        lost. False, changing nothing, for a job released meanwhile."""
        with self._lock:
            if job.id not in self._jobs:
                return False
            if next_due is None:
                self._due.pop(job.id, None)
                self._lost.add(job.id)
            else:
                self._due[job.id] = next_due
            return True


class Heartbeat:
    """A worker's heartbeat over its `book`: `beats` sleeps until an extension
    is due, new leases are held or `close` is called, makes the extensions due,
    and so on until closed. The events are threading's for the blocking worker
    and asyncio's for the asyncio one; `hold` and `close` are called from the
    worker's loop (its thread, or its event loop)."""

    def __init__(self, book: LeaseBook, wake: Event, closed: Event) -> None:
        if type(wake) is not type(closed):
            raise TypeError("wake and closed must be events of one kind")
        self.book = book
        """The leases extended."""
        self._wake = wake
        self._closed = closed

    def hold(self, jobs: list[Job]) -> list[Job]:
        """Keep the leases of `jobs` from now on; returns them."""
        self.book.hold(jobs)
        self._wake.set()
        return jobs

    def close(self) -> None:
        """Have `beats` return: at once when it sleeps, and once the extension in
        flight is cancelled when it makes one."""
        self._closed.set()
        self._wake.set()

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._closed.is_set()

    def beats(self) -> Machine[None]:
        """The heartbeat's loop: each sleep lasts `IDLE_BEAT_SECONDS` at most."""
        while not self._closed.is_set():
            due = self.book.wait_time()
            bound = IDLE_BEAT_SECONDS if due is None else min(due, IDLE_BEAT_SECONDS)
            yield Sleep(bound, self._wake)
            self._wake.clear()
            if self._closed.is_set():
                return
            steps = self.book.beat()
            reply: Any = None
            error: StrataError | None = None
            while (rpc := advance(steps, reply, error)) is not None:
                reply, error = None, None
                try:
                    reply = yield Stoppable(rpc, self._closed)
                except Cancelled:
                    steps.close()
                    return
                except StrataError as failed:
                    error = failed
