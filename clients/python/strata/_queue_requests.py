"""The job queue's calls (QueueService), described without doing any I/O.

Like the record calls of `strata._record_requests`, each call builder below is one
method of `Client` and `AsyncClient`, with its signature and docstring, and
returns the `Rpc` (or `PagedRpc`) that the clients send.

Which calls are retried after UNAVAILABLE: the reads (`get_job`, `list_jobs`,
`list_queues`, `queue_stats`) and `pause_queue` / `resume_queue` (setting a flag
twice sets it once) always; `enqueue` and `batch_enqueue` only with a `request_id`. Never
`lease_jobs` (a lost response would leave jobs leased to nobody until the lease
expires), `ack_job`, `fail_job`, `extend_lease` (a repeat after a success that
was not heard fails with LEASE_LOST, hiding the success), `cancel_job` or
`retry_job` (a repeat fails with JOB_FINISHED / JOB_NOT_RETRYABLE).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from google.protobuf.message import Message

from strata import _job_args
from strata._convert import duration_from_timedelta, struct_from_dict, timestamp_from_datetime
from strata._job_args import EnqueueSpec, JobRef
from strata._rpc import PagedRpc, Rpc, namespaced_call, paged_call
from strata.errors import StrataError, from_outcome
from strata.jobs import JOB_STATES, Job, JobState, QueueStats
from strata.v1 import queue_pb2

DEFAULT_LEASE = timedelta(seconds=30)
"""How long a lease lasts when the caller does not say."""


# The calls; each docstring is the documentation of the client method.


def enqueue(
    queue: str,
    payload: Mapping[str, Any],
    *,
    priority: int = 0,
    run_time: datetime | None = None,
    delay: timedelta | None = None,
    max_attempts: int = 0,
    unique_key: str | None = None,
    retry_backoff: timedelta | None = None,
    request_id: str | None = None,
    namespace: str | None = None,
) -> Rpc[queue_pb2.Job, Job]:
    """Add a job holding `payload` (a JSON object) to `queue` and return it.

    `priority`: higher runs first. `run_time` (timezone-aware) or `delay` (a
    timedelta): not leased before then. `max_attempts`: attempts before the job
    is dead, 1..1000 (0: the server's 10). `unique_key`: while an unfinished job
    of the queue has that key, return that job instead of adding one.
    `retry_backoff`: first retry delay, doubled for each later retry (None: the
    server's 1 s). With a `request_id` (see `strata.new_request_id`) a retry
    returns the first result and adds nothing, so the client retries it after
    UNAVAILABLE; without one it is never retried. Raises InvalidArgument,
    ResourceExhausted (payload too large).
    """
    request = queue_pb2.EnqueueRequest(
        queue=queue,
        payload=struct_from_dict(payload),
        priority=priority,
        run_time=timestamp_from_datetime(run_time, "run_time"),
        delay=duration_from_timedelta(delay, "delay"),
        max_attempts=max_attempts,
        unique_key=unique_key or "",
        request_id=request_id or "",
        retry_backoff=duration_from_timedelta(retry_backoff, "retry_backoff"),
    )
    return namespaced_call(
        "queue", "Enqueue", request, Job.from_proto, namespace, idempotent=bool(request_id)
    )


def batch_enqueue(
    queue: str,
    payloads: Iterable[Mapping[str, Any]] | None = None,
    *,
    specs: Iterable[EnqueueSpec] | None = None,
    request_id: str | None = None,
    namespace: str | None = None,
) -> Rpc[queue_pb2.BatchEnqueueResponse, list[Job]]:
    """Add up to 1000 jobs to `queue` in one transaction, all or none, and return
    them in order.

    Give either `payloads`, one JSON object per job, each enqueued with the
    defaults, or `specs`: dicts with a `payload` and any options of `enqueue`
    (`{"payload": {...}, "priority": 5, "delay": timedelta(minutes=1)}`). A bad
    job raises with its position in `error.metadata["job_index"]`, and nothing is
    added. With a `request_id` the batch is idempotent and retried after
    UNAVAILABLE; without one it is never retried.
    """
    if (payloads is None) == (specs is None):
        raise TypeError("give either payloads or specs")
    if payloads is not None:
        calls = [enqueue(queue, payload) for payload in _job_args.items(payloads, "payloads")]
    else:
        calls = [enqueue(queue, **spec) for spec in _job_args.items(specs or (), "specs")]
    request = queue_pb2.BatchEnqueueRequest(
        jobs=[cast(queue_pb2.EnqueueRequest, call.request("")) for call in calls],
        request_id=request_id or "",
    )
    return namespaced_call(
        "queue", "BatchEnqueue", request, _jobs_of, namespace, idempotent=bool(request_id)
    )


def lease_jobs(
    queue: str,
    max_jobs: int = 1,
    *,
    lease_duration: timedelta = DEFAULT_LEASE,
    wait: timedelta = timedelta(0),
    namespace: str | None = None,
) -> Rpc[queue_pb2.LeaseJobsResponse, list[Job]]:
    """Lease up to `max_jobs` (1..1000) runnable jobs of `queue` for
    `lease_duration` (1 s to 12 h): highest priority first, then earliest
    run_time, then oldest. Each comes back with its `lease_token`, which
    `ack_job`, `fail_job` and `extend_lease` need.

    When no job is runnable, waits up to `wait` (at most 60 s) for one: a long
    poll. The call's deadline is `wait` plus the client's timeout. Returns an
    empty list when nothing came, or when the queue is paused. Never retried:
    a lost response would leave its jobs leased until the lease expires.
    """
    request = queue_pb2.LeaseJobsRequest(
        queue=queue,
        max_jobs=max_jobs,
        lease_duration=duration_from_timedelta(lease_duration, "lease_duration"),
        wait=duration_from_timedelta(wait, "wait"),
    )
    return namespaced_call(
        "queue",
        "LeaseJobs",
        request,
        _jobs_of,
        namespace,
        idempotent=False,
        wait=wait.total_seconds(),
    )


def ack_job(
    job: JobRef,
    lease_token: str | None = None,
    result: Mapping[str, Any] | None = None,
    *,
    namespace: str | None = None,
) -> Rpc[queue_pb2.Job, Job]:
    """Complete a leased job, keeping `result` (a JSON object) with it, and
    return it. `job` is the `Job` that `lease_jobs` returned (its lease token is
    used), or an id with its `lease_token`.

    Raises LeaseLost when the token is not the job's current lease (the lease
    expired, or the job was cancelled): the job is no longer the caller's to
    complete. Raises NotFound for an unknown job. Never retried.
    """
    job_id, namespace = _job_args.reference(job, namespace)
    token = _job_args.lease_token(job, lease_token)
    request = queue_pb2.AckJobRequest(
        id=job_id,
        lease_token=token,
        result=struct_from_dict(result) if result is not None else None,
    )
    return namespaced_call("queue", "AckJob", request, Job.from_proto, namespace, idempotent=False)


def ack_jobs(
    jobs: Sequence[Job | tuple[Job, Mapping[str, Any] | None]],
    *,
    namespace: str | None = None,
) -> Rpc[queue_pb2.AckJobsResponse, list[Job | StrataError]]:
    """Complete many leased jobs in one call (up to 1000), each on its own: each
    item is a `Job` that `lease_jobs` returned, or a `(job, result)` pair. Returns,
    in the same order, each job completed or the error `ack_job` would have
    raised for it (LeaseLost, NotFound); one stale token does not stop the
    others. Jobs of one call share a namespace (`namespace=`, else the first
    job's). Never retried."""
    acks = []
    for item in jobs:
        job, result = item if isinstance(item, tuple) else (item, None)
        job_id, job_namespace = _job_args.reference(job, None)
        namespace = namespace or job_namespace
        acks.append(
            queue_pb2.JobAck(
                id=job_id,
                lease_token=_job_args.lease_token(job, None),
                result=struct_from_dict(result) if result is not None else None,
            )
        )
    request = queue_pb2.AckJobsRequest(acks=acks)
    return namespaced_call("queue", "AckJobs", request, _acked, namespace, idempotent=False)


def _acked(response: queue_pb2.AckJobsResponse) -> list[Job | StrataError]:
    return [
        Job.from_proto(item.job)
        if not item.error_code
        else from_outcome(item.error_code, item.error_reason, item.error_message)
        for item in response.results
    ]


def fail_job(
    job: JobRef,
    error: str | BaseException,
    lease_token: str | None = None,
    retry_delay: timedelta | None = None,
    *,
    namespace: str | None = None,
) -> Rpc[queue_pb2.Job, Job]:
    """Record a failed attempt of a leased job and return the job: it is retried
    after its backoff (or after `retry_delay`), or is dead after max_attempts.

    `error` is kept as the job's `last_error`: a string, or an exception, kept as
    its type and message. `job` and `lease_token` are as for `ack_job`. Raises
    LeaseLost for a stale token, NotFound for an unknown job. Never retried.
    """
    job_id, namespace = _job_args.reference(job, namespace)
    token = _job_args.lease_token(job, lease_token)
    request = queue_pb2.FailJobRequest(
        id=job_id,
        lease_token=token,
        error=_job_args.error_text(error),
        retry_delay=duration_from_timedelta(retry_delay, "retry_delay"),
    )
    return namespaced_call("queue", "FailJob", request, Job.from_proto, namespace, idempotent=False)


def release_job(
    job: JobRef, lease_token: str | None = None, *, namespace: str | None = None
) -> Rpc[queue_pb2.Job, Job]:
    """Give a leased job back unworked and return it: runnable again at once, and
    the attempt its lease started does not count (FailJob with `release`). For a
    consumer shutting down with jobs it has not started. `job` and `lease_token`
    are as for `ack_job`. Raises LeaseLost for a stale token, NotFound for an
    unknown job. Never retried."""
    job_id, namespace = _job_args.reference(job, namespace)
    request = queue_pb2.FailJobRequest(
        id=job_id, lease_token=_job_args.lease_token(job, lease_token), release=True
    )
    return namespaced_call("queue", "FailJob", request, Job.from_proto, namespace, idempotent=False)


def extend_lease(
    job: JobRef,
    lease_duration: timedelta,
    lease_token: str | None = None,
    *,
    namespace: str | None = None,
) -> Rpc[queue_pb2.Job, Job]:
    """Extend a lease (a heartbeat) to now + `lease_duration` (1 s to 12 h) and
    return the job, with the same lease token. `job` and `lease_token` are as for
    `ack_job`. Raises LeaseLost for a stale token, NotFound for an unknown job.
    Never retried."""
    job_id, namespace = _job_args.reference(job, namespace)
    token = _job_args.lease_token(job, lease_token)
    request = queue_pb2.ExtendLeaseRequest(
        id=job_id,
        lease_token=token,
        lease_duration=duration_from_timedelta(lease_duration, "lease_duration"),
    )

    def parse(message: queue_pb2.Job) -> Job:
        job = Job.from_proto(message)
        return job if job.lease_token else dataclasses.replace(job, lease_token=token)

    return namespaced_call("queue", "ExtendLease", request, parse, namespace, idempotent=False)


def cancel_job(job: JobRef, *, namespace: str | None = None) -> Rpc[queue_pb2.Job, Job]:
    """Cancel a job that has not finished and return it; if it is leased, its
    holder's next ack fails with LeaseLost. Raises FailedPrecondition (reason
    JOB_FINISHED) for a completed, dead or cancelled job, NotFound for an unknown
    one. Never retried."""
    return _by_id("CancelJob", queue_pb2.CancelJobRequest, job, namespace, False)


def get_job(job: JobRef, *, namespace: str | None = None) -> Rpc[queue_pb2.Job, Job]:
    """Return a job (by id, or a fresh copy of a `Job`). Raises NotFound."""
    return _by_id("GetJob", queue_pb2.GetJobRequest, job, namespace, True)


def list_jobs(
    queue: str,
    state: JobState | None = None,
    *,
    page_size: int = 0,
    namespace: str | None = None,
) -> PagedRpc[Job]:
    """Iterate over the jobs of `queue`, oldest first, only those in `state`
    ("available", "scheduled", "leased", "completed", "dead" or "cancelled") if
    given, fetching `page_size` jobs per call (0: the server's default) until the
    last page."""
    if state is not None and state not in JOB_STATES:
        raise ValueError(f"state must be one of {', '.join(JOB_STATES)}, not {state!r}")
    query = queue_pb2.ListJobsRequest(
        queue=queue,
        state=JOB_STATES[state] if state is not None else queue_pb2.JOB_STATE_UNSPECIFIED,
        page_size=page_size,
    )
    return paged_call("ListJobs", query, _listed_jobs, namespace, "queue")


def retry_job(job: JobRef, *, namespace: str | None = None) -> Rpc[queue_pb2.Job, Job]:
    """Make a dead or cancelled job available again with a fresh attempt count,
    and return it. Raises FailedPrecondition (reason JOB_NOT_RETRYABLE) for a job
    in another state, NotFound for an unknown one. Never retried."""
    return _by_id("RetryJob", queue_pb2.RetryJobRequest, job, namespace, False)


def pause_queue(
    queue: str, *, namespace: str | None = None
) -> Rpc[queue_pb2.QueueStats, QueueStats]:
    """Stop `queue` from leasing jobs (enqueues still succeed); return its stats."""
    return _by_queue("PauseQueue", queue_pb2.PauseQueueRequest, queue, namespace)


def resume_queue(
    queue: str, *, namespace: str | None = None
) -> Rpc[queue_pb2.QueueStats, QueueStats]:
    """Let a paused `queue` lease jobs again; return its stats."""
    return _by_queue("ResumeQueue", queue_pb2.ResumeQueueRequest, queue, namespace)


def queue_stats(
    queue: str, *, namespace: str | None = None
) -> Rpc[queue_pb2.QueueStats, QueueStats]:
    """Return `queue`'s statistics: whether it is paused, its jobs by state, the
    oldest available job's age and the recent lease expiries."""
    return _by_queue("GetQueueStats", queue_pb2.GetQueueStatsRequest, queue, namespace)


def list_queues(*, page_size: int = 0, namespace: str | None = None) -> PagedRpc[QueueStats]:
    """Iterate over the queues of the namespace by name: each one that holds a job
    in any state or is paused, with its statistics as `queue_stats` gives them,
    fetching `page_size` queues per call (0: the server's default) until the last
    page."""
    query = queue_pb2.ListQueuesRequest(page_size=page_size)
    return paged_call("ListQueues", query, _listed_queues, namespace, "queue")


def _listed_queues(response: queue_pb2.ListQueuesResponse) -> list[QueueStats]:
    return [QueueStats.from_proto(stats) for stats in response.queues]


def _by_id(
    method: str,
    request_type: Callable[..., Message],
    job: JobRef,
    namespace: str | None,
    idempotent: bool,
) -> Rpc[queue_pb2.Job, Job]:
    """A call whose request names one job and that returns it."""
    job_id, namespace = _job_args.reference(job, namespace)
    return namespaced_call(
        "queue", method, request_type(id=job_id), Job.from_proto, namespace, idempotent
    )


def _by_queue(
    method: str, request_type: Callable[..., Message], queue: str, namespace: str | None
) -> Rpc[queue_pb2.QueueStats, QueueStats]:
    """A call whose request names one queue and that returns its stats."""
    return namespaced_call(
        "queue", method, request_type(queue=queue), QueueStats.from_proto, namespace, True
    )


def _listed_jobs(response: queue_pb2.ListJobsResponse) -> list[Job]:
    return _jobs_of(response)


def _jobs_of(
    response: queue_pb2.ListJobsResponse
    | queue_pb2.LeaseJobsResponse
    | queue_pb2.BatchEnqueueResponse,
) -> list[Job]:
    return [Job.from_proto(job) for job in response.jobs]
