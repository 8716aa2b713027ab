"""The job queue on PostgreSQL: the `QueueStore` adapter.

The rules are the shared ones of `core.job_transitions`. The hot paths of a worker (lease,
ack, release, extend) are each one autocommit statement that writes the transition
core.job_transitions plans (plan_lease, plan_ack, plan_release, plan_extend) out in SQL,
audit entries and lease expiries included (data-modifying CTEs: one statement, one
transaction); the other transitions are planned in Python inside the transaction
`Runner.run` opens (`queue_queries` and `job_queries` hold every statement):

- enqueue: claim the request_id (as Commit does), then one INSERT ... ON CONFLICT DO
  NOTHING against the partial unique index on unfinished (queue, unique_key); a job
  skipped there yields the unfinished job holding its key, read afterwards.
- lease_jobs: `queue_queries.LEASE_JOBS`, locking with FOR UPDATE SKIP LOCKED over
  both partial indexes and writing leases, deaths, expiries and audit entries. Its
  lease tokens are made ahead by core.job_transitions.new_lease_token, one per slot.
- ack/release/extend: `job_queries.ACK_JOB`, ... lock the job by primary key,
  check the lease as core.job_transitions.check_lease does, write and audit. Only when that
  writes nothing is the job read, for NotFound or check_lease's LEASE_LOST.
- fail/cancel/retry: SELECT ... FOR UPDATE, plan (fail's backoff), one write-back.
- enqueue_and_lease: for a consumer parked on the queue (api.handoff),
  `queue_queries.ENQUEUE_HANDED` inserts one job already leased to it when it is
  first in lease order, in one statement.

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
  the locked row's values), in the order `job_rows._changed` lists them.

A write on an autocommit connection whose connection is lost is not run again by
`Runner.run` (it may have committed; the caller gets UNAVAILABLE). A lease is
run again: one whose first attempt had committed leaves those jobs leased until
their lease expires, as a worker that crashed would.

Reads are single statements on an autocommit connection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from psycopg import errors as pg_errors

from strata_server.core.errors import (
    FailedPrecondition,
    StrataError,
)
from strata_server.core.job_transitions import (
    EXPIRY_WINDOW,
    Ack,
    Availability,
    Job,
    NewJob,
    QueueStats,
    Stored,
    new_lease_token,
    plan_cancel,
    plan_enqueue,
    plan_fail,
    plan_retry,
    without_token,
)
from strata_server.core.jsontypes import JSON, dumps
from strata_server.core.models import Actor, Handoff, Page
from strata_server.core.validation import new_id
from strata_server.storage.ports.queue import Failure, JobQuery, LeaseTerms
from strata_server.storage.ports.write_context import WriteContext
from strata_server.storage.postgres import job_queries as jq
from strata_server.storage.postgres import queue_queries as q
from strata_server.storage.postgres.job_rows import (
    DIED,
    handed_params,
    insert_jobs,
    job_from_row,
    list_params,
    payload_text,
    read_job,
    settle,
    settled,
    transition,
)
from strata_server.storage.postgres.pool import Conn, Runner, borrowing
from strata_server.storage.postgres.queue_figures import read_queues, read_stats
from strata_server.storage.postgres.record_rows import now

FIRST_TOKENS = 32
"""Lease tokens made for a lease's first statement. Each is made ahead of time with
core.job_transitions.new_lease_token (not free: bench/RESULTS.md, "measured in passing"),
and most leases take a few jobs or none
(a woken long poll, a SubscribeJobs stream's top-up), so a lease of more jobs leases
its first FIRST_TOKENS in one statement and the rest in a second one."""


class PostgresQueue:
    """`QueueStore` over PostgreSQL (see the module docstring)."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    async def enqueue(
        self, namespace: str, jobs: Sequence[NewJob], context: WriteContext
    ) -> list[Job]:
        """`job_rows.insert_jobs`; the context's notices go out on the events channel
        when a job is inserted and commits."""
        # One job without a request_id needs no transaction: each statement of
        # insert_jobs is atomic alone and none depends on an earlier one's writes.
        # Skipping BEGIN and COMMIT is two round trips off every Enqueue, on the path
        # of enqueue -> delivery latency.
        idempotency = context.idempotency
        return await self.runner.run(
            lambda conn: insert_jobs(
                conn,
                namespace,
                jobs,
                actor=context.actor,
                idempotency=idempotency,
                notices=context.notices,
            ),
            transaction=idempotency is not None or len(jobs) > 1,
            writes=True,
        )

    @borrowing(writes=True)
    async def enqueue_and_lease(
        self, conn: Conn, namespace: str, job: NewJob, handoff: Handoff, context: WriteContext
    ) -> tuple[Job, list[Job]]:
        """Run on an autocommit connection: `queue_queries.ENQUEUE_HANDED`, one
        statement that inserts the job already leased for `handoff` when it is first in
        lease order, and ready otherwise. A job skipped by the unique index yields the
        job holding its key, as `enqueue` does."""
        text = payload_text(0, job)
        at = now()
        planned = plan_enqueue(namespace, job, new_id(), at)
        cursor = await conn.execute(
            q.ENQUEUE_HANDED,
            handed_params(planned, text, at, handoff, actor=context.actor, notices=context.notices),
            prepare=True,
            binary=True,
        )
        row = await cursor.fetchone()
        if row is None:  # skipped by the unique index: yield the job holding the key
            [holder] = await insert_jobs(
                conn,
                namespace,
                [job],
                actor=context.actor,
                idempotency=None,
                notices=context.notices,
            )
            return holder, []
        created = job_from_row(namespace, row)
        return created, [created] if created.state is Stored.LEASED else []

    @borrowing()
    async def lease_jobs(
        self, conn: Conn, namespace: str, queue: str, max_jobs: int, terms: LeaseTerms
    ) -> list[Job]:
        """Run on an autocommit connection: `queue_queries.LEASE_JOBS`, one statement
        (two for more than FIRST_TOKENS jobs), each its own transaction."""
        # One statement instead of a transaction of 4 round trips (BEGIN, locking SELECT,
        # write-back, COMMIT), with the transition core.job_transitions.plan_lease plans written
        # out in SQL: bench/jobs.py measures the drain and the delivery latency it buys.
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
                    "tokens": [new_lease_token(terms.token_prefix) for _ in range(want)],
                    "expire": at + terms.lease,
                    "died": DIED,
                    "actor": terms.actor.name,
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

    @borrowing(writes=True)
    async def ack_job(
        self, conn: Conn, namespace: str, id: str, token: str, result: JSON | None, *, actor: Actor
    ) -> Job:
        """core.job_transitions.plan_ack, in SQL (`job_queries.ACK_JOB`), on an autocommit
        connection."""
        # One autocommit statement instead of a transaction of 4 round trips (BEGIN,
        # SELECT ... FOR UPDATE, UPDATE + audit INSERT, COMMIT), with plan_ack written out
        # in SQL: see lease_jobs for what bench/jobs.py measured.
        stored = dumps(result) if result is not None else None
        job = await settle(
            conn, jq.ACK_JOB, namespace, id, token, actor=actor, at=now(), result=stored
        )
        return without_token(job)

    @borrowing(writes=True)
    async def ack_jobs(
        self, conn: Conn, namespace: str, acks: Sequence[Ack], *, actor: Actor
    ) -> list[Job | StrataError]:
        """`job_queries.ACK_JOBS`: every ack in one autocommit statement; the acks it
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
        cursor = await conn.execute(jq.ACK_JOBS, params, prepare=True, binary=True)
        done = {row[0]: job_from_row(namespace, row) for row in await cursor.fetchall()}
        return await settled(conn, namespace, acks, done)

    @borrowing(writes=True)
    async def release_job(
        self, conn: Conn, namespace: str, id: str, token: str, *, actor: Actor
    ) -> Job:
        """core.job_transitions.plan_release, in SQL (`job_queries.RELEASE_JOB`)."""
        job = await settle(conn, jq.RELEASE_JOB, namespace, id, token, actor=actor, at=now())
        return without_token(job)

    @borrowing(writes=True)
    async def extend_lease(
        self, conn: Conn, namespace: str, id: str, token: str, lease: timedelta, *, actor: Actor
    ) -> Job:
        """core.job_transitions.plan_extend, in SQL (`job_queries.EXTEND_LEASE`); the result
        carries the lease_token."""
        at = now()
        statement = jq.EXTEND_LEASE
        return await settle(
            conn, statement, namespace, id, token, actor=actor, at=at, expire=at + lease
        )

    @borrowing(transaction=True)
    async def fail_job(
        self, conn: Conn, namespace: str, id: str, token: str, failure: Failure, *, actor: Actor
    ) -> Job:
        job = await transition(
            conn,
            namespace,
            id,
            lambda job, at: plan_fail(job, token, failure.error, failure.retry_delay, at),
            "fail",
            actor=actor,
        )
        return without_token(job)

    @borrowing(transaction=True)
    async def cancel_job(self, conn: Conn, namespace: str, id: str, *, actor: Actor) -> Job:
        return without_token(
            await transition(conn, namespace, id, plan_cancel, "cancel", actor=actor)
        )

    @borrowing(transaction=True)
    async def retry_job(self, conn: Conn, namespace: str, id: str, *, actor: Actor) -> Job:
        try:
            job = await transition(conn, namespace, id, plan_retry, "retry", actor=actor)
        except pg_errors.UniqueViolation:
            # Back to ready, the job would be a second unfinished holder of its unique_key.
            raise FailedPrecondition(
                f"job {id} cannot be retried: another unfinished job of its queue holds "
                "its unique_key",
                reason="UNIQUE_KEY_IN_USE",
            ) from None
        return without_token(job)

    @borrowing()
    async def get_job(self, conn: Conn, namespace: str, id: str) -> Job:
        return await read_job(conn, namespace, id)

    @borrowing()
    async def held_leases(self, conn: Conn, namespace: str, leases: Mapping[str, str]) -> set[str]:
        """One statement: of `leases` (job id -> token), the ids still leased under that
        token with the lease unexpired."""
        if not leases:
            return set()
        cursor = await conn.execute(
            jq.HELD_LEASES,
            (list(leases), list(leases.values()), namespace, now()),
            prepare=True,
            binary=True,
        )
        return {row[0] for row in await cursor.fetchall()}

    @borrowing()
    async def availability(self, conn: Conn, namespace: str, queue: str) -> Availability:
        """Indexed probes: does the queue hold a job a lease could take now, and any at all?"""
        cursor = await conn.execute(
            jq.AVAILABILITY, {"namespace": namespace, "queue": queue, "now": now()}, prepare=True
        )
        row = await cursor.fetchone()
        assert row is not None
        return Availability(bool(row[0]), bool(row[1]))

    @borrowing()
    async def list_jobs(self, conn: Conn, namespace: str, query: JobQuery) -> Page[Job]:
        params = list_params(namespace, query, now())
        cursor = await conn.execute(
            jq.LIST_JOBS[query.state, query.after is not None], params, prepare=True, binary=True
        )
        rows = await cursor.fetchall()
        items = [without_token(job_from_row(namespace, row)) for row in rows[: query.limit]]
        last_key = None
        if len(rows) > query.limit and items:
            last_key = (items[-1].create_time, items[-1].id)
        return Page(items, last_key)

    @borrowing()
    async def set_paused(
        self, conn: Conn, namespace: str, queue: str, paused: bool, *, actor: Actor
    ) -> None:
        await conn.execute(
            jq.SET_PAUSED,
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

    @borrowing()
    async def queue_stats(self, conn: Conn, namespace: str, queue: str) -> QueueStats:
        return await read_stats(conn, namespace, queue)

    @borrowing()
    async def list_queues(
        self, conn: Conn, namespace: str, limit: int, after: str | None
    ) -> Page[QueueStats]:
        return await read_queues(conn, namespace, limit, after)

    @borrowing()
    async def purge_completed(self, conn: Conn, finished_before: datetime, limit: int) -> int:
        """One statement (autocommit: its own transaction)."""
        if limit <= 0:
            return 0
        cursor = await conn.execute(
            jq.PURGE_COMPLETED,
            {"before": finished_before, "limit": limit, "window_start": now() - EXPIRY_WINDOW},
            prepare=True,
        )
        row = await cursor.fetchone()
        assert row is not None  # count(*) always returns a row
        purged: int = row[0]
        return purged
