"""QueueService: validates requests, turns them into QueueStore calls, and back."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import structlog
from google.protobuf import duration_pb2

from strata.v1 import queue_pb2, queue_pb2_grpc, transaction_pb2
from strata_server.api.convert import (
    actor,
    data_from_struct,
    fingerprint,
    set_timestamp,
    to_datetime,
)
from strata_server.api.errors import status_code, streaming, unary
from strata_server.api.handoff import Parked, Parking
from strata_server.core import errors, queue, validation
from strata_server.core.idle import Probed
from strata_server.core.jsontypes import serialize
from strata_server.core.models import Actor, Idempotency
from strata_server.core.paging import PageTokens, page_size, query_digest
from strata_server.storage.ports import Events, Listener, QueueStore, Recheck

Context = grpc.aio.ServicerContext[Any, Any]
log = structlog.get_logger("strata.queue")
DEFAULT_LEASE = timedelta(seconds=30)
DUE_CHECK_SECONDS = 1.0
"""How often a queue that consumers wait on is re-checked for a job a lease could
take while it holds jobs (one query per queue, shared by all its waiting
consumers): it covers what no write announces, scheduled jobs coming due and leases
expiring. A queue holding no ready or leased job rests until a write wakes it
(enqueues on replicas whose wakeups do not reach this one: the registry's degraded
interval)."""

_STATES = {
    queue.Visible.AVAILABLE: queue_pb2.JOB_STATE_AVAILABLE,
    queue.Visible.SCHEDULED: queue_pb2.JOB_STATE_SCHEDULED,
    queue.Visible.LEASED: queue_pb2.JOB_STATE_LEASED,
    queue.Visible.COMPLETED: queue_pb2.JOB_STATE_COMPLETED,
    queue.Visible.DEAD: queue_pb2.JOB_STATE_DEAD,
    queue.Visible.CANCELLED: queue_pb2.JOB_STATE_CANCELLED,
}
_VISIBLE = {value: key for key, value in _STATES.items()}


def job_state(state: queue.Visible) -> queue_pb2.JobState.ValueType:
    """The wire enum of a visible job state."""
    return _STATES[state]


def topic(namespace: str, queue_name: str) -> str:
    """The events topic that wakes consumers of one queue."""
    return f"queue:{namespace}:{queue_name}"


def handoff_topic(waiter: str) -> str:
    """The (local) events topic that tells a parked consumer an enqueue leased a job
    for it (api.handoff)."""
    return f"handoff:{waiter}"


def subscription_topic(subscription: str) -> str:
    """The events topic that tells a SubscribeJobs stream one of its jobs was acked,
    failed or released (so it may lease more)."""
    return f"subscription:{subscription}"


def voided_topic(namespace: str, queue_name: str) -> str:
    """The events topic that tells a queue's SubscribeJobs streams that a lease was
    voided without its holder's token (CancelJob), so they re-check what they hold."""
    return f"voided:{namespace}:{queue_name}"


MAX_DELAY = timedelta(days=3650)
"""Longest delay before a job runs (enqueue delay, fail retry_delay)."""


def _duration(value: duration_pb2.Duration, field: str, limit: timedelta = MAX_DELAY) -> timedelta:
    try:
        result = value.ToTimedelta()
    except (OverflowError, ValueError):
        result = None
    if result is None or result > limit:
        raise errors.InvalidArgument.field(field, f"must be at most {limit.days} days")
    return result


def _set_duration(target: duration_pb2.Duration, value: timedelta) -> None:
    target.FromTimedelta(value)


def job_to_proto(job: queue.Job, now: datetime) -> queue_pb2.Job:
    """A domain job as the wire message, with its state as seen at `now`."""
    message = queue_pb2.Job(
        namespace=job.namespace,
        queue=job.queue,
        id=job.id,
        state=_STATES[job.visible_state(now)],
        priority=job.priority,
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        lease_token=job.lease_token or "",
        last_error=job.last_error or "",
        unique_key=job.unique_key or "",
    )
    message.payload.update(job.payload)
    if job.result is not None:
        message.result.update(job.result)
    set_timestamp(message.run_time, job.run_time)
    set_timestamp(message.create_time, job.create_time)
    set_timestamp(message.update_time, job.update_time)
    if job.lease_expire_time is not None:
        set_timestamp(message.lease_expire_time, job.lease_expire_time)
    if job.finish_time is not None:
        set_timestamp(message.finish_time, job.finish_time)
    if job.retry_backoff is not None:
        _set_duration(message.retry_backoff, job.retry_backoff)
    return message


def new_job(
    request: queue_pb2.EnqueueRequest | transaction_pb2.EnqueueJobWrite,
    max_bytes: int,
    now: datetime,
    prefix: str = "",
) -> queue.NewJob:
    """Validate one enqueue (alone or inside a batch)."""
    name = validation.collection(request.queue, f"{prefix}queue")
    payload = data_from_struct(request.payload, f"{prefix}payload")
    serialize(payload, max_bytes, f"{prefix}payload", "job payload")
    if request.HasField("run_time") and request.HasField("delay"):
        raise errors.InvalidArgument.field(f"{prefix}delay", "give run_time or delay, not both")
    run_time = to_datetime(request.run_time, request.HasField("run_time"), f"{prefix}run_time")
    if request.HasField("delay"):
        delay = _duration(request.delay, f"{prefix}delay")
        if delay < timedelta(0):
            raise errors.InvalidArgument.field(f"{prefix}delay", "must not be negative")
        run_time = now + delay
    max_attempts = request.max_attempts or queue.DEFAULT_MAX_ATTEMPTS
    if not 1 <= max_attempts <= queue.MAX_ATTEMPTS_LIMIT:
        raise errors.InvalidArgument.field(
            f"{prefix}max_attempts", f"must be between 1 and {queue.MAX_ATTEMPTS_LIMIT}"
        )
    unique_key = request.unique_key or None
    if unique_key is not None and (
        len(unique_key) > queue.MAX_UNIQUE_KEY or not unique_key.isprintable()
    ):
        raise errors.InvalidArgument.field(
            f"{prefix}unique_key", f"must be at most {queue.MAX_UNIQUE_KEY} printable characters"
        )
    backoff = None
    if request.HasField("retry_backoff"):
        backoff = _duration(request.retry_backoff, f"{prefix}retry_backoff")
        if not timedelta(0) < backoff <= queue.MAX_BACKOFF:
            raise errors.InvalidArgument.field(
                f"{prefix}retry_backoff", "must be positive and at most 1 hour"
            )
    return queue.NewJob(
        name, payload, request.priority, run_time, max_attempts, unique_key, backoff
    )


def _runnable(job: queue.NewJob) -> bool:
    """Whether a new job may be leased as soon as it is inserted."""
    return job.run_time is None or job.run_time <= datetime.now(UTC)


def _lease(request: Any, field: str = "lease_duration") -> timedelta:
    if not request.HasField(field):
        return DEFAULT_LEASE
    return queue.lease_duration(_duration(getattr(request, field), field), field)


def _token(value: str, field: str = "lease_token") -> str:
    if not value:
        raise errors.InvalidArgument.field(field, "is required")
    return value


class QueueService(queue_pb2_grpc.QueueServiceServicer):
    """gRPC face of a QueueStore, with long polls woken through an Events port."""

    def __init__(
        self, store: QueueStore, events: Events, max_payload_bytes: int, *, tokens: PageTokens
    ) -> None:
        self._store = store
        self._tokens = tokens
        self._events = events
        self._max_bytes = max_payload_bytes
        self._parking = Parking()
        self._releases: set[asyncio.Task[None]] = set()

    async def _enqueue(
        self, namespace: str, jobs: list[queue.NewJob], request: Any, context: Context
    ) -> list[queue.Job]:
        request_id = validation.request_id(request.request_id)
        idempotency = Idempotency(request_id, fingerprint(request)) if request_id else None
        wakes = sorted({topic(namespace, job.queue) for job in jobs})
        # With PostgreSQL events the insert's own commit tells the other replicas.
        notices = [self._events.commit_notice(wake) for wake in wakes]
        announced = all(notice is not None for notice in notices)
        sent = [notice for notice in notices if notice is not None] if announced else ()
        who = actor(context.invocation_metadata())
        first = jobs[0]
        parked = None
        if len(jobs) == 1 and idempotency is None and _runnable(first):
            parked = self._parking.take(namespace, first.queue)
        if parked is None:
            created = await self._store.enqueue(
                namespace, jobs, actor=who, idempotency=idempotency, notices=sent
            )
        else:
            handing = asyncio.ensure_future(
                self._store.enqueue_and_lease(
                    namespace, first, parked.handoff(), actor=who, notices=sent
                )
            )
            # Hand the jobs over even if this call is cancelled meanwhile.
            handing.add_done_callback(functools.partial(self._hand, namespace, parked))
            job, leased = await asyncio.shield(handing)
            handed = next((j for j in leased if j.id == job.id), None)
            if handed is not None:
                return [queue.without_token(handed)]  # leased already: no one to wake
            created = [job]
        for wake in wakes:
            self._events.notify(wake, announced=announced)
        return created

    def _hand(
        self,
        namespace: str,
        parked: Parked,
        handing: asyncio.Future[tuple[queue.Job, list[queue.Job]]],
    ) -> None:
        """Give a taken consumer the jobs leased for it (none when the enqueue
        failed), or release them when the consumer has ended."""
        assert parked.taken is not None
        failed = handing.cancelled() or handing.exception() is not None
        leased = [] if failed else handing.result()[1]
        if not parked.gone:
            parked.taken.set_result(leased)
            self._events.notify(handoff_topic(parked.waiter), announced=True)
        else:
            self._release_later(namespace, leased, parked.actor)

    def _release_later(self, namespace: str, jobs: list[queue.Job], who: Actor) -> None:
        """Release, in a task of its own, jobs handed to a consumer that ended."""
        if jobs:
            task = asyncio.ensure_future(self._release(namespace, jobs, who))
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)

    async def _release(self, namespace: str, jobs: list[queue.Job], who: Actor) -> None:
        """Release jobs leased for a consumer that ended before it could take them:
        runnable again at once. One that cannot be released (the store is down)
        comes back when its lease expires."""
        for job in jobs:
            try:
                await self._store.release_job(namespace, job.id, job.lease_token or "", actor=who)
            except errors.StrataError as error:
                log.warning("could not release a handed-off job", job=job.id, error=str(error))

    @unary
    async def Enqueue(self, request: queue_pb2.EnqueueRequest, context: Context) -> queue_pb2.Job:
        namespace = validation.namespace(request.namespace)
        now = datetime.now(UTC)
        [job] = await self._enqueue(
            namespace, [new_job(request, self._max_bytes, now)], request, context
        )
        return job_to_proto(job, datetime.now(UTC))  # the store stamped it after `now`

    @unary
    async def BatchEnqueue(
        self, request: queue_pb2.BatchEnqueueRequest, context: Context
    ) -> queue_pb2.BatchEnqueueResponse:
        namespace = validation.namespace(request.namespace)
        if not 1 <= len(request.jobs) <= queue.MAX_BATCH_JOBS:
            raise errors.InvalidArgument.field(
                "jobs", f"must hold 1 to {queue.MAX_BATCH_JOBS} jobs"
            )
        now = datetime.now(UTC)
        jobs = []
        for index, item in enumerate(request.jobs):
            try:
                jobs.append(new_job(item, self._max_bytes, now, f"jobs[{index}]."))
            except errors.StrataError as error:
                error.metadata.setdefault("job_index", str(index))
                raise
        created = await self._enqueue(namespace, jobs, request, context)
        return queue_pb2.BatchEnqueueResponse(
            jobs=[job_to_proto(job, datetime.now(UTC)) for job in created]
        )

    @unary
    async def LeaseJobs(
        self, request: queue_pb2.LeaseJobsRequest, context: Context
    ) -> queue_pb2.LeaseJobsResponse:
        namespace = validation.namespace(request.namespace)
        name = validation.collection(request.queue, "queue")
        if not 1 <= request.max_jobs <= queue.MAX_LEASE_JOBS:
            raise errors.InvalidArgument.field(
                "max_jobs", f"must be between 1 and {queue.MAX_LEASE_JOBS}"
            )
        lease = _lease(request)
        wait = _duration(request.wait, "wait") if request.HasField("wait") else timedelta(0)
        if not timedelta(0) <= wait <= queue.MAX_WAIT:
            raise errors.InvalidArgument.field("wait", "must be between 0 and 60 seconds")
        who = actor(context.invocation_metadata())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait.total_seconds()
        # Listening before the first lease: an enqueue between an empty lease and
        # the wait still wakes this poll.
        waiter = validation.new_id()
        jobs_topic = topic(namespace, name)
        with self._events.listen(
            jobs_topic, handoff_topic(waiter), recheck=self._due_check(namespace, name)
        ) as wakeups:
            jobs = await self._store.lease_jobs(namespace, name, request.max_jobs, lease, actor=who)
            while not jobs and (remaining := deadline - loop.time()) > 0:
                # Parked meanwhile: an enqueue here may lease its job for this poll.
                parked = Parked(waiter, "", lease, who)
                _, jobs = await self._park(namespace, name, parked, wakeups, remaining)
                if not jobs:
                    jobs = await self._store.lease_jobs(
                        namespace, name, request.max_jobs, lease, actor=who
                    )
            now = datetime.now(UTC)
            return queue_pb2.LeaseJobsResponse(jobs=[job_to_proto(j, now) for j in jobs])

    @streaming
    async def SubscribeJobs(
        self, request: queue_pb2.SubscribeJobsRequest, context: Context
    ) -> AsyncIterator[queue_pb2.Job]:
        namespace = validation.namespace(request.namespace)
        name = validation.collection(request.queue, "queue")
        if not 1 <= request.max_in_flight <= queue.MAX_LEASE_JOBS:
            raise errors.InvalidArgument.field(
                "max_in_flight", f"must be between 1 and {queue.MAX_LEASE_JOBS}"
            )
        lease = _lease(request)
        who = actor(context.invocation_metadata())
        # The stream's jobs carry lease tokens prefixed with its id, so that AckJob
        # and FailJob on any replica can wake it through `own` (see _settled).
        subscription = validation.new_id()
        jobs_topic, own = topic(namespace, name), subscription_topic(subscription)
        held: dict[str, str] = {}  # job id -> lease token: a superset of what it holds
        recheck = False
        loop = asyncio.get_running_loop()
        # When a held lease may have expired (or been cancelled) unannounced: one
        # lease duration after the last check, at the latest.
        check_held_at = float("inf")
        voided = voided_topic(namespace, name)
        with self._events.listen(
            jobs_topic,
            own,
            voided,
            handoff_topic(subscription),
            recheck=self._due_check(namespace, name),
        ) as wakeups:
            while True:
                if held and (recheck or loop.time() >= check_held_at):
                    still = await self._store.held_leases(namespace, held)
                    held = {id: token for id, token in held.items() if id in still}
                    check_held_at = loop.time() + lease.total_seconds()
                free = request.max_in_flight - len(held)
                jobs = []
                if free > 0:
                    jobs = await self._store.lease_jobs(
                        namespace, name, free, lease, actor=who, token_prefix=subscription
                    )
                if not jobs:
                    # Only a wakeup on `own`, or a held lease's possible expiry, can
                    # shrink `held`; an idle stream holding nothing waits for a
                    # wakeup alone. Parked meanwhile, an enqueue here may lease for it.
                    parked = Parked(subscription, subscription, lease, who) if free > 0 else None
                    within = max(0.0, check_held_at - loop.time()) if held else None
                    woke, jobs = await self._park(namespace, name, parked, wakeups, within)
                    recheck = own in woke or voided in woke
                if jobs:
                    if not held:
                        check_held_at = loop.time() + lease.total_seconds()
                    now = datetime.now(UTC)
                    for job in jobs:
                        held[job.id] = job.lease_token or ""
                        yield job_to_proto(job, now)

    def _due_check(self, namespace: str, name: str) -> Recheck:
        """The queue's shared re-check: whether a lease could take a job now."""
        return Recheck(
            topic(namespace, name),
            functools.partial(self._availability, namespace, name),
            every=DUE_CHECK_SECONDS,
        )

    async def _availability(self, namespace: str, name: str) -> Probed:
        """The re-check's probe: moving while the queue holds jobs that may come due."""
        found = await self._store.availability(namespace, name)
        return Probed(found.now, moving=found.held)

    async def _park(
        self,
        namespace: str,
        name: str,
        parked: Parked | None,
        wakeups: Listener,
        within: float | None,
    ) -> tuple[set[str], list[queue.Job]]:
        """Wait up to `within` seconds (None: until woken) for a wakeup, parked on the queue when
        `parked` is given. Returns the topics woken and the jobs an enqueue leased
        for the consumer meanwhile."""
        if parked is None:
            return await wakeups.wait(within), []
        self._parking.park(namespace, name, parked)
        handed: list[queue.Job] | None = None
        try:
            woke = await wakeups.wait(within)
            if parked.taken is None:
                return woke, []
            # Taken: the enqueue is one round trip from done. Shielded, so that
            # this consumer ending cancels its wait, not the hand-over.
            handed = await asyncio.shield(parked.taken)
            return woke, handed
        finally:
            self._parking.unpark(namespace, name, parked)
            if parked.taken is not None and handed is None:  # ended while taken
                if parked.taken.done():
                    self._release_later(namespace, parked.taken.result(), parked.actor)
                else:
                    parked.gone = True

    def _settled(self, job: queue.Job, token: str) -> None:
        """Wake whoever may lease after an ack, fail or release under `token`: the
        SubscribeJobs stream the lease went to, and waiting consumers when the job
        is runnable again at once."""
        subscription = queue.subscription_of(token)
        if subscription is not None:
            self._events.notify(subscription_topic(subscription))
        if job.visible_state(datetime.now(UTC)) is queue.Visible.AVAILABLE:
            self._events.notify(topic(job.namespace, job.queue))

    @unary
    async def AckJob(self, request: queue_pb2.AckJobRequest, context: Context) -> queue_pb2.Job:
        result = data_from_struct(request.result, "result") if request.HasField("result") else None
        if result is not None:
            serialize(result, self._max_bytes, "result", "job result")
        token = _token(request.lease_token)
        job = await self._store.ack_job(
            validation.namespace(request.namespace),
            validation.entity_id(request.id),
            token,
            result,
            actor=actor(context.invocation_metadata()),
        )
        self._settled(job, token)
        return job_to_proto(job, datetime.now(UTC))

    @unary
    async def AckJobs(
        self, request: queue_pb2.AckJobsRequest, context: Context
    ) -> queue_pb2.AckJobsResponse:
        namespace = validation.namespace(request.namespace)
        if not 1 <= len(request.acks) <= queue.MAX_BATCH_JOBS:
            raise errors.InvalidArgument.field(
                "acks", f"must hold 1 to {queue.MAX_BATCH_JOBS} acks"
            )
        acks: list[queue.Ack] = []
        for index, item in enumerate(request.acks):
            field = f"acks[{index}]"
            result = None
            if item.HasField("result"):
                result = data_from_struct(item.result, f"{field}.result")
                serialize(result, self._max_bytes, f"{field}.result", "job result")
            acks.append(
                queue.Ack(
                    validation.entity_id(item.id, f"{field}.id"),
                    _token(item.lease_token, f"{field}.lease_token"),
                    result,
                )
            )
        if len({ack.id for ack in acks}) < len(acks):
            raise errors.InvalidArgument.field("acks", "names a job id more than once")
        outcomes = await self._store.ack_jobs(
            namespace, acks, actor=actor(context.invocation_metadata())
        )
        now = datetime.now(UTC)
        response = queue_pb2.AckJobsResponse()
        for ack, outcome in zip(acks, outcomes, strict=True):
            entry = response.results.add()
            if isinstance(outcome, errors.StrataError):
                entry.error_code = status_code(outcome).name
                entry.error_reason = outcome.reason
                entry.error_message = outcome.message
            else:
                self._settled(outcome, ack.token)
                entry.job.CopyFrom(job_to_proto(outcome, now))
        return response

    @unary
    async def FailJob(self, request: queue_pb2.FailJobRequest, context: Context) -> queue_pb2.Job:
        namespace = validation.namespace(request.namespace)
        id = validation.entity_id(request.id)
        token = _token(request.lease_token)
        who = actor(context.invocation_metadata())
        if request.release:
            if request.error or request.HasField("retry_delay"):
                field = "error" if request.error else "retry_delay"
                raise errors.InvalidArgument.field(field, "must be empty when releasing a job")
            job = await self._store.release_job(namespace, id, token, actor=who)
            self._settled(job, token)
            return job_to_proto(job, datetime.now(UTC))
        delay = None
        if request.HasField("retry_delay"):
            delay = _duration(request.retry_delay, "retry_delay")
            if delay < timedelta(0):
                raise errors.InvalidArgument.field("retry_delay", "must not be negative")
        job = await self._store.fail_job(
            namespace, id, token, request.error[: queue.MAX_ERROR_CHARS], delay, actor=who
        )
        self._settled(job, token)  # retry_delay 0 makes it runnable at once
        return job_to_proto(job, datetime.now(UTC))

    @unary
    async def ExtendLease(
        self, request: queue_pb2.ExtendLeaseRequest, context: Context
    ) -> queue_pb2.Job:
        job = await self._store.extend_lease(
            validation.namespace(request.namespace),
            validation.entity_id(request.id),
            _token(request.lease_token),
            _lease(request),
            actor=actor(context.invocation_metadata()),
        )
        return job_to_proto(job, datetime.now(UTC))

    @unary
    async def CancelJob(
        self, request: queue_pb2.CancelJobRequest, context: Context
    ) -> queue_pb2.Job:
        namespace = validation.namespace(request.namespace)
        job = await self._store.cancel_job(
            namespace, validation.entity_id(request.id), actor=actor(context.invocation_metadata())
        )
        # Its lease, if it had one, is void: the stream holding it has a free slot.
        self._events.notify(voided_topic(namespace, job.queue))
        return job_to_proto(job, datetime.now(UTC))

    @unary
    async def GetJob(self, request: queue_pb2.GetJobRequest, context: Context) -> queue_pb2.Job:
        job = await self._store.get_job(
            validation.namespace(request.namespace), validation.entity_id(request.id)
        )
        return job_to_proto(job, datetime.now(UTC))

    @unary
    async def ListJobs(
        self, request: queue_pb2.ListJobsRequest, context: Context
    ) -> queue_pb2.ListJobsResponse:
        namespace = validation.namespace(request.namespace)
        name = validation.collection(request.queue, "queue")
        state = None
        if request.state != queue_pb2.JOB_STATE_UNSPECIFIED:
            if request.state not in _VISIBLE:
                raise errors.InvalidArgument.field("state", "is not a JobState")
            state = _VISIBLE[request.state]
        limit = page_size(request.page_size)
        digest = query_digest("jobs", namespace, name, str(request.state))
        after = None
        if request.page_token:
            after, _ = self._tokens.decode(request.page_token, digest)
            if (
                after is None
                or len(after) != 2
                or not isinstance(after[0], int | datetime)
                or isinstance(after[0], bool)
                or not isinstance(after[1], str)
            ):
                raise errors.InvalidArgument.field("page_token", "is not a token for this list")
        page = await self._store.list_jobs(namespace, name, state, limit, after)
        now = datetime.now(UTC)
        return queue_pb2.ListJobsResponse(
            jobs=[job_to_proto(job, now) for job in page.items],
            next_page_token=self._tokens.encode(digest, tuple(page.last_key))
            if page.last_key is not None
            else "",
        )

    @unary
    async def RetryJob(self, request: queue_pb2.RetryJobRequest, context: Context) -> queue_pb2.Job:
        namespace = validation.namespace(request.namespace)
        job = await self._store.retry_job(
            namespace, validation.entity_id(request.id), actor=actor(context.invocation_metadata())
        )
        self._events.notify(topic(namespace, job.queue))
        return job_to_proto(job, datetime.now(UTC))

    async def _set_paused(
        self, request: Any, paused: bool, context: Context
    ) -> queue_pb2.QueueStats:
        namespace = validation.namespace(request.namespace)
        name = validation.collection(request.queue, "queue")
        await self._store.set_paused(
            namespace, name, paused, actor=actor(context.invocation_metadata())
        )
        if not paused:
            self._events.notify(topic(namespace, name))
        return stats_to_proto(await self._store.queue_stats(namespace, name))

    @unary
    async def PauseQueue(
        self, request: queue_pb2.PauseQueueRequest, context: Context
    ) -> queue_pb2.QueueStats:
        return await self._set_paused(request, True, context)

    @unary
    async def ResumeQueue(
        self, request: queue_pb2.ResumeQueueRequest, context: Context
    ) -> queue_pb2.QueueStats:
        return await self._set_paused(request, False, context)

    @unary
    async def GetQueueStats(
        self, request: queue_pb2.GetQueueStatsRequest, context: Context
    ) -> queue_pb2.QueueStats:
        stats = await self._store.queue_stats(
            validation.namespace(request.namespace), validation.collection(request.queue, "queue")
        )
        return stats_to_proto(stats)


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
    _set_duration(message.oldest_available_age, stats.oldest_available_age)
    _set_duration(message.expiry_window, queue.EXPIRY_WINDOW)
    return message
