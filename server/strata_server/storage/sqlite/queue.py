"""The durable job queue over SQLite (the `QueueStore` adapter).

Every transition is planned by the pure rules in `core.job_transitions` (plan_enqueue,
plan_lease, plan_ack, ...); this module only reads the job, persists what the plan
returns and appends the audit entry, all in one `BEGIN IMMEDIATE` transaction on
the writer. SQLite has one writer at a time (across processes too), so a lease's
select-then-update cannot hand the same job to two callers.

No sweeper is needed: a leased job whose lease has expired is a lease candidate
again, and the lease that reclaims it records a `lease_expiries` row for the stats.
Enqueue deduplicates by unique_key with an insert that yields to the partial unique
index (`ON CONFLICT DO NOTHING`), then reads the job that won.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from strata_server.core.errors import (
    NotFound,
    StrataError,
)
from strata_server.core.job_transitions import (
    EXPIRY_WINDOW,
    Ack,
    Availability,
    Job,
    NewJob,
    QueueStats,
    job_from_json,
    job_to_json,
    plan_ack,
    plan_cancel,
    plan_extend,
    plan_fail,
    plan_release,
    plan_retry,
    without_token,
)
from strata_server.core.jsontypes import JSON
from strata_server.core.models import Actor, Handoff, Page
from strata_server.core.writes import AuditEntry
from strata_server.storage.ports.queue import Failure, JobQuery, LeaseTerms
from strata_server.storage.ports.write_context import WriteContext
from strata_server.storage.queue_stats_rows import queue_stats, queues_page
from strata_server.storage.sqlite.connection import Connections
from strata_server.storage.sqlite.dialect import SQLITE, from_micros, to_micros
from strata_server.storage.sqlite.job_rows import (
    audit_row,
    insert_jobs,
    job_from_row,
    lease_in,
    list_key,
    read_job,
    transition,
    unique_key_free,
    utc_now,
    write_planned,
)
from strata_server.storage.sqlite.queue_queries import (
    AVAILABILITY,
    COUNT_BY_STATE,
    ENTITY,
    JOB_COLUMNS,
    LIST_QUEUES,
    PURGE_COMPLETED,
    PURGE_EXPIRIES,
    QUEUE_FIGURES,
    SELECT_JOB,
    STATE_FILTERS,
    UPSERT_SETTINGS,
)
from strata_server.storage.sqlite.request_log import store_result, stored_result
from strata_server.storage.sqlite.shared_sql import INSERT_AUDIT

_HELD_CHUNK = 500
"""Ids per held_leases query: under SQLite's bound-parameter limit."""


class SqliteQueue:
    """`QueueStore` over SQLite (see the module docstring). Commit notices are never
    given here: the embedded shape has no other replicas."""

    def __init__(self, db: Connections) -> None:
        self._db = db

    async def enqueue(
        self, namespace: str, jobs: Sequence[NewJob], context: WriteContext
    ) -> list[Job]:
        now = utc_now()
        now_us = to_micros(now)
        idempotency = context.idempotency
        async with self._db.transaction() as tx:
            if idempotency is not None:
                stored = await stored_result(tx, namespace, idempotency)
                if stored is not None:
                    return [job_from_json(item) for item in stored]

            results = await insert_jobs(
                tx, namespace, jobs, now, actor=context.actor, request_id=context.request_id
            )
            if idempotency is not None:
                await store_result(
                    tx, namespace, idempotency, [job_to_json(job) for job in results], now_us
                )
        return results

    async def lease_jobs(
        self, namespace: str, queue: str, max_jobs: int, terms: LeaseTerms
    ) -> list[Job]:
        if max_jobs <= 0:
            return []
        now = utc_now()
        async with self._db.transaction() as tx:
            return await lease_in(tx, namespace, queue, max_jobs, terms, now)

    async def enqueue_and_lease(
        self, namespace: str, job: NewJob, handoff: Handoff, context: WriteContext
    ) -> tuple[Job, list[Job]]:
        """Insert one job, then lease one for `handoff` in the same transaction: the
        head of the queue, which is the new job when it is first in line."""
        now = utc_now()
        terms = LeaseTerms(handoff.lease, handoff.actor, handoff.token_prefix)
        async with self._db.transaction() as tx:
            [created] = await insert_jobs(
                tx, namespace, [job], now, actor=context.actor, request_id=None
            )
            leased = await lease_in(tx, namespace, job.queue, 1, terms, now)
        # The new job as it is now: leased, when it was first in line (as PostgreSQL's one
        # statement returns it).
        return next((j for j in leased if j.id == created.id), created), leased

    async def ack_job(
        self, namespace: str, id: str, token: str, result: JSON | None, *, actor: Actor
    ) -> Job:
        return await transition(
            self._db,
            namespace,
            id,
            lambda job, now: plan_ack(job, token, result, now),
            "ack",
            actor=actor,
        )

    async def ack_jobs(
        self, namespace: str, acks: Sequence[Ack], *, actor: Actor
    ) -> list[Job | StrataError]:
        """ack_job for each of `acks` in one write transaction; an ack that fails leaves
        the others to complete."""
        now = utc_now()
        outcomes: list[Job | StrataError] = []
        async with self._db.transaction() as tx:
            for ack in acks:
                try:
                    job = await read_job(tx, namespace, ack.id)
                    planned = plan_ack(job, ack.token, ack.result, now)
                except StrataError as error:
                    outcomes.append(error)
                    continue
                await write_planned(tx, job, planned, "ack", now, actor=actor)
                outcomes.append(without_token(planned))
        return outcomes

    async def fail_job(
        self, namespace: str, id: str, token: str, failure: Failure, *, actor: Actor
    ) -> Job:
        return await transition(
            self._db,
            namespace,
            id,
            lambda job, now: plan_fail(job, token, failure.error, failure.retry_delay, now),
            "fail",
            actor=actor,
        )

    async def release_job(self, namespace: str, id: str, token: str, *, actor: Actor) -> Job:
        return await transition(
            self._db,
            namespace,
            id,
            lambda job, now: plan_release(job, token, now),
            "release",
            actor=actor,
        )

    async def extend_lease(
        self, namespace: str, id: str, token: str, lease: timedelta, *, actor: Actor
    ) -> Job:
        return await transition(
            self._db,
            namespace,
            id,
            lambda job, now: plan_extend(job, token, lease, now),
            "extend",
            actor=actor,
            keep_token=True,
        )

    async def cancel_job(self, namespace: str, id: str, *, actor: Actor) -> Job:
        return await transition(self._db, namespace, id, plan_cancel, "cancel", actor=actor)

    async def retry_job(self, namespace: str, id: str, *, actor: Actor) -> Job:
        return await transition(
            self._db, namespace, id, plan_retry, "retry", actor=actor, check=unique_key_free
        )

    async def get_job(self, namespace: str, id: str) -> Job:
        rows = await self._db.fetchall(SELECT_JOB, (namespace, id))
        if not rows:
            raise NotFound(f"job {id} does not exist")
        return job_from_row(rows[0])

    async def held_leases(self, namespace: str, leases: Mapping[str, str]) -> set[str]:
        if not leases:
            return set()
        now_us = to_micros(utc_now())
        held: set[str] = set()
        ids = list(leases)
        for start in range(0, len(ids), _HELD_CHUNK):
            chunk = ids[start : start + _HELD_CHUNK]
            marks = ", ".join("?" * len(chunk))
            rows = await self._db.fetchall(
                f"SELECT id, lease_token FROM jobs WHERE namespace = ? AND id IN ({marks})"
                " AND state = 'leased' AND lease_expire_time > ?",
                (namespace, *chunk, now_us),
            )
            held.update(id for id, token in rows if leases[id] == token)
        return held

    async def availability(self, namespace: str, queue: str) -> Availability:
        rows = await self._db.fetchall(AVAILABILITY, (namespace, queue, to_micros(utc_now())))
        return Availability(bool(rows[0][0]), bool(rows[0][1]))

    async def list_jobs(self, namespace: str, query: JobQuery) -> Page[Job]:
        if query.limit <= 0:
            return Page(())
        where = ["namespace = ?", "queue = ?"]
        params: list[Any] = [namespace, query.queue]
        if query.state is not None:
            condition = STATE_FILTERS[query.state]
            where.append(condition)
            params.extend([to_micros(utc_now())] * condition.count("?"))
        if query.after is not None:
            where.append("(create_time, id) > (?, ?)")
            params.extend(list_key(query.after))
        text = (
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE {' AND '.join(where)} "
            "ORDER BY create_time, id LIMIT ?"
        )
        rows = await self._db.fetchall(text, [*params, query.limit + 1])
        served = rows[: query.limit]
        last_key = (served[-1][9], served[-1][2]) if len(rows) > query.limit else None
        return Page([job_from_row(row) for row in served], last_key)

    async def set_paused(self, namespace: str, queue: str, paused: bool, *, actor: Actor) -> None:
        now_us = to_micros(utc_now())
        audit = AuditEntry("pause" if paused else "resume", ENTITY, queue, 0, ("paused",))
        async with self._db.transaction() as tx:
            await tx.execute(UPSERT_SETTINGS, (namespace, queue, int(paused)))
            await tx.execute(INSERT_AUDIT, audit_row(namespace, now_us, actor, audit))

    async def queue_stats(self, namespace: str, queue: str) -> QueueStats:
        now = utc_now()
        now_us = to_micros(now)
        counts = await self._db.fetchall(COUNT_BY_STATE, (now_us, namespace, queue))
        [(paused, since, expired)] = await self._db.fetchall(
            QUEUE_FIGURES, (now_us, namespace, queue, to_micros(now - EXPIRY_WINDOW))
        )
        figures = (paused, expired, from_micros(since) if since is not None else None)
        return queue_stats(namespace, queue, now, figures, counts)

    async def list_queues(self, namespace: str, limit: int, after: str | None) -> Page[QueueStats]:
        if limit <= 0:
            return Page(())
        now = utc_now()
        rows = await self._db.fetchall(
            LIST_QUEUES,
            (
                to_micros(now),
                namespace,
                after if after is not None else "",
                limit + 1,
                to_micros(now - EXPIRY_WINDOW),
            ),
        )
        return queues_page(SQLITE, namespace, now, rows, limit)

    async def purge_completed(self, finished_before: datetime, limit: int) -> int:
        if limit <= 0:
            return 0
        now = utc_now()
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(PURGE_COMPLETED, (to_micros(finished_before), limit))
            await tx.execute(PURGE_EXPIRIES, (to_micros(now - EXPIRY_WINDOW),))
        return len(rows)
