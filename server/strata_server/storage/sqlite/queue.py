"""The durable job queue over SQLite (the `storage.ports.QueueStore` half of the adapter).

Every transition is planned by the pure rules in `core.queue` (plan_enqueue,
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

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any

from strata_server.core.errors import (
    Conflict,
    FailedPrecondition,
    NotFound,
    StrataError,
)
from strata_server.core.jsontypes import JSON
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
    job_from_json,
    job_to_json,
    leasable,
    new_lease_token,
    plan_ack,
    plan_cancel,
    plan_enqueue,
    plan_extend,
    plan_fail,
    plan_lease,
    plan_release,
    plan_retry,
    without_token,
)
from strata_server.core.validation import new_id
from strata_server.core.writes import AuditEntry
from strata_server.storage.sqlite.connection import Connections, Row, Transaction
from strata_server.storage.sqlite.dialect import from_micros, to_micros
from strata_server.storage.sqlite.request_log import store_result, stored_result
from strata_server.storage.sqlite.shared_sql import INSERT_AUDIT
from strata_server.storage.sqlquery import bad_token

ENTITY = "job"
PURGE_ACTOR = "system"

JOB_COLUMNS = (
    "namespace, queue, id, state, payload, priority, run_time, attempt, max_attempts, "
    "create_time, update_time, retry_backoff_us, unique_key, lease_token, "
    "lease_expire_time, last_error, result, finish_time"
)
"""The columns `job_from_row` reads and `_job_params` writes, in that order."""

LEASE_ORDER = "priority DESC, run_time, create_time, id"

INSERT_JOB = f"""
INSERT INTO jobs ({JOB_COLUMNS})
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING
RETURNING id
"""

SELECT_UNIQUE = f"""
SELECT {JOB_COLUMNS} FROM jobs
WHERE namespace = ? AND queue = ? AND unique_key = ? AND state IN ('ready', 'leased')
"""

SELECT_JOB = f"SELECT {JOB_COLUMNS} FROM jobs WHERE namespace = ? AND id = ?"

UPDATE_JOB = """
UPDATE jobs SET
    state = ?, priority = ?, run_time = ?, attempt = ?, max_attempts = ?, update_time = ?,
    lease_token = ?, lease_expire_time = ?, last_error = ?, result = ?, finish_time = ?
WHERE namespace = ? AND id = ?
"""

SELECT_PAUSED = "SELECT paused FROM queue_settings WHERE namespace = ? AND queue = ?"

# Two index-friendly halves (jobs_ready, jobs_leased), each already limited, merged
# into the one lease order.
SELECT_CANDIDATES = f"""
SELECT * FROM (
    SELECT * FROM (
        SELECT {JOB_COLUMNS} FROM jobs
        WHERE namespace = ? AND queue = ? AND state = 'ready' AND run_time <= ?
        ORDER BY {LEASE_ORDER} LIMIT ?
    )
    UNION ALL
    SELECT * FROM (
        SELECT {JOB_COLUMNS} FROM jobs
        WHERE namespace = ? AND queue = ? AND state = 'leased' AND lease_expire_time <= ?
        ORDER BY {LEASE_ORDER} LIMIT ?
    )
)
ORDER BY {LEASE_ORDER} LIMIT ?
"""

INSERT_EXPIRY = "INSERT INTO lease_expiries (namespace, queue, job_id, time) VALUES (?, ?, ?, ?)"

SELECT_UNIQUE_HOLDER = """
SELECT id FROM jobs
WHERE namespace = ? AND queue = ? AND unique_key = ? AND state IN ('ready', 'leased') AND id <> ?
"""

UPSERT_SETTINGS = """
INSERT INTO queue_settings (namespace, queue, paused) VALUES (?, ?, ?)
ON CONFLICT (namespace, queue) DO UPDATE SET paused = excluded.paused
"""

COUNT_BY_STATE = """
SELECT
    CASE
        WHEN state = 'ready' AND run_time > ?1 THEN 'scheduled'
        WHEN state = 'ready' THEN 'available'
        WHEN state = 'leased' AND lease_expire_time <= ?1 THEN 'available'
        WHEN state = 'leased' THEN 'leased'
        ELSE state
    END AS visible,
    count(*)
FROM jobs
WHERE namespace = ?2 AND queue = ?3
GROUP BY visible
"""

QUEUE_FIGURES = """
SELECT
    (SELECT paused FROM queue_settings WHERE namespace = ?2 AND queue = ?3),
    (SELECT min(since) FROM (
        SELECT min(run_time) AS since FROM jobs INDEXED BY jobs_ready
        WHERE namespace = ?2 AND queue = ?3 AND state = 'ready' AND run_time <= ?1
        UNION ALL
        SELECT min(lease_expire_time) FROM jobs
        WHERE namespace = ?2 AND queue = ?3 AND state = 'leased'
          AND lease_expire_time <= ?1
    )),
    (SELECT count(*) FROM lease_expiries
     WHERE namespace = ?2 AND queue = ?3 AND time > ?4)
"""

STATE_FILTERS: dict[Visible, str] = {
    Visible.AVAILABLE: (
        "((state = 'ready' AND run_time <= ?) OR (state = 'leased' AND lease_expire_time <= ?))"
    ),
    Visible.SCHEDULED: "(state = 'ready' AND run_time > ?)",
    Visible.LEASED: "(state = 'leased' AND lease_expire_time > ?)",
    Visible.COMPLETED: "(state = 'completed')",
    Visible.DEAD: "(state = 'dead')",
    Visible.CANCELLED: "(state = 'cancelled')",
}
"""SQL for "the visible state at ? is X", over the stored columns; one `?` per now."""

PURGE_COMPLETED = """
DELETE FROM jobs WHERE rowid IN (
    SELECT rowid FROM jobs WHERE state = 'completed' AND finish_time < ?
    ORDER BY finish_time LIMIT ?
)
RETURNING namespace, id
"""

PURGE_EXPIRIES = "DELETE FROM lease_expiries WHERE time <= ?"

_UNAUDITED = frozenset({"update_time"})
_ENQUEUE_FIELDS = frozenset({"namespace", "queue", "id", "create_time", "update_time"})


def _now() -> datetime:
    return datetime.now(UTC)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _micros(value: datetime | None) -> int | None:
    return to_micros(value) if value is not None else None


def _time(value: int | None) -> datetime | None:
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
        lease_expire_time=_time(row[14]),
        last_error=row[15],
        result=json.loads(row[16]) if row[16] is not None else None,
        finish_time=_time(row[17]),
    )


def _job_params(job: Job) -> tuple[Any, ...]:
    return (
        job.namespace,
        job.queue,
        job.id,
        job.state.value,
        _dumps(job.payload),
        job.priority,
        to_micros(job.run_time),
        job.attempt,
        job.max_attempts,
        to_micros(job.create_time),
        to_micros(job.update_time),
        backoff_us(job.retry_backoff),
        job.unique_key,
        job.lease_token,
        _micros(job.lease_expire_time),
        job.last_error,
        _dumps(job.result) if job.result is not None else None,
        _micros(job.finish_time),
    )


def _update_params(job: Job) -> tuple[Any, ...]:
    return (
        job.state.value,
        job.priority,
        to_micros(job.run_time),
        job.attempt,
        job.max_attempts,
        to_micros(job.update_time),
        job.lease_token,
        _micros(job.lease_expire_time),
        job.last_error,
        _dumps(job.result) if job.result is not None else None,
        _micros(job.finish_time),
        job.namespace,
        job.id,
    )


def _changed(old: Job, new: Job) -> tuple[str, ...]:
    return tuple(
        f.name
        for f in fields(Job)
        if f.name not in _UNAUDITED and getattr(old, f.name) != getattr(new, f.name)
    )


def _audit_row(
    namespace: str,
    now: int,
    actor: Actor,
    audit: AuditEntry,
    request_id: str | None = None,
) -> tuple[Any, ...]:
    return (
        namespace,
        now,
        actor.name,
        audit.action,
        audit.entity,
        audit.entity_id,
        audit.version,
        _dumps(list(audit.changed_fields)),
        request_id,
    )


def with_job_index(error: StrataError, index: int) -> StrataError:
    """Tag an error raised by one job of an enqueue batch with that job's position."""
    error.metadata.setdefault("job_index", str(index))
    return error


async def _read_job(tx: Transaction, namespace: str, id: str) -> Job:
    rows = await tx.fetchall(SELECT_JOB, (namespace, id))
    if not rows:
        raise NotFound(f"job {id} does not exist")
    return job_from_row(rows[0], with_token=True)


async def enqueue(
    db: Connections,
    namespace: str,
    jobs: Sequence[NewJob],
    *,
    actor: Actor,
    idempotency: Idempotency | None,
) -> list[Job]:
    now = _now()
    now_us = to_micros(now)
    request_id = idempotency.request_id if idempotency is not None else None
    async with db.transaction() as tx:
        if idempotency is not None:
            stored = await stored_result(tx, namespace, idempotency)
            if stored is not None:
                return [job_from_json(item) for item in stored]

        results = await insert_jobs(tx, namespace, jobs, now, actor=actor, request_id=request_id)
        if idempotency is not None:
            await store_result(
                tx, namespace, idempotency, [job_to_json(job) for job in results], now_us
            )
    return results


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
            inserted = await tx.fetchall(INSERT_JOB, _job_params(job))
            if not inserted:
                job = await _existing_unique(tx, namespace, job)
            else:
                changed = tuple(
                    f.name
                    for f in fields(Job)
                    if f.name not in _ENQUEUE_FIELDS and getattr(job, f.name) is not None
                )
                audit = AuditEntry("enqueue", ENTITY, job.id, job.attempt, changed)
                audits.append(_audit_row(namespace, now_us, actor, audit, request_id))
        except StrataError as error:
            raise with_job_index(error, index) from None
        results.append(job)
    if audits:
        await tx.executemany(INSERT_AUDIT, audits)
    return results


async def _existing_unique(tx: Transaction, namespace: str, job: Job) -> Job:
    """The unfinished job whose unique_key made the insert of `job` a no-op."""
    if job.unique_key is not None:
        rows = await tx.fetchall(SELECT_UNIQUE, (namespace, job.queue, job.unique_key))
        if rows:
            return job_from_row(rows[0])
    # Only an id collision (two server-chosen ids alike) can get here.
    raise Conflict(f"job id {job.id} was taken concurrently; retry the request")


async def lease_jobs(
    db: Connections,
    namespace: str,
    queue: str,
    max_jobs: int,
    lease: timedelta,
    *,
    actor: Actor,
    token_prefix: str = "",
) -> list[Job]:
    if max_jobs <= 0:
        return []
    now = _now()
    async with db.transaction() as tx:
        return await _lease_in(
            tx, namespace, queue, max_jobs, lease, now, actor=actor, token_prefix=token_prefix
        )


async def enqueue_and_lease(
    db: Connections,
    namespace: str,
    job: NewJob,
    handoff: Handoff,
    *,
    actor: Actor,
) -> tuple[Job, list[Job]]:
    """Insert one job, then lease one for `handoff` in the same transaction: the
    head of the queue, which is the new job when it is first in line."""
    now = _now()
    async with db.transaction() as tx:
        [created] = await insert_jobs(tx, namespace, [job], now, actor=actor, request_id=None)
        leased = await _lease_in(
            tx,
            namespace,
            job.queue,
            1,
            handoff.lease,
            now,
            actor=handoff.actor,
            token_prefix=handoff.token_prefix,
        )
    return created, leased


async def _lease_in(
    tx: Transaction,
    namespace: str,
    queue: str,
    max_jobs: int,
    lease: timedelta,
    now: datetime,
    *,
    actor: Actor,
    token_prefix: str,
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
            if not leasable(job, now):  # the SQL and core.queue agree; never trust one
                continue
            planned = plan_lease(job, new_lease_token(token_prefix), lease, now)
            updates.append(_update_params(planned))
            if job.state is Stored.LEASED:
                expiries.append((namespace, queue, job.id, now_us))
            action = "dead" if planned.state is Stored.DEAD else "lease"
            audit = AuditEntry(action, ENTITY, job.id, planned.attempt, _changed(job, planned))
            audits.append(_audit_row(namespace, now_us, actor, audit))
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


async def _transition(
    db: Connections,
    namespace: str,
    id: str,
    plan: Callable[[Job, datetime], Job],
    action: Callable[[Job], str],
    *,
    actor: Actor,
    check: Callable[[Transaction, Job], Any] | None = None,
) -> Job:
    """Read a job in a write transaction, apply `plan`, persist it and audit it."""
    now = _now()
    async with db.transaction() as tx:
        job = await _read_job(tx, namespace, id)
        planned = plan(job, now)
        if check is not None:
            await check(tx, planned)
        await tx.execute(UPDATE_JOB, _update_params(planned))
        audit = AuditEntry(action(planned), ENTITY, id, planned.attempt, _changed(job, planned))
        await tx.execute(INSERT_AUDIT, _audit_row(namespace, to_micros(now), actor, audit))
    return planned


def _fixed(name: str) -> Callable[[Job], str]:
    return lambda _job: name


async def ack_job(
    db: Connections, namespace: str, id: str, token: str, result: JSON | None, *, actor: Actor
) -> Job:
    job = await _transition(
        db,
        namespace,
        id,
        lambda job, now: plan_ack(job, token, result, now),
        _fixed("ack"),
        actor=actor,
    )
    return without_token(job)


async def ack_jobs(
    db: Connections, namespace: str, acks: Sequence[Ack], *, actor: Actor
) -> list[Job | StrataError]:
    """ack_job for each of `acks` in one write transaction; an ack that fails leaves
    the others to complete."""
    now = _now()
    outcomes: list[Job | StrataError] = []
    async with db.transaction() as tx:
        for ack in acks:
            try:
                job = await _read_job(tx, namespace, ack.id)
                planned = plan_ack(job, ack.token, ack.result, now)
            except StrataError as error:
                outcomes.append(error)
                continue
            await tx.execute(UPDATE_JOB, _update_params(planned))
            audit = AuditEntry("ack", ENTITY, ack.id, planned.attempt, _changed(job, planned))
            await tx.execute(INSERT_AUDIT, _audit_row(namespace, to_micros(now), actor, audit))
            outcomes.append(without_token(planned))
    return outcomes


async def fail_job(
    db: Connections,
    namespace: str,
    id: str,
    token: str,
    error: str,
    retry_delay: timedelta | None,
    *,
    actor: Actor,
) -> Job:
    job = await _transition(
        db,
        namespace,
        id,
        lambda job, now: plan_fail(job, token, error, retry_delay, now),
        lambda job: "dead" if job.state is Stored.DEAD else "fail",
        actor=actor,
    )
    return without_token(job)


async def release_job(db: Connections, namespace: str, id: str, token: str, *, actor: Actor) -> Job:
    job = await _transition(
        db,
        namespace,
        id,
        lambda job, now: plan_release(job, token, now),
        _fixed("release"),
        actor=actor,
    )
    return without_token(job)


async def extend_lease(
    db: Connections, namespace: str, id: str, token: str, lease: timedelta, *, actor: Actor
) -> Job:
    return await _transition(
        db,
        namespace,
        id,
        lambda job, now: plan_extend(job, token, lease, now),
        _fixed("extend"),
        actor=actor,
    )


async def cancel_job(db: Connections, namespace: str, id: str, *, actor: Actor) -> Job:
    job = await _transition(db, namespace, id, plan_cancel, _fixed("cancel"), actor=actor)
    return without_token(job)


async def _unique_key_free(tx: Transaction, job: Job) -> None:
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


async def retry_job(db: Connections, namespace: str, id: str, *, actor: Actor) -> Job:
    job = await _transition(
        db, namespace, id, plan_retry, _fixed("retry"), actor=actor, check=_unique_key_free
    )
    return without_token(job)


async def get_job(db: Connections, namespace: str, id: str) -> Job:
    rows = await db.fetchall(SELECT_JOB, (namespace, id))
    if not rows:
        raise NotFound(f"job {id} does not exist")
    return job_from_row(rows[0])


_HELD_CHUNK = 500
"""Ids per held_leases query: under SQLite's bound-parameter limit."""


async def held_leases(db: Connections, namespace: str, leases: Mapping[str, str]) -> set[str]:
    if not leases:
        return set()
    now_us = to_micros(_now())
    held: set[str] = set()
    ids = list(leases)
    for start in range(0, len(ids), _HELD_CHUNK):
        chunk = ids[start : start + _HELD_CHUNK]
        marks = ", ".join("?" * len(chunk))
        rows = await db.fetchall(
            f"SELECT id, lease_token FROM jobs WHERE namespace = ? AND id IN ({marks})"
            " AND state = 'leased' AND lease_expire_time > ?",
            (namespace, *chunk, now_us),
        )
        held.update(id for id, token in rows if leases[id] == token)
    return held


async def availability(db: Connections, namespace: str, queue: str) -> Availability:
    now_us = to_micros(_now())
    rows = await db.fetchall(
        "SELECT EXISTS (SELECT 1 FROM jobs WHERE namespace = ?1 AND queue = ?2"
        " AND state = 'ready' AND run_time <= ?3)"
        " OR EXISTS (SELECT 1 FROM jobs WHERE namespace = ?1 AND queue = ?2"
        " AND state = 'leased' AND lease_expire_time <= ?3),"
        " EXISTS (SELECT 1 FROM jobs WHERE namespace = ?1 AND queue = ?2 AND state = 'ready')"
        " OR EXISTS (SELECT 1 FROM jobs WHERE namespace = ?1 AND queue = ?2"
        " AND state = 'leased')",
        (namespace, queue, now_us),
    )
    return Availability(bool(rows[0][0]), bool(rows[0][1]))


def _list_key(after: tuple[Any, ...]) -> tuple[int, str]:
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


async def list_jobs(
    db: Connections,
    namespace: str,
    queue: str,
    state: Visible | None,
    limit: int,
    after: tuple[Any, ...] | None,
) -> Page[Job]:
    if limit <= 0:
        return Page(())
    where = ["namespace = ?", "queue = ?"]
    params: list[Any] = [namespace, queue]
    if state is not None:
        condition = STATE_FILTERS[state]
        where.append(condition)
        params.extend([to_micros(_now())] * condition.count("?"))
    if after is not None:
        where.append("(create_time, id) > (?, ?)")
        params.extend(_list_key(after))
    text = (
        f"SELECT {JOB_COLUMNS} FROM jobs WHERE {' AND '.join(where)} "
        "ORDER BY create_time, id LIMIT ?"
    )
    rows = await db.fetchall(text, [*params, limit + 1])
    served = rows[:limit]
    last_key = (served[-1][9], served[-1][2]) if len(rows) > limit else None
    return Page([job_from_row(row) for row in served], last_key)


async def set_paused(
    db: Connections, namespace: str, queue: str, paused: bool, *, actor: Actor
) -> None:
    now_us = to_micros(_now())
    audit = AuditEntry("pause" if paused else "resume", ENTITY, queue, 0, ("paused",))
    async with db.transaction() as tx:
        await tx.execute(UPSERT_SETTINGS, (namespace, queue, int(paused)))
        await tx.execute(INSERT_AUDIT, _audit_row(namespace, now_us, actor, audit))


async def queue_stats(db: Connections, namespace: str, queue: str) -> QueueStats:
    now = _now()
    now_us = to_micros(now)
    rows = await db.fetchall(COUNT_BY_STATE, (now_us, namespace, queue))
    counts = dict.fromkeys(Visible, 0)
    for visible, count in rows:
        counts[Visible(visible)] = int(count)
    [(paused, since, expired)] = await db.fetchall(
        QUEUE_FIGURES, (now_us, namespace, queue, to_micros(now - EXPIRY_WINDOW))
    )
    age = max(now - from_micros(since), timedelta(0)) if since is not None else timedelta(0)
    return QueueStats(
        namespace=namespace,
        queue=queue,
        paused=bool(paused),
        counts=counts,
        oldest_available_age=age,
        expired_leases=int(expired),
    )


async def purge_completed(db: Connections, finished_before: datetime, limit: int) -> int:
    if limit <= 0:
        return 0
    now = _now()
    async with db.transaction() as tx:
        rows = await tx.fetchall(PURGE_COMPLETED, (to_micros(finished_before), limit))
        await tx.execute(PURGE_EXPIRIES, (to_micros(now - EXPIRY_WINDOW),))
    return len(rows)
