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
import contextlib
from datetime import timedelta
from types import TracebackType
from typing import Any

from strata import _queue_requests
from strata._convert import duration_from_timedelta
from strata._queue_requests import DEFAULT_LEASE
from strata._rpc import StreamRpc, in_namespace
from strata._transport import AsyncTransport, Transport
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
        self._stream = transport.server_stream(rpc)
        self._unsettled: dict[str, Job] = {}
        self._closed = False

    def __iter__(self) -> Subscription:
        return self

    def __next__(self) -> Job:
        """The next job, waiting for one; StopIteration once closed. Raises the
        stream's error as a `strata.StrataError` (e.g. Unavailable when the
        server went away)."""
        try:
            job = self._stream.read()
        except StrataError:
            if self._closed:
                raise StopIteration from None
            raise
        if job is None:
            raise StopIteration
        self._unsettled[job.id] = job
        return job

    def ack(self, job: Job, result: dict[str, Any] | None = None) -> Job:
        """Complete `job` (client.ack_job) and stop tracking it."""
        done = self._transport.unary(_queue_requests.ack_job(job, result=result))
        self._unsettled.pop(job.id, None)
        return done

    def fail(
        self, job: Job, error: str | BaseException, retry_delay: timedelta | None = None
    ) -> Job:
        """Fail `job`'s attempt (client.fail_job) and stop tracking it."""
        failed = self._transport.unary(
            _queue_requests.fail_job(job, error, retry_delay=retry_delay)
        )
        self._unsettled.pop(job.id, None)
        return failed

    def release(self, job: Job) -> Job:
        """Give `job` back unworked (client.release_job) and stop tracking it."""
        released = self._transport.unary(_queue_requests.release_job(job))
        self._unsettled.pop(job.id, None)
        return released

    def close(self) -> None:
        """Cancel the stream, then release every delivered job not yet settled
        through this subscription (one the server already settled is skipped)."""
        if self._closed:
            return
        self._closed = True
        self._stream.cancel()
        unsettled, self._unsettled = list(self._unsettled.values()), {}
        for job in unsettled:
            # Acked elsewhere, expired or cancelled: nothing to give back.
            with contextlib.suppress(LeaseLost, NotFound):
                self._transport.unary(_queue_requests.release_job(job))

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
        self._stream = transport.server_stream(rpc)
        self._unsettled: dict[str, Job] = {}
        self._closed = False

    def __aiter__(self) -> AsyncSubscription:
        return self

    async def __anext__(self) -> Job:
        """The next job, waiting for one; StopAsyncIteration once closed."""
        try:
            job = await self._stream.read()
        except asyncio.CancelledError:
            if self._closed:
                raise StopAsyncIteration from None
            raise
        except StrataError:
            if self._closed:
                raise StopAsyncIteration from None
            raise
        if job is None:
            raise StopAsyncIteration
        self._unsettled[job.id] = job
        return job

    async def ack(self, job: Job, result: dict[str, Any] | None = None) -> Job:
        """Complete `job` (client.ack_job) and stop tracking it."""
        done = await self._transport.unary(_queue_requests.ack_job(job, result=result))
        self._unsettled.pop(job.id, None)
        return done

    async def fail(
        self, job: Job, error: str | BaseException, retry_delay: timedelta | None = None
    ) -> Job:
        """Fail `job`'s attempt (client.fail_job) and stop tracking it."""
        failed = await self._transport.unary(
            _queue_requests.fail_job(job, error, retry_delay=retry_delay)
        )
        self._unsettled.pop(job.id, None)
        return failed

    async def release(self, job: Job) -> Job:
        """Give `job` back unworked (client.release_job) and stop tracking it."""
        released = await self._transport.unary(_queue_requests.release_job(job))
        self._unsettled.pop(job.id, None)
        return released

    async def close(self) -> None:
        """As `Subscription.close`."""
        if self._closed:
            return
        self._closed = True
        self._stream.cancel()
        unsettled, self._unsettled = list(self._unsettled.values()), {}
        for job in unsettled:
            # Acked elsewhere, expired or cancelled: nothing to give back.
            with contextlib.suppress(LeaseLost, NotFound):
                await self._transport.unary(_queue_requests.release_job(job))

    async def __aenter__(self) -> AsyncSubscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
