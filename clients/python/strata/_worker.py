"""What the blocking and the asyncio worker share, without doing any I/O: the
decisions of `work()` and `jobs()`, written once.

`settle` and `abandon` decide how a job is closed once its handler has run;
`Leasing` decides when to make the next lease call, and `lease` makes it;
`serve` is the whole `work()` loop over a `Crew` of running handlers, drain
included, and `consume` the whole `jobs()` loop; `stop_on_signals` turns SIGINT /
SIGTERM into a graceful stop. The leases held and their heartbeat are in
`strata._leases`. All but the last are machines (`strata._machines`):
generators that yield the calls to make and the waits to do, and are sent
their results, or thrown their errors, which `strata.worker` runs over threads
and `strata.aio_worker` over asyncio; the drivers only start the threads or
tasks. Every wait a machine yields has a bound, after which it looks again.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent import futures
from contextlib import contextmanager
from datetime import timedelta
from types import FrameType
from typing import Any, Generic, TypeAlias, TypeVar

from strata import _job_args, _queue_requests
from strata._leases import LOG, Event, LeaseBook, Steps
from strata._machines import Deliver, Machine, Sleep, Stoppable
from strata._retry import backoff_delays
from strata._rpc import Rpc
from strata._transport import AsyncTransport, Cancelled, Transport
from strata.config import RetryPolicy
from strata.errors import (
    Aborted,
    DeadlineExceeded,
    InvalidArgument,
    LeaseLost,
    ResourceExhausted,
    StrataError,
    Unavailable,
)
from strata.jobs import Job

TransportT = TypeVar("TransportT", Transport, AsyncTransport)

Result: TypeAlias = Mapping[str, Any] | None
"""What a handler returns: the job's result (a JSON object), or None."""

DEFAULT_WAIT = timedelta(seconds=20)
"""How long a worker's lease call waits for a job (a long poll) by default."""

MAX_LEASE_JOBS = 1000
"""Most jobs one lease call may ask for."""

IDLE_SECONDS = 1.0
"""Least time between two lease calls that found nothing, whatever the wait."""

HANDLER_WAIT_SECONDS = 1.0
"""Longest the `work()` loop waits for one of its handlers to finish before it
looks again at its handlers and at `stop`."""

ABANDONED = (
    "the consumer loop ended before the job was finished: its body raised, or the "
    "loop was left (break, return, or the iterator was closed)"
)
"""`last_error` of a job whose `for job in handle.jobs()` body did not finish. A
generator is never told which exception ended the loop that drove it."""

_TRANSIENT = (Unavailable, DeadlineExceeded, Aborted, ResourceExhausted)
"""Errors of a lease call after which leasing is tried again, after a pause."""


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


def lease(leasing: Leasing, count: int, stop: Event) -> Machine[list[Job]]:
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
    stop: Event,
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


RunningT = TypeVar("RunningT", futures.Future[None], asyncio.Future[None])
"""A handler started on a job: a thread pool's future, or an asyncio task."""


class Crew(Generic[RunningT]):
    """The handlers a `work()` loop started and that may still run, each
    started by `spawn` (in a thread of a pool, or as a task). Used from the
    loop's own thread (or event loop) only; `finished` is set from wherever a
    handler finishes."""

    def __init__(self, spawn: Callable[[Job], RunningT], finished: Event) -> None:
        self._spawn: Callable[[Job], RunningT] = spawn
        self.finished = finished
        """Set whenever a handler finishes (a threading.Event for threads, an
        asyncio.Event for tasks)."""
        self.running: set[RunningT] = set()
        """The handlers not yet seen finished."""

    def start(self, job: Job) -> None:
        """Run the handler on `job`."""
        running = self._spawn(job)
        running.add_done_callback(lambda _: self.finished.set())
        self.running.add(running)

    def busy(self) -> int:
        """How many handlers still run. One that raised (a handler's own errors
        are settled: only a BaseException or a bug gets here) raises it again."""
        for running in self._finished():
            running.result()
        return len(self.running)

    def draining(self) -> bool:
        """Whether a handler still runs; those that finished are forgotten, their
        errors too (the loop is ending)."""
        self._finished()
        return bool(self.running)

    def _finished(self) -> set[RunningT]:
        self.finished.clear()  # before looking: a handler finishing after sets it again
        done = {running for running in self.running if running.done()}
        self.running -= done
        return done


def serve(
    leasing: Leasing,
    concurrency: int,
    stop: Event,
    hold: Callable[[list[Job]], object],
    crew: Crew[Any],
) -> Machine[None]:
    """The `work()` loop: lease as many jobs as there are idle handlers out of
    `concurrency` (`hold` starts keeping their leases), and start a handler on
    each, until `stop` is set; then wait for the handlers still running (the
    jobs in hand are finished) and return. A lease call's error that is not
    transient, or a handler's BaseException, is raised after that wait too.
    Every wait lasts `HANDLER_WAIT_SECONDS` at most before the loop looks again."""
    try:
        while True:
            busy = crew.busy()
            if stop.is_set():
                break
            if busy >= concurrency:
                yield Sleep(HANDLER_WAIT_SECONDS, crew.finished)
                continue
            jobs = yield from lease(leasing, concurrency - busy, stop)
            hold(jobs)
            for job in jobs:
                crew.start(job)
    except GeneratorExit:
        raise  # closed unfinished: no effect may be yielded any more
    except BaseException:
        yield from _drain(crew)
        raise
    yield from _drain(crew)


def _drain(crew: Crew[Any]) -> Machine[None]:
    """Wait for the handlers still running."""
    while crew.draining():
        yield Sleep(HANDLER_WAIT_SECONDS, crew.finished)


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
