"""The queue port: durable jobs with leases, retries and dead-lettering."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from strata_server.core.errors import StrataError
from strata_server.core.job_transitions import (
    Ack,
    Availability,
    Job,
    NewJob,
    QueueStats,
    Visible,
)
from strata_server.core.jsontypes import JSON
from strata_server.core.models import Actor, Handoff, Page
from strata_server.core.values import frozen
from strata_server.storage.ports.write_context import WriteContext


@frozen
class LeaseTerms:
    """How jobs are leased: for how long, by whom (the audit actor), and with lease
    tokens made by core.job_transitions.new_lease_token(token_prefix): a SubscribeJobs
    stream's id, so that a settle on any replica names the stream to wake. The same
    for every lease a LeaseJobs call or a stream takes, so they are given as one."""

    lease: timedelta
    actor: Actor
    token_prefix: str = ""


@frozen
class Failure:
    """What a failed attempt reports (FailJob): the error, and the delay before the
    retry (None: the job's own backoff). Given as one, as ack_job takes its result."""

    error: str
    retry_delay: timedelta | None = None


@frozen
class JobQuery:
    """One page of ListJobs: a queue's jobs in (create_time, id) order after the key
    `after`, optionally only those whose visible state is `state` at the time of the
    call."""

    queue: str
    state: Visible | None
    limit: int
    after: tuple[Any, ...] | None = None


class QueueStore(Protocol):
    """Durable jobs. Every transition goes through the rules in `core.job_transitions`
    (plan_lease, plan_ack, ...); every mutation appends audit entries in the same
    transaction. Unknown job ids are NotFound."""

    async def enqueue(
        self, namespace: str, jobs: Sequence[NewJob], context: WriteContext
    ) -> list[Job]:
        """Insert `jobs` in one transaction, or none. A job whose unique_key matches an
        unfinished job of its queue yields that job instead (enforced by a partial
        unique index, never by read-then-write). Errors carry `job_index`. The
        context's notices go out when a job is inserted and commits."""
        ...

    async def enqueue_and_lease(
        self, namespace: str, job: NewJob, handoff: Handoff, context: WriteContext
    ) -> tuple[Job, list[Job]]:
        """`enqueue` of one job (the context has no idempotency) that, in the same
        transaction, leases the new job for `handoff` when it is first in line
        (nothing ranks ahead of it and the queue is not paused). A store may instead
        lease the head of the queue, which is an older job when the new one is not
        first. Returns the job as enqueued (leased if it was) and the jobs leased.
        The commit notices go out only if the new job is left ready."""
        ...

    async def lease_jobs(
        self, namespace: str, queue: str, max_jobs: int, terms: LeaseTerms
    ) -> list[Job]:
        """Lease up to `max_jobs` leasable jobs (priority desc, run_time, create_time,
        id), reclaiming expired leases; concurrent callers never get the same job.
        Returns [] for a paused queue. Jobs carry their lease_token."""
        ...

    async def ack_job(
        self, namespace: str, id: str, token: str, result: JSON | None, *, actor: Actor
    ) -> Job:
        """Complete the holder's attempt (core.job_transitions.plan_ack)."""
        ...

    async def ack_jobs(
        self, namespace: str, acks: Sequence[Ack], *, actor: Actor
    ) -> list[Job | StrataError]:
        """`ack_job` for each of `acks` (distinct ids), each on its own, in one
        transaction: per ack the job completed, or the error ack_job would raise."""
        ...

    async def fail_job(
        self, namespace: str, id: str, token: str, failure: Failure, *, actor: Actor
    ) -> Job:
        """Record a failed attempt (core.job_transitions.plan_fail)."""
        ...

    async def release_job(self, namespace: str, id: str, token: str, *, actor: Actor) -> Job:
        """Give a leased job back unworked (core.job_transitions.plan_release); audit action
        `release`."""
        ...

    async def extend_lease(
        self, namespace: str, id: str, token: str, lease: timedelta, *, actor: Actor
    ) -> Job:
        """Heartbeat (core.job_transitions.plan_extend); the result carries the lease_token."""
        ...

    async def cancel_job(self, namespace: str, id: str, *, actor: Actor) -> Job:
        """core.job_transitions.plan_cancel."""
        ...

    async def retry_job(self, namespace: str, id: str, *, actor: Actor) -> Job:
        """core.job_transitions.plan_retry."""
        ...

    async def get_job(self, namespace: str, id: str) -> Job:
        """One job, without its lease_token."""
        ...

    async def held_leases(self, namespace: str, leases: Mapping[str, str]) -> set[str]:
        """Of `leases` (job id -> lease token), the ids whose job is still leased
        under that token and unexpired: what a SubscribeJobs stream still holds."""
        ...

    async def availability(self, namespace: str, queue: str) -> Availability:
        """Whether the queue holds a job a lease could take now (ready and due, or
        leased with its lease expired), paused or not, and whether it holds any ready
        or leased job: indexed probes, the shared re-check that wakes a queue's
        consumers when time, not a write, made a job available (a scheduled job
        coming due, a lease expiring), and that rests while nothing can come due."""
        ...

    async def list_jobs(self, namespace: str, query: JobQuery) -> Page[Job]:
        """One page of the query's jobs; `last_key` (create_time, id) when more may
        follow."""
        ...

    async def set_paused(self, namespace: str, queue: str, paused: bool, *, actor: Actor) -> None:
        """Pause or resume leasing from a queue (an upsert of its settings row)."""
        ...

    async def queue_stats(self, namespace: str, queue: str) -> QueueStats:
        """Counts by visible state, oldest available job's age, and lease expiries
        reclaimed within core.job_transitions.EXPIRY_WINDOW."""
        ...

    async def list_queues(self, namespace: str, limit: int, after: str | None) -> Page[QueueStats]:
        """The queues named after `after` (byte order) that hold a job in any state or
        are paused, each with what `queue_stats` gives, read in one grouped statement.
        `last_key` is `(queue,)` of the last one when more may follow."""
        ...

    async def purge_completed(self, finished_before: datetime, limit: int) -> int:
        """Delete up to `limit` completed jobs finished before the time; how many."""
        ...
