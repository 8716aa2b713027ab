"""What the blocking and the asyncio worker share, without doing any I/O.

`LeaseBook` keeps the leases a worker holds and says when each is next extended;
`settle` and `abandon` decide how a job is closed once its handler has run;
`Leasing` decides when to make the next lease call, and `lease` makes it;
`consume` is the whole `jobs()` loop; and `stop_on_signals` turns SIGINT /
SIGTERM into a graceful stop. All but the first and the last are machines
(`strata._machines`): generators that yield the calls to make and are sent
their results, or thrown their errors, which `strata.worker` runs over threads
and `strata.aio_worker` over asyncio. `Steps` are the ones that only make calls.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import timedelta
from types import FrameType
from typing import Any, Generic, TypeAlias, TypeVar

from strata import _job_args, _queue_requests
from strata._machines import Deliver, Machine, Sleep, Stoppable
from strata._retry import backoff_delays
from strata._rpc import Rpc
from strata._transport import AsyncTransport, Cancelled, Transport
from strata.config import RetryPolicy
from strata.errors import (
    Aborted,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    LeaseLost,
    NotFound,
    ResourceExhausted,
    StrataError,
    Unavailable,
)
from strata.jobs import Job

TransportT = TypeVar("TransportT", Transport, AsyncTransport)

LOG = logging.getLogger("strata.worker")
"""Where workers report lost leases, failed jobs and server trouble."""

Steps: TypeAlias = Generator[Rpc[Any, Any], Any, None]
"""Calls to make one after the other: each yielded `Rpc` is sent, and its result
sent back into the generator, or its `StrataError` thrown into it."""


def advance(
    steps: Steps, reply: Any = None, error: StrataError | None = None
) -> Rpc[Any, Any] | None:
    """The next call of `steps`, once the previous one returned `reply` or raised
    `error`; None when there is none."""
    try:
        return steps.send(reply) if error is None else steps.throw(error)
    except StopIteration:
        return None


Result: TypeAlias = Mapping[str, Any] | None
"""What a handler returns: the job's result (a JSON object), or None."""

DEFAULT_WAIT = timedelta(seconds=20)
"""How long a worker's lease call waits for a job (a long poll) by default."""

MAX_LEASE_JOBS = 1000
"""Most jobs one lease call may ask for."""

IDLE_SECONDS = 1.0
"""Least time between two lease calls that found nothing, whatever the wait."""

RETRY_EXTEND_SECONDS = 1.0
"""How soon a lease extension that failed for a transient reason is tried again
(or at the next beat, if that comes earlier)."""

ABANDONED = (
    "the consumer loop ended before the job was finished: its body raised, or the "
    "loop was left (break, return, or the iterator was closed)"
)
"""`last_error` of a job whose `for job in handle.jobs()` body did not finish. A
generator is never told which exception ended the loop that drove it."""

_TRANSIENT = (Unavailable, DeadlineExceeded, Aborted, ResourceExhausted)
"""Errors of a lease call after which leasing is tried again, after a pause."""

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


def settle(
    book: LeaseBook,
    job: Job,
    result: object = None,
    error: str | BaseException | None = None,
    retry_delay: timedelta | None = None,
) -> Steps:
    """Close `job` after its handler ran: ack it with `result` (a JSON object or
    None) when there is no `error`, else fail it with `error` (an exception or a
    text). A lease lost meanwhile is logged and the job skipped; a result the
    server refuses (not JSON, too large) fails the job instead. Never raises."""
    if not book.release(job):
        LOG.info("job %s: lease lost while it ran; not acking it", job.id)
        return
    if isinstance(error, Exception):
        LOG.warning("job %s of queue %s failed", job.id, job.queue, exc_info=error)
    if error is None:
        if result is None or isinstance(result, Mapping):
            try:
                yield _queue_requests.ack_job(job, result=result)
                return
            except (InvalidArgument, ResourceExhausted, TypeError) as refused:
                error = f"the job's result was refused: {_job_args.error_text(refused)}"
            except StrataError as failure:
                _unsettled(job, "ack", failure)
                return
        else:
            error = TypeError(f"the handler returned a {type(result).__name__}, not a dict or None")
    try:
        yield _queue_requests.fail_job(job, error, retry_delay=retry_delay)
    except StrataError as failure:
        _unsettled(job, "fail", failure)


def abandon(book: LeaseBook, jobs: Sequence[Job], error: BaseException) -> Steps:
    """Give back the jobs of a `jobs()` loop that ended: the first, whose body did
    not finish, failed with `error` (its text when it is an Exception thrown into
    the generator, else `ABANDONED`); the others, not started, released so that
    they run again at once without the attempt counting."""
    if jobs:
        yield from settle(book, jobs[0], error=error if isinstance(error, Exception) else ABANDONED)
    for job in jobs[1:]:
        if not book.release(job):
            continue
        try:
            yield _queue_requests.release_job(job)
        except StrataError as failure:
            _unsettled(job, "release", failure)


def _unsettled(job: Job, action: str, error: StrataError) -> None:
    if isinstance(error, LeaseLost):
        LOG.warning("job %s: lease lost before the %s (%s); skipping it", job.id, action, error)
    else:
        LOG.warning(
            "job %s: %s failed (%s); the job runs again once its lease expires",
            job.id,
            action,
            error,
        )


class Leasing:
    """The leasing of one worker loop: the lease call, the leases held (`book`),
    and the pauses after a lease call. After UNAVAILABLE, DEADLINE_EXCEEDED,
    ABORTED or RESOURCE_EXHAUSTED leasing is tried again following the client's
    `RetryPolicy` backoff, without a limit on attempts; any other error is raised.
    After a call that found no job, the next comes `IDLE_SECONDS` after the
    previous one at the earliest, so that a short `wait` does not spin."""

    def __init__(
        self,
        call: Callable[[int], Rpc[Any, list[Job]]],
        lease_duration: timedelta,
        wait: timedelta,
        policy: RetryPolicy,
    ) -> None:
        self.call = call
        """The call that leases up to so many jobs."""
        self.book = LeaseBook(lease_duration)
        """The leases the loop holds."""
        self._wait = wait
        self._policy = policy
        self._delays = backoff_delays(policy)

    def failed(self, error: StrataError) -> float:
        """Seconds to pause after a lease call failed with `error`; raises it when
        it is not transient."""
        if not isinstance(error, _TRANSIENT):
            raise error
        LOG.warning("leasing failed, trying again: %s", error)
        return next(self._delays)

    def leased(self, jobs: list[Job]) -> float:
        """Seconds to pause after a lease call returned `jobs`; from now on, the
        backoff after a failure starts again from the shortest pause."""
        self._delays = backoff_delays(self._policy)
        return 0.0 if jobs else max(0.0, IDLE_SECONDS - self._wait.total_seconds())


def lease(
    leasing: Leasing, count: int, stop: threading.Event | asyncio.Event
) -> Machine[list[Job]]:
    """Up to `count` jobs, or none when the call fails for a transient reason
    (after a pause) or `stop` is set meanwhile (the call is then cancelled)."""
    try:
        jobs: list[Job] = yield Stoppable(leasing.call(count), stop)
    except Cancelled:
        return []
    except StrataError as error:
        yield Sleep(leasing.failed(error), stop)
        return []
    yield Sleep(leasing.leased(jobs), stop)
    return jobs


def consume(
    leasing: Leasing,
    max_jobs: int,
    stop: threading.Event | asyncio.Event,
    hold: Callable[[list[Job]], object],
) -> Machine[None]:
    """The jobs of a `jobs()` loop, delivered one at a time: lease up to
    `max_jobs` (`hold` starts keeping their leases), deliver each, and ack it
    when the next is asked for, until `stop` is set. An exception thrown in at
    a delivery (the loop's body raised, or the loop was left) abandons that job
    and the rest of its batch, then goes on up."""
    book = leasing.book
    while not stop.is_set():
        batch = yield from lease(leasing, max_jobs, stop)
        hold(batch)
        for index, job in enumerate(batch):
            try:
                yield Deliver([job])
            except BaseException as exc:
                yield from abandon(book, batch[index:], exc)
                raise
            yield from settle(book, job)


def check_concurrency(concurrency: int) -> int:
    """`concurrency` when it is a positive int."""
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError("concurrency must be a positive int")
    return concurrency


@contextmanager
def stop_on_signals(stop: Callable[[], object]) -> Iterator[None]:
    """Call `stop` on the first SIGINT or SIGTERM received inside; then the
    previous handlers are back, so that a second signal acts as it did before
    (Ctrl-C raises KeyboardInterrupt). Handlers can only be set in the main
    thread: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        LOG.warning("%s: finishing the jobs in hand, then stopping", signal.Signals(signum).name)
        restore()
        stop()

    for sig in previous:
        signal.signal(sig, on_signal)
    try:
        yield
    finally:
        restore()


class HandleBase(Generic[TransportT]):
    """What QueueHandle and AsyncQueueHandle share: the queue they name."""

    def __init__(self, transport: TransportT, name: str, *, namespace: str | None = None) -> None:
        self.transport: TransportT = transport
        """The transport of the client the handle calls through."""
        self.name = name
        """The queue's name."""
        self.namespace = namespace
        """The queue's namespace; None means the client's."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, namespace={self.namespace!r})"

    def _leasing(self, lease_duration: timedelta, wait: timedelta) -> Leasing:
        """The leasing of a new worker loop on the queue."""

        def call(count: int) -> Rpc[Any, list[Job]]:
            return _queue_requests.lease_jobs(
                self.name,
                min(count, MAX_LEASE_JOBS),
                lease_duration=lease_duration,
                wait=wait,
                namespace=self.namespace,
            )

        return Leasing(call, lease_duration, wait, self.transport.config.retry)
