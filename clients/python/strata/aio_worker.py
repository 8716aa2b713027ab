"""Workers on the asyncio client: `AsyncClient.queue(name)` returns an
`AsyncQueueHandle`.

    async def send_email(job: strata.Job) -> dict[str, Any] | None:
        ...  # raise to fail the job; return its result (or None) to ack it

    async with strata.AsyncClient("127.0.0.1:50051") as client:
        await client.queue("emails").work(send_email, concurrency=4)

or, one job at a time in a loop of your own:

    async for job in client.queue("emails").jobs():
        await send_email(job)

A heartbeat task extends the leases held every third of the lease duration while
the handler (or loop body) runs. Only the tasks are here: what the loops and the
heartbeat decide, and how long each wait lasts at most, is in `strata._worker`
and `strata._leases`, shared with the blocking worker of `strata.worker`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

from strata import _queue_requests, _worker
from strata._leases import CLOSE_SECONDS, LOG, Heartbeat, LeaseBook
from strata._machines import aiterate, arun
from strata._transport import AsyncTransport
from strata.jobs import Job
from strata.subscription import AsyncSubscription

__all__ = ["AsyncHandler", "AsyncQueueHandle"]

AsyncHandler = Callable[[Job], Awaitable[_worker.Result]]
"""Does one job: returns its result (a dict, or None) to ack it, raises to fail it."""


class _Heartbeat:
    """A task that runs a `Heartbeat` over a LeaseBook; leaving the block closes
    it and waits `CLOSE_SECONDS` at most for the task to end, then cancels it
    and waits as long again. Closing does not depend on the cancellation, which
    Python 3.11's `asyncio.wait_for` may swallow."""

    def __init__(self, transport: AsyncTransport, book: LeaseBook) -> None:
        self._transport = transport
        self._heartbeat = Heartbeat(book, asyncio.Event(), asyncio.Event())
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Heartbeat:
        beats = arun(self._transport, self._heartbeat.beats())
        self._task = asyncio.create_task(beats, name="strata-heartbeat")
        return self._heartbeat

    async def __aexit__(self, *exc_info: object) -> None:
        self._heartbeat.close()
        task = self._task
        if task is None:
            return
        try:
            await asyncio.wait({task}, timeout=CLOSE_SECONDS)
        finally:
            if not task.done():  # late, or this wait was itself cancelled
                task.cancel()
        if not task.done():
            await asyncio.wait({task}, timeout=CLOSE_SECONDS)
        if not task.done():
            LOG.warning("the heartbeat task did not end within %s s; leaving it", CLOSE_SECONDS)
        elif not task.cancelled() and task.exception() is not None:
            LOG.warning("the heartbeat failed", exc_info=task.exception())


class AsyncQueueHandle(_worker.HandleBase[AsyncTransport]):
    """One queue of an `AsyncClient`, as its workers see it: `work` runs a
    coroutine handler on each job, `jobs` hands the jobs to an `async for` loop.

    Delivery is at least once: a job whose worker dies, or whose lease expires
    before the ack, runs again. Make handlers idempotent.
    """

    async def work(
        self,
        handler: AsyncHandler,
        *,
        stop: asyncio.Event | None = None,
        concurrency: int = 1,
        lease_duration: timedelta = _queue_requests.DEFAULT_LEASE,
        wait: timedelta = _worker.DEFAULT_WAIT,
    ) -> None:
        """Run the coroutine function `handler` on the queue's jobs,
        `concurrency` at a time as tasks, until `stop` is set or, when the event
        loop runs in the main thread, a SIGINT or SIGTERM arrives; then finish
        the jobs in hand and return.

        Behaves as `QueueHandle.work`: leases as many jobs as there are free
        slots (the long poll is cancelled when `stop` is set), extends their
        leases every third of `lease_duration` from a heartbeat task, acks a job
        with what the handler returned (a dict, or None) and fails it with the
        exception it raised, logs and skips a lost lease. The handler must not
        block the event loop, or the heartbeat stalls and leases expire.
        """
        _worker.check_concurrency(concurrency)
        stop = stop if stop is not None else asyncio.Event()
        loop = asyncio.get_running_loop()
        leasing = self._leasing(lease_duration, wait)
        with _worker.stop_on_signals(lambda: loop.call_soon_threadsafe(stop.set)):
            async with _Heartbeat(self.transport, leasing.book) as heartbeat:
                crew = _worker.Crew(
                    lambda job: asyncio.create_task(self._run(handler, job, leasing.book)),
                    asyncio.Event(),
                )
                serving = _worker.serve(leasing, concurrency, stop, heartbeat.hold, crew)
                await arun(self.transport, serving)

    def subscribe(
        self,
        *,
        max_in_flight: int = 1,
        lease_duration: timedelta = _queue_requests.DEFAULT_LEASE,
    ) -> AsyncSubscription:
        """Open a SubscribeJobs stream on the queue: jobs are pushed as they become
        runnable, never more than `max_in_flight` unacked (see
        `strata.subscription`). Use it in a `async with` block, whose end releases the
        jobs it delivered and that were not settled through it."""
        return AsyncSubscription(
            self.transport,
            self.name,
            namespace=self.namespace,
            max_in_flight=max_in_flight,
            lease_duration=lease_duration,
        )

    async def jobs(
        self,
        max_jobs: int = 10,
        *,
        stop: asyncio.Event | None = None,
        lease_duration: timedelta = _queue_requests.DEFAULT_LEASE,
        wait: timedelta = _worker.DEFAULT_WAIT,
    ) -> AsyncIterator[Job]:
        """Iterate (`async for`) over the queue's jobs as `QueueHandle.jobs`
        does: a job is acked when the loop asks for the next one, and failed when
        the body raises or leaves the loop. asyncio tells the generator so only
        when it closes it, which happens soon after, from the event loop; wrap the
        iteration in `contextlib.aclosing(handle.jobs())` to have it happen at
        once. A heartbeat task extends the leases held while the body runs."""
        stop = stop if stop is not None else asyncio.Event()
        loop = asyncio.get_running_loop()
        leasing = self._leasing(lease_duration, wait)
        with _worker.stop_on_signals(lambda: loop.call_soon_threadsafe(stop.set)):
            async with _Heartbeat(self.transport, leasing.book) as heartbeat:
                consumer = _worker.consume(leasing, max_jobs, stop, heartbeat.hold)
                driven = aiterate(self.transport, consumer)
                async for job in driven:
                    try:
                        yield job
                    except BaseException as exc:  # the machine abandons the batch
                        await driven.athrow(exc)
                        raise

    async def _run(self, handler: AsyncHandler, job: Job, book: LeaseBook) -> None:
        """As a task: `handler` on `job`, then its ack or fail."""
        try:
            result, error = await handler(job), None
        except Exception as exc:
            result, error = None, exc
        await arun(self.transport, _worker.settle(book, job, result, error))
