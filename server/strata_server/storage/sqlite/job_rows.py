"""One job's row on SQLite: read back and written, with its audit entry; the insert
every enqueue takes (Commit's included); and the one transaction shape every other
transition takes (`transition`): read the job, plan, write back, audit."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any

from strata_server.core.errors import (
    Conflict,
    FailedPrecondition,
    NotFound,
    StrataError,
)
from strata_server.core.job_transitions import (
    Job,
    NewJob,
    Stored,
    backoff_us,
    leasable,
    new_lease_token,
    plan_enqueue,
    plan_lease,
    without_token,
)
from strata_server.core.models import Actor
from strata_server.core.validation import new_id
from strata_server.core.writes import AuditEntry
from strata_server.storage.ports.queue import LeaseTerms
from strata_server.storage.sqlite.connection import Connections, Row, Transaction
from strata_server.storage.sqlite.dialect import from_micros, to_micros
from strata_server.storage.sqlite.queue_queries import (
    ENTITY,
    INSERT_EXPIRY,
    INSERT_JOB,
    SELECT_CANDIDATES,
    SELECT_JOB,
    SELECT_PAUSED,
    SELECT_UNIQUE,
    SELECT_UNIQUE_HOLDER,
    UPDATE_JOB,
)
from strata_server.storage.sqlite.shared_sql import INSERT_AUDIT
from strata_server.storage.sqlquery import bad_token

_UNAUDITED = frozenset({"update_time"})


_ENQUEUE_FIELDS = frozenset({"namespace", "queue", "id", "create_time", "update_time"})


def utc_now() -> datetime:
    return datetime.now(UTC)


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def micros(value: datetime | None) -> int | None:
    return to_micros(value) if value is not None else None


def time_or_none(value: int | None) -> datetime | None:
    return from_micros(value) if value is not None else None


def job_from_row(row: Row, *, with_token: bool = False) -> Job:
    """A Job from a row selected with JOB_COLUMNS; the lease token only if asked."""
    backoff_us = row[11]
    return Job(
        namespace=row[0],
        queue=row[1],
        id=row[2],
        state=Stored(row[3]),
        payload=json.loads(row[4]),
        priority=row[5],
        run_time=from_micros(row[6]),
        attempt=row[7],
        max_attempts=row[8],
        create_time=from_micros(row[9]),
        update_time=from_micros(row[10]),
        retry_backoff=timedelta(microseconds=backoff_us) if backoff_us is not None else None,
        unique_key=row[12],
        lease_token=row[13] if with_token else None,
        lease_expire_time=time_or_none(row[14]),
        last_error=row[15],
        result=json.loads(row[16]) if row[16] is not None else None,
        finish_time=time_or_none(row[17]),
    )


def job_params(job: Job) -> tuple[Any, ...]:
    return (
        job.namespace,
        job.queue,
        job.id,
        job.state.value,
        dumps(job.payload),
        job.priority,
        to_micros(job.run_time),
        job.attempt,
        job.max_attempts,
        to_micros(job.create_time),
        to_micros(job.update_time),
        backoff_us(job.retry_backoff),
        job.unique_key,
        job.lease_token,
        micros(job.lease_expire_time),
        job.last_error,
        dumps(job.result) if job.result is not None else None,
        micros(job.finish_time),
    )


def update_params(job: Job) -> tuple[Any, ...]:
    return (
        job.state.value,
        job.priority,
        to_micros(job.run_time),
        job.attempt,
        job.max_attempts,
        to_micros(job.update_time),
        job.lease_token,
        micros(job.lease_expire_time),
        job.last_error,
        dumps(job.result) if job.result is not None else None,
        micros(job.finish_time),
        job.namespace,
        job.id,
    )


def changed(old: Job, new: Job) -> tuple[str, ...]:
    return tuple(
        f.name
        for f in fields(Job)
        if f.name not in _UNAUDITED and getattr(old, f.name) != getattr(new, f.name)
    )


def audit_row(
    namespace: str, now: int, actor: Actor, audit: AuditEntry, request_id: str | None = None
) -> tuple[Any, ...]:
    return (
        namespace,
        now,
        actor.name,
        audit.action,
        audit.entity,
        audit.entity_id,
        audit.version,
        dumps(list(audit.changed_fields)),
        request_id,
    )


def with_job_index(error: StrataError, index: int) -> StrataError:
    """Tag an error raised by one job of an enqueue batch with that job's position."""
    error.metadata.setdefault("job_index", str(index))
    return error


async def read_job(tx: Transaction, namespace: str, id: str) -> Job:
    rows = await tx.fetchall(SELECT_JOB, (namespace, id))
    if not rows:
        raise NotFound(f"job {id} does not exist")
    return job_from_row(rows[0], with_token=True)


async def insert_jobs(
    tx: Transaction,
    namespace: str,
    jobs: Sequence[NewJob],
    now: datetime,
    *,
    actor: Actor,
    request_id: str | None,
) -> list[Job]:
    """Insert `jobs` inside the open transaction `tx` (an Enqueue's, or a Commit's
    that also writes records), with audit entries. A job whose unique_key is held by
    an unfinished job yields that job. Errors carry `job_index`."""
    now_us = to_micros(now)
    results: list[Job] = []
    audits: list[tuple[Any, ...]] = []
    for index, new in enumerate(jobs):
        try:
            job = plan_enqueue(namespace, new, new_id(), now)
            inserted = await tx.fetchall(INSERT_JOB, job_params(job))
            if not inserted:
                job = await existing_unique(tx, namespace, job)
            else:
                changed = tuple(
                    f.name
                    for f in fields(Job)
                    if f.name not in _ENQUEUE_FIELDS and getattr(job, f.name) is not None
                )
                audit = AuditEntry("enqueue", ENTITY, job.id, job.attempt, changed)
                audits.append(audit_row(namespace, now_us, actor, audit, request_id))
        except StrataError as error:
            raise with_job_index(error, index) from None
        results.append(job)
    if audits:
        await tx.executemany(INSERT_AUDIT, audits)
    return results


async def existing_unique(tx: Transaction, namespace: str, job: Job) -> Job:
    """The unfinished job whose unique_key made the insert of `job` a no-op."""
    if job.unique_key is not None:
        rows = await tx.fetchall(SELECT_UNIQUE, (namespace, job.queue, job.unique_key))
        if rows:
            return job_from_row(rows[0])
    # Only an id collision (two server-chosen ids alike) can get here.
    raise Conflict(f"job id {job.id} was taken concurrently; retry the request")


async def lease_in(
    tx: Transaction, namespace: str, queue: str, max_jobs: int, terms: LeaseTerms, now: datetime
) -> list[Job]:
    """Lease up to `max_jobs` jobs inside the open transaction `tx`."""
    now_us = to_micros(now)
    leased: list[Job] = []
    paused = await tx.fetchall(SELECT_PAUSED, (namespace, queue))
    if paused and paused[0][0]:
        return []
    audits: list[tuple[Any, ...]] = []
    expiries: list[tuple[Any, ...]] = []
    updates: list[tuple[Any, ...]] = []
    while len(leased) < max_jobs:
        want = max_jobs - len(leased)
        rows = await tx.fetchall(
            SELECT_CANDIDATES,
            (namespace, queue, now_us, want, namespace, queue, now_us, want, want),
        )
        died = 0
        for row in rows:
            job = job_from_row(row, with_token=True)
            if not leasable(job, now):  # the SQL and core.job_transitions agree; never trust one
                continue
            planned = plan_lease(job, new_lease_token(terms.token_prefix), terms.lease, now)
            updates.append(update_params(planned))
            if job.state is Stored.LEASED:
                expiries.append((namespace, queue, job.id, now_us))
            action = "dead" if planned.state is Stored.DEAD else "lease"
            audit = AuditEntry(action, ENTITY, job.id, planned.attempt, changed(job, planned))
            audits.append(audit_row(namespace, now_us, terms.actor, audit))
            if planned.state is Stored.DEAD:
                died += 1
            else:
                leased.append(planned)
        if updates:
            # Persist before selecting again, so the next round sees these rows
            # as leased (or dead) and does not pick them up a second time.
            await tx.executemany(UPDATE_JOB, updates)
            updates = []
        if len(rows) < want or died == 0:
            break  # no more candidates, or every candidate was leased
    if expiries:
        await tx.executemany(INSERT_EXPIRY, expiries)
    if audits:
        await tx.executemany(INSERT_AUDIT, audits)
    return leased


async def write_planned(
    tx: Transaction, old: Job, new: Job, action: str, now: datetime, *, actor: Actor
) -> None:
    """Write back a job's planned transition from `old` to `new` with its audit entry,
    whose action is "dead" when the transition killed the job (a failed last
    attempt), as on PostgreSQL."""
    if new.state is Stored.DEAD and old.state is not Stored.DEAD:
        action = "dead"
    await tx.execute(UPDATE_JOB, update_params(new))
    audit = AuditEntry(action, ENTITY, new.id, new.attempt, changed(old, new))
    await tx.execute(INSERT_AUDIT, audit_row(new.namespace, to_micros(now), actor, audit))


async def transition(
    db: Connections,
    namespace: str,
    id: str,
    plan: Callable[[Job, datetime], Job],
    action: str,
    *,
    actor: Actor,
    check: Callable[[Transaction, Job], Any] | None = None,
    keep_token: bool = False,
) -> Job:
    """Read a job in a write transaction, apply `plan`, persist it and audit it. The
    job is answered without its lease token unless `keep_token` (a heartbeat: only
    the worker holding the lease may hold its token)."""
    now = utc_now()
    async with db.transaction() as tx:
        job = await read_job(tx, namespace, id)
        planned = plan(job, now)
        if check is not None:
            await check(tx, planned)
        await write_planned(tx, job, planned, action, now, actor=actor)
    return planned if keep_token else without_token(planned)


async def unique_key_free(tx: Transaction, job: Job) -> None:
    """Refuse to revive a job whose unique_key another unfinished job now holds (the
    partial unique index would refuse the update; say why instead)."""
    if job.unique_key is None:
        return
    rows = await tx.fetchall(
        SELECT_UNIQUE_HOLDER, (job.namespace, job.queue, job.unique_key, job.id)
    )
    if rows:
        raise FailedPrecondition(
            f"job {job.id} cannot be retried: unfinished job {rows[0][0]} holds its unique_key",
            reason="UNIQUE_KEY_IN_USE",
            metadata={"job_id": str(rows[0][0])},
        )


def list_key(after: tuple[Any, ...]) -> tuple[int, str]:
    """The (create_time micros, id) key of a page token; a datetime (as another
    backend's token may hold) is accepted too."""
    if len(after) != 2 or not isinstance(after[1], str):
        raise bad_token()
    create_time = after[0]
    if isinstance(create_time, datetime) and create_time.tzinfo is not None:
        return to_micros(create_time), after[1]
    if type(create_time) is not int:
        raise bad_token()
    return create_time, after[1]
