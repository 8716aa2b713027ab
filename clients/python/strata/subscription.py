"""SubscribeJobs on the client: jobs pushed to a consumer as they become runnable.

    with client.queue("emails").subscribe(max_in_flight=8) as jobs:
        for job in jobs:
            send_email(job)
            jobs.ack(job)

    async with aclient.queue("emails").subscribe(max_in_flight=8) as jobs:
        async for job in jobs:
            await send_email(job)
            await jobs.ack(job)

The server never has more than `max_in_flight` of the stream's jobs unacked, so a
consumer that stops acking stops receiving. Leaving the `with` block (or `close()`)
is the clean close: the stream is cancelled and every job it delivered that was not
acked, failed or released through the subscription is released at once (runnable
again, attempt not counted). A consumer that dies instead leaves its jobs to come
back when their leases expire. Jobs in flight inside gRPC at the moment of the close
were never seen by the consumer and also come back on lease expiry.

Leases are not extended by the stream: ack within `lease_duration`, or call
`client.extend_lease(job, ...)`.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import TracebackType
from typing import Any

from strata import _queue_requests
from strata._convert import duration_from_timedelta
from strata._machines import Machine, arun, run
from strata._queue_requests import DEFAULT_LEASE, ack_job, fail_job, release_job
from strata._rpc import Rpc, StreamRpc, in_namespace
from strata._transport import AsyncStream, AsyncTransport, Stream, Transport
from strata.errors import LeaseLost, NotFound, StrataError
from strata.jobs import Job
from strata.v1 import queue_pb2

__all__ = ["AsyncSubscription", "Subscription"]


def subscribe_jobs(
    queue: str, namespace: str | None, max_in_flight: int, lease_duration: timedelta
) -> StreamRpc[queue_pb2.Job, Job]:
    """The SubscribeJobs call both clients make."""
    if not isinstance(max_in_flight, int) or max_in_flight < 1:
        raise ValueError("max_in_flight must be a positive int")
    fields = queue_pb2.SubscribeJobsRequest(
        queue=queue,
        max_in_flight=max_in_flight,
        lease_duration=duration_from_timedelta(lease_duration, "lease_duration"),
    )
    return StreamRpc(
        "queue", "SubscribeJobs", lambda ns: in_namespace(fields, ns), Job.from_proto, namespace
    )


class _Unsettled:
    """The jobs a subscription delivered and that were not settled through it,
    and the calls that settle them: what both subscriptions share."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self.closed = False

    def delivered(self, job: Job | None) -> Job | None:
        """Track `job`, just delivered (None: the stream ended)."""
        if job is not None:
            self._jobs[job.id] = job
        return job

    def settle(self, job: Job, rpc: Rpc[Any, Job]) -> Machine[Job]:
        """Send `rpc` (an ack, fail or release of `job`) and stop tracking `job`."""
        settled: Job = yield rpc
        self._jobs.pop(job.id, None)
        return settled

    def release_all(self) -> Machine[None]:
        """Release every job still tracked, skipping one the server already
        settled (acked elsewhere, expired or cancelled: nothing to give back)."""
        unsettled, self._jobs = list(self._jobs.values()), {}
        for job in unsettled:
            try:
                yield _queue_requests.release_job(job)
            except (LeaseLost, NotFound):
                continue


class Subscription:
    """The jobs of one SubscribeJobs stream on a blocking `Client`; iterate over
    it, settle each job with `ack`, `fail` or `release`, and close it (a `with`
    block does). Use it from one thread."""

    def __init__(
        self,
        transport: Transport,
        queue: str,
        *,
        namespace: str | None = None,
        max_in_flight: int = 1,
        lease_duration: timedelta = DEFAULT_LEASE,
    ) -> None:
        self._transport = transport
        rpc = subscribe_jobs(queue, namespace, max_in_flight, lease_duration)
        self._stream: Stream[Job] = transport.server_stream(rpc)
        self._jobs = _Unsettled()

    def __iter__(self) -> Subscription:
        return self

    def __next__(self) -> Job:
        """The next job, waiting for one; StopIteration once closed. Raises the
        stream's error as a `strata.StrataError` (e.g. Unavailable when the
        server went away)."""
        try:
            job = self._jobs.delivered(self._stream.read())
        except StrataError:
            if self._jobs.closed:
                raise StopIteration from None
            raise
        if job is None:
            raise StopIteration
        return job

    def ack(self, job: Job, result: dict[str, Any] | None = None) -> Job:
        """Complete `job` (client.ack_job) and stop tracking it."""
        return run(self._transport, self._jobs.settle(job, ack_job(job, result=result)))

    def fail(
        self, job: Job, error: str | BaseException, retry_delay: timedelta | None = None
    ) -> Job:
        """Fail `job`'s attempt (client.fail_job) and stop tracking it."""
        failure = fail_job(job, error, retry_delay=retry_delay)
        return run(self._transport, self._jobs.settle(job, failure))

    def release(self, job: Job) -> Job:
        """Give `job` back unworked (client.release_job) and stop tracking it."""
        return run(self._transport, self._jobs.settle(job, release_job(job)))

    def close(self) -> None:
        """Cancel the stream, then release every delivered job not yet settled
        through this subscription (one the server already settled is skipped)."""
        if not self._jobs.closed:
            self._jobs.closed = True
            self._stream.cancel()
            run(self._transport, self._jobs.release_all())

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncSubscription:
    """`Subscription` for an `AsyncClient`: `async for`, awaitable `ack`, `fail`,
    `release` and `close`, and `async with`."""

    def __init__(
        self,
        transport: AsyncTransport,
        queue: str,
        *,
        namespace: str | None = None,
        max_in_flight: int = 1,
        lease_duration: timedelta = DEFAULT_LEASE,
    ) -> None:
        self._transport = transport
        rpc = subscribe_jobs(queue, namespace, max_in_flight, lease_duration)
        self._stream: AsyncStream[Job] = transport.server_stream(rpc)
        self._jobs = _Unsettled()

    def __aiter__(self) -> AsyncSubscription:
        return self

    async def __anext__(self) -> Job:
        """The next job, waiting for one; StopAsyncIteration once closed."""
        try:
            job = self._jobs.delivered(await self._stream.read())
        except (StrataError, asyncio.CancelledError):
            if self._jobs.closed:
                raise StopAsyncIteration from None
            raise
        if job is None:
            raise StopAsyncIteration
        return job

    async def ack(self, job: Job, result: dict[str, Any] | None = None) -> Job:
        """Complete `job` (client.ack_job) and stop tracking it."""
        return await arun(self._transport, self._jobs.settle(job, ack_job(job, result=result)))

    async def fail(
        self, job: Job, error: str | BaseException, retry_delay: timedelta | None = None
    ) -> Job:
        """Fail `job`'s attempt (client.fail_job) and stop tracking it."""
        failure = fail_job(job, error, retry_delay=retry_delay)
        return await arun(self._transport, self._jobs.settle(job, failure))

    async def release(self, job: Job) -> Job:
        """Give `job` back unworked (client.release_job) and stop tracking it."""
        return await arun(self._transport, self._jobs.settle(job, release_job(job)))

    async def close(self) -> None:
        """As `Subscription.close`."""
        if not self._jobs.closed:
            self._jobs.closed = True
            self._stream.cancel()
            await arun(self._transport, self._jobs.release_all())

    async def __aenter__(self) -> AsyncSubscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
