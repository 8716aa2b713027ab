"""Job-queue domain: the job, the commands on it, and the rules both adapters share.

Stored states are `ready`, `leased`, `completed`, `dead` and `cancelled`. What a
caller sees is derived at read time by `visible_state`: a ready job whose run_time
is in the future is SCHEDULED, and a leased job whose lease has expired is
AVAILABLE again (the next lease reclaims it and counts the attempt). So no sweeper
process is ever needed: the lease query itself reclaims expired leases.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from strata_server.core.errors import FailedPrecondition, InvalidArgument
from strata_server.core.jsontypes import JSON
from strata_server.core.values import frozen

DEFAULT_MAX_ATTEMPTS = 10
MAX_ATTEMPTS_LIMIT = 1000
DEFAULT_BACKOFF = timedelta(seconds=1)
MAX_BACKOFF = timedelta(hours=1)
BACKOFF_JITTER = 0.2
MIN_LEASE = timedelta(seconds=1)
MAX_LEASE = timedelta(hours=12)
MAX_LEASE_JOBS = 1000
MAX_BATCH_JOBS = 1000
MAX_WAIT = timedelta(seconds=60)
MAX_ERROR_CHARS = 64 * 1024
MAX_UNIQUE_KEY = 256
EXPIRY_WINDOW = timedelta(minutes=5)


class Stored(StrEnum):
    """A job's state as stored."""

    READY = "ready"
    LEASED = "leased"
    COMPLETED = "completed"
    DEAD = "dead"
    CANCELLED = "cancelled"


class Visible(StrEnum):
    """A job's state as callers see it (JobState in the proto)."""

    AVAILABLE = "available"
    SCHEDULED = "scheduled"
    LEASED = "leased"
    COMPLETED = "completed"
    DEAD = "dead"
    CANCELLED = "cancelled"


FINISHED = frozenset({Stored.COMPLETED, Stored.DEAD, Stored.CANCELLED})
UNFINISHED = frozenset({Stored.READY, Stored.LEASED})


@frozen
class Job:
    """A unit of work; `lease_token` is only filled in for the lease holder."""

    namespace: str
    queue: str
    id: str
    state: Stored
    payload: JSON
    priority: int
    run_time: datetime
    attempt: int
    max_attempts: int
    create_time: datetime
    update_time: datetime
    retry_backoff: timedelta | None = None
    unique_key: str | None = None
    lease_token: str | None = None
    lease_expire_time: datetime | None = None
    last_error: str | None = None
    result: JSON | None = None
    finish_time: datetime | None = None

    def visible_state(self, now: datetime) -> Visible:
        """The state a caller sees at `now`."""
        if self.state is Stored.READY:
            return Visible.SCHEDULED if self.run_time > now else Visible.AVAILABLE
        if self.state is Stored.LEASED:
            expired = self.lease_expire_time is not None and self.lease_expire_time <= now
            return Visible.AVAILABLE if expired else Visible.LEASED
        return Visible(self.state.value)


@frozen
class NewJob:
    """A validated enqueue; `run_time` is absolute (a delay is resolved by the API)."""

    queue: str
    payload: JSON
    priority: int = 0
    run_time: datetime | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    unique_key: str | None = None
    retry_backoff: timedelta | None = None


@frozen
class Ack:
    """One completion of an AckJobs batch: the job, its lease token, its result."""

    id: str
    token: str
    result: JSON | None = None


@frozen
class Availability:
    """What the idle consumers of a queue re-check: whether a lease could take a job
    now (`now`: ready and due, or leased with its lease expired, paused or not), and
    whether the queue holds any ready or leased job at all (`held`), which time alone
    may make leasable (its run_time coming, its lease expiring, a retry's delay
    ending). A queue that holds none has nothing to come due until a write adds one,
    and every such write wakes the queue's topic."""

    now: bool
    held: bool


@frozen
class QueueStats:
    """Counts by visible state plus the queue's health figures."""

    namespace: str
    queue: str
    paused: bool
    counts: dict[Visible, int]
    oldest_available_age: timedelta
    expired_leases: int


def new_lease_token(prefix: str = "") -> str:
    """An unguessable token naming one lease of one job. A SubscribeJobs stream
    passes its subscription id as `prefix` (`<prefix>.<hex>`), so that an ack or
    fail under the token can wake that stream, on whichever replica it runs."""
    token = secrets.token_hex(16)
    return f"{prefix}.{token}" if prefix else token


def subscription_of(token: str) -> str | None:
    """The subscription id a lease token was issued to, if a stream leased it."""
    prefix, dot, _ = token.rpartition(".")
    return prefix if dot and prefix else None


def backoff(attempt: int, base: timedelta | None, rng: random.Random | None = None) -> timedelta:
    """Delay before retrying after failed attempt number `attempt` (1-based): base,
    2 x base, 4 x base, ... capped at MAX_BACKOFF, each shortened by up to 20% at
    random so that jobs failing together do not retry together."""
    first = base if base is not None else DEFAULT_BACKOFF
    delay = min(first * (1 << min(max(attempt - 1, 0), 30)), MAX_BACKOFF)
    jitter: float = (rng or random).uniform(0, BACKOFF_JITTER)
    return delay * (1 - jitter)


def check_lease(job: Job, token: str, now: datetime) -> None:
    """Refuse an ack, fail or extend that does not hold the job's current, unexpired
    lease: a worker whose lease ran out can never complete someone else's attempt."""
    if (
        job.state is not Stored.LEASED
        or job.lease_token != token
        or job.lease_expire_time is None
        or job.lease_expire_time <= now
    ):
        raise FailedPrecondition(
            f"job {job.id} is not leased under this token (the lease expired, was "
            "completed, failed or cancelled, or belongs to another worker)",
            reason="LEASE_LOST",
            metadata={"state": job.visible_state(now).value},
        )


def lease_duration(value: timedelta, field: str = "lease_duration") -> timedelta:
    """A lease length within MIN_LEASE..MAX_LEASE."""
    if not MIN_LEASE <= value <= MAX_LEASE:
        raise InvalidArgument.field(field, "must be between 1 second and 12 hours")
    return value


def _finished_error(job: Job, action: str, reason: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"job {job.id} is {job.state.value}; only unfinished jobs can be {action}",
        reason=reason,
        metadata={"state": job.state.value},
    )


def plan_enqueue(namespace: str, new: NewJob, id: str, now: datetime) -> Job:
    """The row an enqueue inserts."""
    return Job(
        namespace=namespace,
        queue=new.queue,
        id=id,
        state=Stored.READY,
        payload=new.payload,
        priority=new.priority,
        run_time=new.run_time or now,
        attempt=0,
        max_attempts=new.max_attempts,
        create_time=now,
        update_time=now,
        retry_backoff=new.retry_backoff,
        unique_key=new.unique_key,
    )


def leasable(job: Job, now: datetime) -> bool:
    """Whether a lease may take `job` now (ready and due, or its lease expired)."""
    return job.visible_state(now) is Visible.AVAILABLE


def plan_lease(job: Job, token: str, lease: timedelta, now: datetime) -> Job:
    """Lease a leasable job: attempt + 1. A job reclaimed from an expired lease that
    has no attempts left dies instead (its holder never reported back)."""
    if job.state is Stored.LEASED and job.attempt >= job.max_attempts:
        return _finish(job, Stored.DEAD, now, last_error="lease expired on the last attempt")
    return _replace(
        job,
        state=Stored.LEASED,
        attempt=job.attempt + 1,
        lease_token=token,
        lease_expire_time=now + lease,
        update_time=now,
    )


def plan_ack(job: Job, token: str, result: JSON | None, now: datetime) -> Job:
    """Complete the holder's attempt."""
    check_lease(job, token, now)
    return _finish(job, Stored.COMPLETED, now, result=result)


def plan_fail(
    job: Job,
    token: str,
    error: str,
    retry_delay: timedelta | None,
    now: datetime,
    rng: random.Random | None = None,
) -> Job:
    """Record a failed attempt: back to ready after the backoff, or dead when no
    attempts are left (keeping the error either way)."""
    check_lease(job, token, now)
    if job.attempt >= job.max_attempts:
        return _finish(job, Stored.DEAD, now, last_error=error)
    delay = retry_delay if retry_delay is not None else backoff(job.attempt, job.retry_backoff, rng)
    return _requeue(job, now + delay, now, last_error=error)


def plan_release(job: Job, token: str, now: datetime) -> Job:
    """Give the holder's job back unworked (a consumer closing cleanly): runnable at
    once, and the attempt the lease started is not counted."""
    check_lease(job, token, now)
    return _requeue(job, now, now, attempt=max(job.attempt - 1, 0))


def plan_extend(job: Job, token: str, lease: timedelta, now: datetime) -> Job:
    """Move the holder's lease end to now + lease."""
    check_lease(job, token, now)
    return _replace(job, lease_expire_time=now + lease, update_time=now)


def plan_cancel(job: Job, now: datetime) -> Job:
    """Cancel an unfinished job; its lease (if any) is void from now on."""
    if job.state in FINISHED:
        raise _finished_error(job, "cancelled", "JOB_FINISHED")
    return _finish(job, Stored.CANCELLED, now)


def plan_retry(job: Job, now: datetime) -> Job:
    """Bring a dead or cancelled job back, runnable now, with a fresh attempt count."""
    if job.state not in (Stored.DEAD, Stored.CANCELLED):
        raise FailedPrecondition(
            f"job {job.id} is {job.visible_state(now).value}; only dead or cancelled jobs "
            "can be retried",
            reason="JOB_NOT_RETRYABLE",
            metadata={"state": job.visible_state(now).value},
        )
    return _replace(
        job, state=Stored.READY, attempt=0, run_time=now, update_time=now, finish_time=None
    )


def _replace(job: Job, **changes: Any) -> Job:
    return replace(job, **changes)


def _finish(job: Job, state: Stored, now: datetime, **changes: Any) -> Job:
    """End `job` in `state` (completed, dead or cancelled) now: no lease holds it."""
    return _replace(
        job,
        state=state,
        lease_token=None,
        lease_expire_time=None,
        update_time=now,
        finish_time=now,
        **changes,
    )


def _requeue(job: Job, run_time: datetime, now: datetime, **changes: Any) -> Job:
    """Put `job` back to ready from `run_time`: no lease holds it."""
    return _replace(
        job,
        state=Stored.READY,
        run_time=run_time,
        lease_token=None,
        lease_expire_time=None,
        update_time=now,
        **changes,
    )


def without_token(job: Job) -> Job:
    """The job as anyone but its lease holder sees it: without its lease token."""
    return job if job.lease_token is None else replace(job, lease_token=None)


def backoff_us(backoff: timedelta | None) -> int | None:
    """A retry backoff as stored and archived: whole microseconds, or None."""
    return None if backoff is None else backoff // timedelta(microseconds=1)


def job_to_json(job: Job) -> JSON:
    """A job as JSON (times ISO 8601, durations in microseconds), to store an
    idempotent enqueue's result."""
    times = ("run_time", "create_time", "update_time", "lease_expire_time", "finish_time")
    out: JSON = {
        "namespace": job.namespace,
        "queue": job.queue,
        "id": job.id,
        "state": job.state.value,
        "payload": job.payload,
        "priority": job.priority,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "unique_key": job.unique_key,
        "last_error": job.last_error,
        "result": job.result,
        "retry_backoff_us": backoff_us(job.retry_backoff),
    }
    for name in times:
        value = getattr(job, name)
        out[name] = value.isoformat() if value is not None else None
    return out


def job_from_json(value: JSON) -> Job:
    """Inverse of job_to_json (the lease token is never stored there)."""

    def time(name: str) -> datetime | None:
        text = value[name]
        return datetime.fromisoformat(text) if text is not None else None

    run_time, create_time, update_time = time("run_time"), time("create_time"), time("update_time")
    assert run_time is not None and create_time is not None and update_time is not None
    backoff_us = value["retry_backoff_us"]
    return Job(
        namespace=value["namespace"],
        queue=value["queue"],
        id=value["id"],
        state=Stored(value["state"]),
        payload=value["payload"],
        priority=value["priority"],
        run_time=run_time,
        attempt=value["attempt"],
        max_attempts=value["max_attempts"],
        create_time=create_time,
        update_time=update_time,
        retry_backoff=timedelta(microseconds=backoff_us) if backoff_us is not None else None,
        unique_key=value["unique_key"],
        lease_expire_time=time("lease_expire_time"),
        last_error=value["last_error"],
        result=value["result"],
        finish_time=time("finish_time"),
    )
