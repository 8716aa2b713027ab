"""QueueService: parses requests into queue use cases (services/queue_service.py)
and renders their jobs; nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sized
from contextlib import aclosing
from dataclasses import KW_ONLY
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc

from strata.v1 import queue_pb2, queue_pb2_grpc
from strata_server.api.convert import (
    VISIBLE,
    actor,
    data_from_struct,
    idempotency,
    job_to_proto,
    target,
)
from strata_server.api.page_tokens import paging
from strata_server.api.parse_writes import duration, new_job
from strata_server.api.status_codes import rpcs, status_code
from strata_server.core import errors, validation
from strata_server.core import job_transitions as queue
from strata_server.core.jsontypes import JSON, serialize
from strata_server.core.paging import PageTokens
from strata_server.core.values import frozen
from strata_server.services.queue_service import Queues

Context = grpc.aio.ServicerContext[Any, Any]
DEFAULT_LEASE = timedelta(seconds=30)


def _lease(request: Any, field: str = "lease_duration") -> timedelta:
    if not request.HasField(field):
        return DEFAULT_LEASE
    return queue.lease_duration(duration(getattr(request, field), field), field)


def _token(value: str, field: str = "lease_token") -> str:
    if not value:
        raise errors.InvalidArgument.field(field, "is required")
    return value


def _check_batch(items: Sized, field: str) -> None:
    """A batch call (`field`: its jobs, its acks) holds 1 to MAX_BATCH_JOBS of them."""
    if not 1 <= len(items) <= queue.MAX_BATCH_JOBS:
        raise errors.InvalidArgument.field(field, f"must hold 1 to {queue.MAX_BATCH_JOBS} {field}")


def _check_lease_count(value: int, field: str) -> None:
    """How many jobs one lease or one subscription holds at a time."""
    if not 1 <= value <= queue.MAX_LEASE_JOBS:
        raise errors.InvalidArgument.field(field, f"must be between 1 and {queue.MAX_LEASE_JOBS}")


def _is_job_key(key: tuple[Any, ...]) -> bool:
    """ListJobs orders by (create_time, id); the adapters keep create_time as a
    number (SQLite) or a time (PostgreSQL)."""
    first = key[0] if key else None
    return (
        len(key) == 2
        and isinstance(first, int | datetime)
        and not isinstance(first, bool)
        and isinstance(key[1], str)
    )


@rpcs(queue_pb2.DESCRIPTOR.services_by_name["QueueService"])
@frozen
class QueueService(queue_pb2_grpc.QueueServiceServicer):
    """gRPC face of the queue use cases."""

    queues: Queues
    max_payload_bytes: int
    _: KW_ONLY
    tokens: PageTokens

    async def Enqueue(self, request: queue_pb2.EnqueueRequest, context: Context) -> queue_pb2.Job:
        namespace = validation.namespace(request.namespace)
        job = new_job(request, self.max_payload_bytes, datetime.now(UTC))
        [created] = await self.queues.enqueue(
            namespace, [job], actor=actor(context), idempotency=idempotency(request)
        )
        return job_to_proto(created, datetime.now(UTC))  # the store stamped it after `now`

    async def BatchEnqueue(
        self, request: queue_pb2.BatchEnqueueRequest, context: Context
    ) -> queue_pb2.BatchEnqueueResponse:
        namespace = validation.namespace(request.namespace)
        _check_batch(request.jobs, "jobs")
        now = datetime.now(UTC)
        jobs = []
        for index, item in enumerate(request.jobs):
            try:
                jobs.append(new_job(item, self.max_payload_bytes, now, f"jobs[{index}]."))
            except errors.StrataError as error:
                error.metadata.setdefault("job_index", str(index))
                raise
        created = await self.queues.enqueue(
            namespace, jobs, actor=actor(context), idempotency=idempotency(request)
        )
        return queue_pb2.BatchEnqueueResponse(
            jobs=[job_to_proto(job, datetime.now(UTC)) for job in created]
        )

    async def LeaseJobs(
        self, request: queue_pb2.LeaseJobsRequest, context: Context
    ) -> queue_pb2.LeaseJobsResponse:
        namespace = validation.namespace(request.namespace)
        name = validation.collection(request.queue, "queue")
        _check_lease_count(request.max_jobs, "max_jobs")
        lease = _lease(request)
        wait = duration(request.wait, "wait") if request.HasField("wait") else timedelta(0)
        if not timedelta(0) <= wait <= queue.MAX_WAIT:
            raise errors.InvalidArgument.field("wait", "must be between 0 and 60 seconds")
        jobs = await self.queues.lease(
            namespace, name, request.max_jobs, lease, wait, actor=actor(context)
        )
        now = datetime.now(UTC)
        return queue_pb2.LeaseJobsResponse(jobs=[job_to_proto(j, now) for j in jobs])

    async def SubscribeJobs(
        self, request: queue_pb2.SubscribeJobsRequest, context: Context
    ) -> AsyncIterator[queue_pb2.Job]:
        namespace = validation.namespace(request.namespace)
        name = validation.collection(request.queue, "queue")
        _check_lease_count(request.max_in_flight, "max_in_flight")
        jobs = self.queues.subscribe(
            namespace,
            name,
            request.max_in_flight,
            _lease(request),
            actor=actor(context),
        )
        async with aclosing(jobs):
            async for job in jobs:
                yield job_to_proto(job, datetime.now(UTC))

    def _result(self, value: Any, field: str) -> JSON | None:
        """An ack's optional result, checked against the payload limit."""
        if not value.HasField("result"):
            return None
        result = data_from_struct(value.result, f"{field}result")
        serialize(result, self.max_payload_bytes, f"{field}result", "job result")
        return result

    async def AckJob(self, request: queue_pb2.AckJobRequest, context: Context) -> queue_pb2.Job:
        result = self._result(request, "")
        token = _token(request.lease_token)
        namespace, id = target(request)
        job = await self.queues.ack(namespace, id, token, result, actor=actor(context))
        return job_to_proto(job, datetime.now(UTC))

    async def AckJobs(
        self, request: queue_pb2.AckJobsRequest, context: Context
    ) -> queue_pb2.AckJobsResponse:
        namespace = validation.namespace(request.namespace)
        _check_batch(request.acks, "acks")
        acks: list[queue.Ack] = []
        for index, item in enumerate(request.acks):
            field = f"acks[{index}]"
            result = self._result(item, f"{field}.")
            acks.append(
                queue.Ack(
                    validation.entity_id(item.id, f"{field}.id"),
                    _token(item.lease_token, f"{field}.lease_token"),
                    result,
                )
            )
        if len({ack.id for ack in acks}) < len(acks):
            raise errors.InvalidArgument.field("acks", "names a job id more than once")
        outcomes = await self.queues.ack_many(namespace, acks, actor=actor(context))
        now = datetime.now(UTC)
        response = queue_pb2.AckJobsResponse()
        for outcome in outcomes:
            entry = response.results.add()
            if isinstance(outcome, errors.StrataError):
                entry.error_code = status_code(outcome).name
                entry.error_reason = outcome.reason
                entry.error_message = outcome.message
            else:
                entry.job.CopyFrom(job_to_proto(outcome, now))
        return response

    async def FailJob(self, request: queue_pb2.FailJobRequest, context: Context) -> queue_pb2.Job:
        namespace, id = target(request)
        token = _token(request.lease_token)
        who = actor(context)
        if request.release:
            if request.error or request.HasField("retry_delay"):
                field = "error" if request.error else "retry_delay"
                raise errors.InvalidArgument.field(field, "must be empty when releasing a job")
            job = await self.queues.release(namespace, id, token, actor=who)
            return job_to_proto(job, datetime.now(UTC))
        delay = None
        if request.HasField("retry_delay"):
            delay = duration(request.retry_delay, "retry_delay")
            if delay < timedelta(0):
                raise errors.InvalidArgument.field("retry_delay", "must not be negative")
        job = await self.queues.fail(
            namespace, id, token, request.error[: queue.MAX_ERROR_CHARS], delay, actor=who
        )
        return job_to_proto(job, datetime.now(UTC))

    async def ExtendLease(
        self, request: queue_pb2.ExtendLeaseRequest, context: Context
    ) -> queue_pb2.Job:
        namespace, id = target(request)
        token = _token(request.lease_token)
        job = await self.queues.extend(namespace, id, token, _lease(request), actor=actor(context))
        return job_to_proto(job, datetime.now(UTC))

    async def CancelJob(
        self, request: queue_pb2.CancelJobRequest, context: Context
    ) -> queue_pb2.Job:
        job = await self.queues.cancel(*target(request), actor=actor(context))
        return job_to_proto(job, datetime.now(UTC))

    async def GetJob(self, request: queue_pb2.GetJobRequest, context: Context) -> queue_pb2.Job:
        job = await self.queues.get_job(*target(request))
        return job_to_proto(job, datetime.now(UTC))

    async def ListJobs(
        self, request: queue_pb2.ListJobsRequest, context: Context
    ) -> queue_pb2.ListJobsResponse:
        namespace = validation.namespace(request.namespace)
        name = validation.collection(request.queue, "queue")
        state = None
        if request.state != queue_pb2.JOB_STATE_UNSPECIFIED:
            if request.state not in VISIBLE:
                raise errors.InvalidArgument.field("state", "is not a JobState")
            state = VISIBLE[request.state]
        pages = paging(self.tokens, request, "jobs", namespace, name, str(request.state))
        after = pages.after_row(_is_job_key)
        page = await self.queues.list_jobs(namespace, name, state, pages.limit, after)
        now = datetime.now(UTC)
        return queue_pb2.ListJobsResponse(
            jobs=[job_to_proto(job, now) for job in page.items],
            next_page_token=pages.next_token(page),
        )

    async def RetryJob(self, request: queue_pb2.RetryJobRequest, context: Context) -> queue_pb2.Job:
        job = await self.queues.retry(*target(request), actor=actor(context))
        return job_to_proto(job, datetime.now(UTC))

    async def _set_paused(
        self, request: Any, paused: bool, context: Context
    ) -> queue_pb2.QueueStats:
        namespace = validation.namespace(request.namespace)
        name = validation.collection(request.queue, "queue")
        stats = await self.queues.set_paused(namespace, name, paused, actor=actor(context))
        return stats_to_proto(stats)

    async def PauseQueue(
        self, request: queue_pb2.PauseQueueRequest, context: Context
    ) -> queue_pb2.QueueStats:
        return await self._set_paused(request, True, context)

    async def ResumeQueue(
        self, request: queue_pb2.ResumeQueueRequest, context: Context
    ) -> queue_pb2.QueueStats:
        return await self._set_paused(request, False, context)

    async def GetQueueStats(
        self, request: queue_pb2.GetQueueStatsRequest, context: Context
    ) -> queue_pb2.QueueStats:
        stats = await self.queues.stats(
            validation.namespace(request.namespace), validation.collection(request.queue, "queue")
        )
        return stats_to_proto(stats)

    async def ListQueues(
        self, request: queue_pb2.ListQueuesRequest, context: Context
    ) -> queue_pb2.ListQueuesResponse:
        namespace = validation.namespace(request.namespace)
        pages = paging(self.tokens, request, "queues", namespace)
        page = await self.queues.list_queues(namespace, pages.limit, pages.after(str))
        return queue_pb2.ListQueuesResponse(
            queues=[stats_to_proto(stats) for stats in page.items],
            next_page_token=pages.next_token(page),
        )


def stats_to_proto(stats: queue.QueueStats) -> queue_pb2.QueueStats:
    """Domain stats as the wire message."""
    counts = stats.counts
    message = queue_pb2.QueueStats(
        namespace=stats.namespace,
        queue=stats.queue,
        paused=stats.paused,
        available=counts.get(queue.Visible.AVAILABLE, 0),
        scheduled=counts.get(queue.Visible.SCHEDULED, 0),
        leased=counts.get(queue.Visible.LEASED, 0),
        completed=counts.get(queue.Visible.COMPLETED, 0),
        dead=counts.get(queue.Visible.DEAD, 0),
        cancelled=counts.get(queue.Visible.CANCELLED, 0),
        expired_leases=stats.expired_leases,
    )
    message.oldest_available_age.FromTimedelta(stats.oldest_available_age)
    message.expiry_window.FromTimedelta(queue.EXPIRY_WINDOW)
    return message
