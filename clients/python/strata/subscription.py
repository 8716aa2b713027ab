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
from typing import TYPE_CHECKING, Any

import grpc

from strata._convert import duration_from_timedelta
from strata._queue_requests import DEFAULT_LEASE
from strata.errors import LeaseLost, NotFound, from_rpc_error
from strata.jobs import Job
from strata.v1 import queue_pb2

if TYPE_CHECKING:
    from strata.aio import AsyncClient
    from strata.client import Client

__all__ = ["AsyncSubscription", "Subscription"]


def subscribe_request(
    queue: str, namespace: str, max_in_flight: int, lease_duration: timedelta
) -> queue_pb2.SubscribeJobsRequest:
    """The SubscribeJobs request both clients send."""
    if not isinstance(max_in_flight, int) or max_in_flight < 1:
        raise ValueError("max_in_flight must be a positive int")
    return queue_pb2.SubscribeJobsRequest(
        namespace=namespace,
        queue=queue,
        max_in_flight=max_in_flight,
        lease_duration=duration_from_timedelta(lease_duration, "lease_duration"),
    )


class Subscription:
    """The jobs of one SubscribeJobs stream on a blocking `Client`; iterate over
    it, settle each job with `ack`, `fail` or `release`, and close it (a `with`
    block does). Use it from one thread."""

    def __init__(
        self,
        client: Client,
        queue: str,
        *,
        namespace: str | None = None,
        max_in_flight: int = 1,
        lease_duration: timedelta = DEFAULT_LEASE,
    ) -> None:
        self._client = client
        request = subscribe_request(
            queue, namespace or client.config.namespace, max_in_flight, lease_duration
        )
        stub: Any = client._stubs["queue"]
        self._call = stub.SubscribeJobs(request, metadata=client._metadata)
        self._unsettled: dict[str, Job] = {}
        self._closed = False

    def __iter__(self) -> Subscription:
        return self

    def __next__(self) -> Job:
        """The next job, waiting for one; StopIteration once closed. Raises the
        stream's error as a `strata.StrataError` (e.g. Unavailable when the
        server went away)."""
        try:
            message = next(self._call)
        except grpc.RpcError as err:
            if self._closed:
                raise StopIteration from None
            raise from_rpc_error(err) from err
        job = Job.from_proto(message)
        self._unsettled[job.id] = job
        return job

    def ack(self, job: Job, result: dict[str, Any] | None = None) -> Job:
        """Complete `job` (client.ack_job) and stop tracking it."""
        done = self._client.ack_job(job, result=result)
        self._unsettled.pop(job.id, None)
        return done

    def fail(
        self, job: Job, error: str | BaseException, retry_delay: timedelta | None = None
    ) -> Job:
        """Fail `job`'s attempt (client.fail_job) and stop tracking it."""
        failed = self._client.fail_job(job, error, retry_delay=retry_delay)
        self._unsettled.pop(job.id, None)
        return failed

    def release(self, job: Job) -> Job:
        """Give `job` back unworked (client.release_job) and stop tracking it."""
        released = self._client.release_job(job)
        self._unsettled.pop(job.id, None)
        return released

    def close(self) -> None:
        """Cancel the stream, then release every delivered job not yet settled
        through this subscription (one the server already settled is skipped)."""
        if self._closed:
            return
        self._closed = True
        self._call.cancel()
        unsettled, self._unsettled = list(self._unsettled.values()), {}
        for job in unsettled:
            # Acked elsewhere, expired or cancelled: nothing to give back.
            with contextlib.suppress(LeaseLost, NotFound):
                self._client.release_job(job)

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
        client: AsyncClient,
        queue: str,
        *,
        namespace: str | None = None,
        max_in_flight: int = 1,
        lease_duration: timedelta = DEFAULT_LEASE,
    ) -> None:
        self._client = client
        request = subscribe_request(
            queue, namespace or client.config.namespace, max_in_flight, lease_duration
        )
        stub: Any = client._stubs["queue"]
        self._call = stub.SubscribeJobs(request, metadata=client._metadata)
        self._unsettled: dict[str, Job] = {}
        self._closed = False

    def __aiter__(self) -> AsyncSubscription:
        return self

    async def __anext__(self) -> Job:
        """The next job, waiting for one; StopAsyncIteration once closed."""
        try:
            message = await self._call.read()
        except asyncio.CancelledError:
            if self._closed:
                raise StopAsyncIteration from None
            raise
        except grpc.RpcError as err:
            if self._closed:
                raise StopAsyncIteration from None
            raise from_rpc_error(err) from err
        if message is grpc.aio.EOF:
            raise StopAsyncIteration
        job = Job.from_proto(message)
        self._unsettled[job.id] = job
        return job

    async def ack(self, job: Job, result: dict[str, Any] | None = None) -> Job:
        """Complete `job` (client.ack_job) and stop tracking it."""
        done = await self._client.ack_job(job, result=result)
        self._unsettled.pop(job.id, None)
        return done

    async def fail(
        self, job: Job, error: str | BaseException, retry_delay: timedelta | None = None
    ) -> Job:
        """Fail `job`'s attempt (client.fail_job) and stop tracking it."""
        failed = await self._client.fail_job(job, error, retry_delay=retry_delay)
        self._unsettled.pop(job.id, None)
        return failed

    async def release(self, job: Job) -> Job:
        """Give `job` back unworked (client.release_job) and stop tracking it."""
        released = await self._client.release_job(job)
        self._unsettled.pop(job.id, None)
        return released

    async def close(self) -> None:
        """As `Subscription.close`."""
        if self._closed:
            return
        self._closed = True
        self._call.cancel()
        unsettled, self._unsettled = list(self._unsettled.values()), {}
        for job in unsettled:
            # Acked elsewhere, expired or cancelled: nothing to give back.
            with contextlib.suppress(LeaseLost, NotFound):
                await self._client.release_job(job)

    async def __aenter__(self) -> AsyncSubscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
