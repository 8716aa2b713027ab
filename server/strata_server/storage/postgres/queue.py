"""The job queue on PostgreSQL: the `storage.ports.QueueStore` half of the adapter.

The rules are the shared ones of `core.queue`. The hot paths of a worker (lease,
ack, release, extend) are each one autocommit statement that writes the transition
core.queue plans (plan_lease, plan_ack, plan_release, plan_extend) out in SQL,
audit entries and lease expiries included (data-modifying CTEs: one statement, one
transaction); the other transitions are planned in Python inside the transaction
`database._run` opens (`queue_queries` holds every statement):

- enqueue: claim the request_id (as Commit does), then one INSERT ... ON CONFLICT DO
  NOTHING against the partial unique index on unfinished (queue, unique_key); a job
  skipped there yields the unfinished job holding its key, read afterwards.
- lease_jobs: `queue_queries.LEASE_JOBS`, locking with FOR UPDATE SKIP LOCKED over
  both partial indexes and writing leases, deaths, expiries and audit entries. Its
  lease tokens are made ahead by core.queue.new_lease_token, one per slot.
- ack/release/extend: `queue_queries.ACK_JOB`, ... lock the job by primary key,
  check the lease as core.queue.check_lease does, write and audit. Only when that
  writes nothing is the job read, for NotFound or check_lease's LEASE_LOST.
- fail/cancel/retry: SELECT ... FOR UPDATE, plan (fail's backoff), one write-back.

Where the SQL transitions differ from the Python ones they replaced:

- Their time (`now`, update_time) is read before the statement, not after the row
  lock: a transition queued behind another on the same job (an ack behind its own
  extend) can carry an update_time a little older than the one before it.
- A lease kills up to `limit` expired leases on their last attempt per statement,
  in lease order, as it leases up to `limit` others (before: those ahead of the last
  job it leased); when fewer jobs are left to lease than asked for, it kills every
  one, as before. A lease of more than FIRST_TOKENS jobs is two statements, so two
  transactions.
- The changed_fields of their audit entries are computed in SQL (IS DISTINCT FROM
  the locked row's values), in the order `_changed` lists them.

- enqueue_and_lease: for a consumer parked on the queue (api.handoff),
  `queue_queries.ENQUEUE_HANDED` inserts one job already leased to it when it is
  first in lease order, in one statement.

A write on an autocommit connection whose connection is lost is not run again by
`database._run` (it may have committed; the caller gets UNAVAILABLE). A lease is
run again: one whose first attempt had committed leaves those jobs leased until
their lease expires, as a worker that crashed would.

Reads are single statements on an autocommit connection.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import errors as pg_errors

from strata_server.core.errors import (
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    StrataError,
)
from strata_server.core.jsontypes import JSON, dumps, serialize
from strata_server.core.models import Actor, Handoff, Idempotency, Page
from strata_server.core.queue import (
    EXPIRY_WINDOW,
    Ack,
    Availability,
    Job,
    NewJob,
    QueueStats,
    Stored,
    Visible,
    backoff_us,
    check_lease,
    job_from_json,
    job_to_json,
    new_lease_token,
    plan_cancel,
    plan_enqueue,
    plan_fail,
    plan_lease,
    plan_retry,
    without_token,
)
from strata_server.core.validation import new_id
from strata_server.storage.events.relay import POSTGRES_CHANNEL as EVENTS_CHANNEL
from strata_server.storage.postgres import queue_queries as q
from strata_server.storage.postgres.pool import Conn
from strata_server.storage.postgres.records import now
from strata_server.storage.postgres.request_log import claim_request

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ENQUEUE_ATTEMPTS = 3

_UNAUDITED = frozenset({"update_time"})
_FIELDS = tuple(f.name for f in dataclasses.fields(Job) if f.name not in _UNAUDITED)


def job_from_row(namespace: str, row: Sequence[Any]) -> Job:
    """A Job from a row selected with `queue_queries.JOB_COLUMNS`."""
    backoff_us = row[10]
    return Job(
        namespace=namespace,
        id=row[0],
        queue=row[1],
        state=Stored(row[2]),
        payload=row[3],
        priority=row[4],
        run_time=row[5],
        attempt=row[6],
        max_attempts=row[7],
        create_time=row[8],
        update_time=row[9],
        retry_backoff=timedelta(microseconds=backoff_us) if backoff_us is not None else None,
        unique_key=row[11],
        lease_token=row[12],
        lease_expire_time=row[13],
        last_error=row[14],
        result=row[15],
        finish_time=row[16],
    )


def _changed(old: Job, new: Job) -> str:
    """changed_fields of an audit entry: the Job fields a transition changed."""
    return dumps([name for name in _FIELDS if getattr(old, name) != getattr(new, name)])


def _payload_text(index: int, job: NewJob) -> str:
    """The stored JSON text of a job's payload, refusing what jsonb cannot hold (the
    shared rules of core.jsontypes.serialize; the API layer already applied the size
    limit), tagged with the job's index."""
    try:
        return serialize(job.payload, sys.maxsize, "payload", "job payload")
    except StrataError as error:
        raise _tag(error, index) from None


def _tag(error: StrataError, index: int) -> StrataError:
    error.metadata.setdefault("job_index", str(index))
    return error


# --- Enqueue -------------------------------------------------------------------------


async def enqueue(
    conn: Conn,
    namespace: str,
    jobs: Sequence[NewJob],
    *,
    actor: Actor,
    idempotency: Idempotency | None,
    notices: Sequence[str] = (),
) -> list[Job]:
    """Run inside an open transaction (or, for one job without `idempotency`, on an
    autocommit connection); see the module docstring. `notices` go out on the events
    channel, from the insert's statement, when it inserts a job and commits."""
    if idempotency is not None:
        stored = await claim_request(conn, namespace, idempotency)
        if stored is not None:
            return [job_from_json(item) for item in stored]
    if not jobs:
        if idempotency is not None:
            await conn.execute(
                q.STORE_RESULT, ("[]", namespace, idempotency.request_id), prepare=True
            )
        return []
    texts = [_payload_text(index, job) for index, job in enumerate(jobs)]
    at = now()
    planned = [plan_enqueue(namespace, job, new_id(), at) for job in jobs]
    results: list[Job | None] = list(planned)
    pending = list(range(len(planned)))  # indexes still to insert
    request_id = idempotency.request_id if idempotency is not None else None
    for _ in range(_ENQUEUE_ATTEMPTS):
        rows = [planned[i] for i in pending]
        first = len(pending) == len(planned)
        cursor = await conn.execute(
            q.ENQUEUE,
            {
                "namespace": namespace,
                "now": at,
                "actor": actor.name,
                "request_id": request_id,
                # Stored with the insert when every job was inserted (the usual case).
                "result": (
                    dumps([job_to_json(job) for job in planned])
                    if request_id is not None and first
                    else None
                ),
                "id": [job.id for job in rows],
                "queue": [job.queue for job in rows],
                "payload": [texts[i] for i in pending],
                "priority": [job.priority for job in rows],
                "run_time": [job.run_time for job in rows],
                "max_attempts": [job.max_attempts for job in rows],
                "retry_backoff_us": [backoff_us(job.retry_backoff) for job in rows],
                "unique_key": [job.unique_key for job in rows],
                "channel": EVENTS_CHANNEL,
                "notices": list(notices),
            },
            prepare=True,
            binary=True,
        )
        inserted = {row[0] for row in await cursor.fetchall()}
        skipped = [i for i in pending if planned[i].id not in inserted]
        if not skipped:
            if request_id is not None and not first:
                await _store_result(conn, namespace, request_id, results)
            return [job for job in results if job is not None]
        # Skipped by the unique index: yield the unfinished job holding the key.
        cursor = await conn.execute(
            q.UNFINISHED_BY_KEY,
            (
                [planned[i].queue for i in skipped],
                [planned[i].unique_key for i in skipped],
                namespace,
            ),
            prepare=True,
            binary=True,
        )
        holders = {
            (job.queue, job.unique_key): without_token(job)
            for job in (job_from_row(namespace, row) for row in await cursor.fetchall())
        }
        pending = []
        for i in skipped:
            holder = holders.get((planned[i].queue, planned[i].unique_key))
            results[i] = holder
            if holder is None:  # finished since the insert looked: insert again
                pending.append(i)
        if not pending:
            if request_id is not None:
                await _store_result(conn, namespace, request_id, results)
            return [job for job in results if job is not None]
    raise _tag(
        Conflict("the job holding this unique_key keeps finishing concurrently; retry"),
        pending[0],
    )


async def _store_result(
    conn: Conn, namespace: str, request_id: str, results: Sequence[Job | None]
) -> None:
    text = dumps([job_to_json(job) for job in results if job is not None])
    await conn.execute(q.STORE_RESULT, (text, namespace, request_id), prepare=True)


# --- Lease ---------------------------------------------------------------------------

FIRST_TOKENS = 32
"""Lease tokens made for a lease's first statement. Each is made ahead of time with
core.queue.new_lease_token (~2 us apiece), and most leases take a few jobs or none
(a woken long poll, a SubscribeJobs stream's top-up), so a lease of more jobs leases
its first FIRST_TOKENS in one statement and the rest in a second one."""

_DIED = plan_lease(
    Job(
        namespace="",
        queue="",
        id="",
        state=Stored.LEASED,
        payload={},
        priority=0,
        run_time=_EPOCH,
        attempt=1,
        max_attempts=1,
        create_time=_EPOCH,
        update_time=_EPOCH,
    ),
    "",
    timedelta(0),
    _EPOCH,
).last_error
"""The last_error core.queue.plan_lease gives a job reclaimed on its last attempt."""


async def enqueue_and_lease(
    conn: Conn,
    namespace: str,
    job: NewJob,
    handoff: Handoff,
    *,
    actor: Actor,
    notices: Sequence[str] = (),
) -> tuple[Job, list[Job]]:
    """Run on an autocommit connection: `queue_queries.ENQUEUE_HANDED`, one
    statement that inserts the job already leased for `handoff` when it is first in
    lease order, and ready otherwise. A job skipped by the unique index yields the
    job holding its key, as `enqueue` does."""
    text = _payload_text(0, job)
    at = now()
    planned = plan_enqueue(namespace, job, new_id(), at)
    cursor = await conn.execute(
        q.ENQUEUE_HANDED,
        {
            "namespace": namespace,
            "queue": planned.queue,
            "id": planned.id,
            "payload": text,
            "priority": planned.priority,
            "run_time": planned.run_time,
            "max_attempts": planned.max_attempts,
            "retry_backoff_us": backoff_us(planned.retry_backoff),
            "unique_key": planned.unique_key,
            "now": at,
            "token": new_lease_token(handoff.token_prefix),
            "expire": at + handoff.lease,
            "actor": actor.name,
            "lease_actor": handoff.actor.name,
            "channel": EVENTS_CHANNEL,
            "notices": list(notices),
        },
        prepare=True,
        binary=True,
    )
    row = await cursor.fetchone()
    if row is None:  # skipped by the unique index: yield the job holding the key
        [holder] = await enqueue(
            conn, namespace, [job], actor=actor, idempotency=None, notices=notices
        )
        return holder, []
    created = job_from_row(namespace, row)
    return created, [created] if created.state is Stored.LEASED else []


async def lease_jobs(
    conn: Conn,
    namespace: str,
    queue: str,
    max_jobs: int,
    lease: timedelta,
    *,
    actor: Actor,
    token_prefix: str = "",
) -> list[Job]:
    """Run on an autocommit connection: `queue_queries.LEASE_JOBS`, one statement
    (two for more than FIRST_TOKENS jobs), each its own transaction."""
    # One statement instead of a transaction of 4 round trips (BEGIN, locking SELECT,
    # write-back, COMMIT), with the transition core.queue.plan_lease plans written
    # out in SQL. Measured by bench/jobs.py on 2 cores (the server is CPU-bound
    # there), with ack_job's one statement: drain 5k jobs, LeaseJobs(max_jobs=10) +
    # AckJob, K=1/8/32: 219/530/649 -> 832/1,209/1,187 jobs/s; enqueue -> delivery
    # to a waiting LeaseJobs p50 6.5 -> 5.1 ms.
    leased: list[Job] = []
    while len(leased) < max_jobs:
        want = max_jobs - len(leased)
        if not leased:
            want = min(want, FIRST_TOKENS)
        at = now()
        cursor = await conn.execute(
            q.LEASE_JOBS,
            {
                "namespace": namespace,
                "queue": queue,
                "now": at,
                "limit": want,
                "tokens": [new_lease_token(token_prefix) for _ in range(want)],
                "expire": at + lease,
                "died": _DIED,
                "actor": actor.name,
            },
            prepare=True,
            binary=True,
        )
        got = [job_from_row(namespace, row) for row in await cursor.fetchall()]
        died = sum(1 for job in got if job.state is Stored.DEAD)
        leased.extend(job for job in got if job.state is Stored.LEASED)
        if len(got) - died < want and died < want:
            # Fewer jobs left to lease than wanted, and every expired lease on its
            # last attempt that no other lease holds is dead.
            break
    return leased


# --- A lease holder's ack, release, extend: one statement ----------------------------


async def _settle(conn: Conn, statement: Any, params: dict[str, Any]) -> Job:
    """Run a one-statement transition of a lease holder (`queue_queries._settle`):
    the job written, or, when the lease is not held, NotFound for an unknown job and
    otherwise the LEASE_LOST core.queue.check_lease raises, read afterwards."""
    cursor = await conn.execute(statement, params, prepare=True, binary=True)
    row = await cursor.fetchone()
    if row is not None:
        return job_from_row(params["namespace"], row)
    # The job as anyone sees it, without its token: check_lease refuses it whatever
    # it holds now, with the message and metadata (its visible state) of a lost lease.
    job = await get_job(conn, params["namespace"], params["id"])
    check_lease(job, params["token"], now())
    raise AssertionError("check_lease accepts no job without a lease_token")  # pragma: no cover


async def ack_job(
    conn: Conn, namespace: str, id: str, token: str, result: JSON | None, *, actor: Actor
) -> Job:
    """core.queue.plan_ack, in SQL (`queue_queries.ACK_JOB`), on an autocommit
    connection."""
    # One autocommit statement instead of a transaction of 4 round trips (BEGIN,
    # SELECT ... FOR UPDATE, UPDATE + audit INSERT, COMMIT), with plan_ack written out
    # in SQL: see lease_jobs for what bench/jobs.py measured.
    params = {
        "namespace": namespace,
        "id": id,
        "token": token,
        "now": now(),
        "actor": actor.name,
        "result": dumps(result) if result is not None else None,
    }
    return without_token(await _settle(conn, q.ACK_JOB, params))


async def ack_jobs(
    conn: Conn, namespace: str, acks: Sequence[Ack], *, actor: Actor
) -> list[Job | StrataError]:
    """`queue_queries.ACK_JOBS`: every ack in one autocommit statement; the acks it
    could not complete get ack_job's error, read afterwards (rare: a lost lease)."""
    # One statement for the batch instead of one AckJob RPC and statement per job:
    # see bench/jobs.py for the drain it buys.
    params = {
        "namespace": namespace,
        "now": now(),
        "actor": actor.name,
        "ids": [ack.id for ack in acks],
        "tokens": [ack.token for ack in acks],
        "results": [dumps(ack.result) if ack.result is not None else None for ack in acks],
    }
    cursor = await conn.execute(q.ACK_JOBS, params, prepare=True, binary=True)
    done = {row[0]: job_from_row(namespace, row) for row in await cursor.fetchall()}
    outcomes: list[Job | StrataError] = []
    for ack in acks:
        job = done.get(ack.id)
        if job is not None:
            outcomes.append(without_token(job))
            continue
        try:
            # As in _settle: the job as anyone sees it (no token), which
            # check_lease refuses with a lost lease's message and metadata.
            check_lease(await get_job(conn, namespace, ack.id), ack.token, now())
            raise AssertionError("check_lease accepts no job without a token")  # pragma: no cover
        except StrataError as error:
            outcomes.append(error)
    return outcomes


async def release_job(conn: Conn, namespace: str, id: str, token: str, *, actor: Actor) -> Job:
    """core.queue.plan_release, in SQL (`queue_queries.RELEASE_JOB`)."""
    params = {"namespace": namespace, "id": id, "token": token, "now": now(), "actor": actor.name}
    return without_token(await _settle(conn, q.RELEASE_JOB, params))


async def extend_lease(
    conn: Conn, namespace: str, id: str, token: str, lease: timedelta, *, actor: Actor
) -> Job:
    """core.queue.plan_extend, in SQL (`queue_queries.EXTEND_LEASE`); the result
    carries the lease_token."""
    at = now()
    params = {
        "namespace": namespace,
        "id": id,
        "token": token,
        "now": at,
        "expire": at + lease,
        "actor": actor.name,
    }
    return await _settle(conn, q.EXTEND_LEASE, params)


# --- Other transitions: planned in Python, in a transaction --------------------------


async def _transition(
    conn: Conn,
    namespace: str,
    id: str,
    plan: Callable[[Job, datetime], Job],
    action: str,
    *,
    actor: Actor,
) -> Job:
    """Lock one job, plan its transition, write it with its audit entry."""
    cursor = await conn.execute(q.LOCK_JOB, (namespace, id), prepare=True, binary=True)
    row = await cursor.fetchone()
    if row is None:
        raise NotFound(f"job {id} does not exist")
    old = job_from_row(namespace, row)
    at = now()  # after the lock: later than the transition this one queued behind
    new = plan(old, at)
    name = "dead" if new.state is Stored.DEAD and old.state is not Stored.DEAD else action
    await conn.execute(
        q.WRITE_JOB,
        (
            new.state.value,
            new.run_time,
            new.attempt,
            new.lease_token,
            new.lease_expire_time,
            new.last_error,
            dumps(new.result) if new.result is not None else None,
            new.update_time,
            new.finish_time,
            namespace,
            id,
            namespace,
            at,
            actor.name,
            name,
            id,
            new.attempt,
            _changed(old, new),
        ),
        prepare=True,
    )
    return new


async def fail_job(
    conn: Conn,
    namespace: str,
    id: str,
    token: str,
    error: str,
    retry_delay: timedelta | None,
    *,
    actor: Actor,
) -> Job:
    job = await _transition(
        conn,
        namespace,
        id,
        lambda job, at: plan_fail(job, token, error, retry_delay, at),
        "fail",
        actor=actor,
    )
    return without_token(job)


async def cancel_job(conn: Conn, namespace: str, id: str, *, actor: Actor) -> Job:
    return without_token(await _transition(conn, namespace, id, plan_cancel, "cancel", actor=actor))


async def retry_job(conn: Conn, namespace: str, id: str, *, actor: Actor) -> Job:
    try:
        job = await _transition(conn, namespace, id, plan_retry, "retry", actor=actor)
    except pg_errors.UniqueViolation:
        # Back to ready, the job would be a second unfinished holder of its unique_key.
        raise FailedPrecondition(
            f"job {id} cannot be retried: another unfinished job of its queue holds its unique_key",
            reason="UNIQUE_KEY_IN_USE",
        ) from None
    return without_token(job)


# --- Reads, settings, stats, purge ---------------------------------------------------


async def get_job(conn: Conn, namespace: str, id: str) -> Job:
    cursor = await conn.execute(q.GET_JOB, (namespace, id), prepare=True, binary=True)
    row = await cursor.fetchone()
    if row is None:
        raise NotFound(f"job {id} does not exist")
    return without_token(job_from_row(namespace, row))


async def held_leases(conn: Conn, namespace: str, leases: Mapping[str, str]) -> set[str]:
    """One statement: of `leases` (job id -> token), the ids still leased under that
    token with the lease unexpired."""
    if not leases:
        return set()
    cursor = await conn.execute(
        q.HELD_LEASES,
        (list(leases), list(leases.values()), namespace, now()),
        prepare=True,
        binary=True,
    )
    return {row[0] for row in await cursor.fetchall()}


async def availability(conn: Conn, namespace: str, queue: str) -> Availability:
    """Indexed probes: does the queue hold a job a lease could take now, and any at all?"""
    cursor = await conn.execute(
        q.AVAILABILITY, {"namespace": namespace, "queue": queue, "now": now()}, prepare=True
    )
    row = await cursor.fetchone()
    assert row is not None
    return Availability(bool(row[0]), bool(row[1]))


async def list_jobs(
    conn: Conn,
    namespace: str,
    queue: str,
    state: Visible | None,
    limit: int,
    after: tuple[Any, ...] | None,
) -> Page[Job]:
    params: dict[str, Any] = {
        "namespace": namespace,
        "queue": queue,
        "limit": limit + 1,
    }
    if state in (Visible.AVAILABLE, Visible.SCHEDULED, Visible.LEASED):
        params["now"] = now()
    if after is not None:
        if len(after) != 2:
            raise InvalidArgument.field("page_token", "is not a ListJobs page token")
        after_time, after_id = after
        if isinstance(after_time, int) and not isinstance(after_time, bool):
            after_time = _EPOCH + timedelta(microseconds=after_time)  # SQLite's key unit
        if not isinstance(after_time, datetime) or not isinstance(after_id, str):
            raise InvalidArgument.field("page_token", "is not a ListJobs page token")
        params["after_time"], params["after_id"] = after_time, after_id
    cursor = await conn.execute(
        q.LIST_JOBS[state, after is not None], params, prepare=True, binary=True
    )
    rows = await cursor.fetchall()
    items = [without_token(job_from_row(namespace, row)) for row in rows[:limit]]
    last_key = None
    if len(rows) > limit and items:
        last_key = (items[-1].create_time, items[-1].id)
    return Page(items, last_key)


async def set_paused(conn: Conn, namespace: str, queue: str, paused: bool, *, actor: Actor) -> None:
    await conn.execute(
        q.SET_PAUSED,
        {
            "namespace": namespace,
            "queue": queue,
            "paused": paused,
            "now": now(),
            "actor": actor.name,
            "action": "pause" if paused else "resume",
        },
        prepare=True,
    )


async def queue_stats(conn: Conn, namespace: str, queue: str) -> QueueStats:
    at = now()
    cursor = await conn.execute(
        q.QUEUE_STATS,
        {"namespace": namespace, "queue": queue, "now": at, "window_start": at - EXPIRY_WINDOW},
        prepare=True,
        binary=True,
    )
    row = await cursor.fetchone()
    assert row is not None  # a SELECT without FROM returns one row
    paused, expired, states, counts, since = row
    by_state = dict.fromkeys(Visible, 0)
    for name, count in zip(states, counts, strict=True):
        by_state[Visible(name)] += count
    age = max(at - since, timedelta(0)) if since is not None else timedelta(0)
    return QueueStats(
        namespace=namespace,
        queue=queue,
        paused=bool(paused),
        counts=by_state,
        oldest_available_age=age,
        expired_leases=expired,
    )


async def purge_completed(conn: Conn, finished_before: datetime, limit: int) -> int:
    """One statement (autocommit: its own transaction)."""
    if limit <= 0:
        return 0
    cursor = await conn.execute(
        q.PURGE_COMPLETED,
        {"before": finished_before, "limit": limit, "window_start": now() - EXPIRY_WINDOW},
        prepare=True,
    )
    row = await cursor.fetchone()
    assert row is not None  # count(*) always returns a row
    purged: int = row[0]
    return purged
