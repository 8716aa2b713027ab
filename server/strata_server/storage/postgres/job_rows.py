"""One job's row on PostgreSQL: read back, inserted (by every enqueue, Commit's
included), and the two ways a transition is written (`queue.py` says which takes
which): one statement that checks the lease itself (`settle`), or a locked row
planned in Python (`transition`); and the parameters and results of the queue's
other statements, where they take more than a line.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from strata_server.core.errors import Conflict, InvalidArgument, NotFound, StrataError
from strata_server.core.job_transitions import (
    Ack,
    Job,
    NewJob,
    Stored,
    Visible,
    backoff_us,
    check_lease,
    job_from_json,
    job_to_json,
    new_lease_token,
    plan_enqueue,
    plan_lease,
    without_token,
)
from strata_server.core.jsontypes import dumps, serialize
from strata_server.core.models import Actor, Handoff, Idempotency
from strata_server.core.validation import new_id
from strata_server.storage.events_relay import POSTGRES_CHANNEL as EVENTS_CHANNEL
from strata_server.storage.ports.queue import JobQuery
from strata_server.storage.postgres import job_queries as jq
from strata_server.storage.postgres import queue_queries as q
from strata_server.storage.postgres.pool import Conn
from strata_server.storage.postgres.record_rows import now
from strata_server.storage.postgres.request_log import claim_request

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


_ENQUEUE_ATTEMPTS = 3


_UNAUDITED = frozenset({"update_time"})


_FIELDS = tuple(f.name for f in dataclasses.fields(Job) if f.name not in _UNAUDITED)


DIED = plan_lease(
    Job(
        namespace="",
        queue="",
        id="",
        state=Stored.LEASED,
        payload={},
        priority=0,
        run_time=EPOCH,
        attempt=1,
        max_attempts=1,
        create_time=EPOCH,
        update_time=EPOCH,
    ),
    "",
    timedelta(0),
    EPOCH,
).last_error
"""The last_error core.job_transitions.plan_lease gives a job reclaimed on its last attempt."""


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


def payload_text(index: int, job: NewJob) -> str:
    """The stored JSON text of a job's payload, refusing what jsonb cannot hold (the
    shared rules of core.writes.serialize; the API layer already applied the size
    limit), tagged with the job's index."""
    try:
        return serialize(job.payload, sys.maxsize, "payload", "job payload")
    except StrataError as error:
        raise tag(error, index) from None


def tag(error: StrataError, index: int) -> StrataError:
    error.metadata.setdefault("job_index", str(index))
    return error


async def insert_jobs(
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
    texts = [payload_text(index, job) for index, job in enumerate(jobs)]
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
    raise tag(
        Conflict("the job holding this unique_key keeps finishing concurrently; retry"),
        pending[0],
    )


async def _store_result(
    conn: Conn, namespace: str, request_id: str, results: Sequence[Job | None]
) -> None:
    text = dumps([job_to_json(job) for job in results if job is not None])
    await conn.execute(q.STORE_RESULT, (text, namespace, request_id), prepare=True)


async def settle(
    conn: Conn,
    statement: Any,
    namespace: str,
    id: str,
    token: str,
    *,
    actor: Actor,
    at: datetime,
    **values: Any,
) -> Job:
    """Run a one-statement transition of a lease holder (`job_queries._settle`), at
    time `at` with the statement's own `values`: the job written, or, when the lease
    is not held, NotFound for an unknown job and otherwise the LEASE_LOST
    core.job_transitions.check_lease raises, read afterwards."""
    params = {"namespace": namespace, "id": id, "token": token, "now": at, "actor": actor.name}
    cursor = await conn.execute(statement, params | values, prepare=True, binary=True)
    row = await cursor.fetchone()
    if row is not None:
        return job_from_row(namespace, row)
    # The job as anyone sees it, without its token: check_lease refuses it whatever
    # it holds now, with the message and metadata (its visible state) of a lost lease.
    check_lease(await read_job(conn, namespace, id), token, now())
    raise AssertionError("check_lease accepts no job without a lease_token")  # pragma: no cover


async def settled(
    conn: Conn, namespace: str, acks: Sequence[Ack], done: Mapping[str, Job]
) -> list[Job | StrataError]:
    """Per ack, the job `job_queries.ACK_JOBS` completed (in `done`, by id), or the
    error `settle` would raise for it, read now (rare: a lost lease)."""
    outcomes: list[Job | StrataError] = []
    for ack in acks:
        job = done.get(ack.id)
        if job is not None:
            outcomes.append(without_token(job))
            continue
        try:
            # As in settle: the job as anyone sees it (no token), which check_lease
            # refuses with a lost lease's message and metadata.
            check_lease(await read_job(conn, namespace, ack.id), ack.token, now())
            raise AssertionError("check_lease accepts no job without a token")  # pragma: no cover
        except StrataError as error:
            outcomes.append(error)
    return outcomes


async def transition(
    conn: Conn,
    namespace: str,
    id: str,
    plan: Callable[[Job, datetime], Job],
    action: str,
    *,
    actor: Actor,
) -> Job:
    """Lock one job, plan its transition, write it with its audit entry."""
    cursor = await conn.execute(jq.LOCK_JOB, (namespace, id), prepare=True, binary=True)
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


async def read_job(conn: Conn, namespace: str, id: str) -> Job:
    """One job as anyone sees it (without its lease_token), or NotFound."""
    cursor = await conn.execute(jq.GET_JOB, (namespace, id), prepare=True, binary=True)
    row = await cursor.fetchone()
    if row is None:
        raise NotFound(f"job {id} does not exist")
    return without_token(job_from_row(namespace, row))


def handed_params(
    planned: Job,
    payload: str,
    at: datetime,
    handoff: Handoff,
    *,
    actor: Actor,
    notices: Sequence[str],
) -> dict[str, Any]:
    """The parameters of `queue_queries.ENQUEUE_HANDED` for a job planned at `at`."""
    return {
        "namespace": planned.namespace,
        "queue": planned.queue,
        "id": planned.id,
        "payload": payload,
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
    }


def list_params(namespace: str, query: JobQuery, at: datetime) -> dict[str, Any]:
    """The parameters of `job_queries.LIST_JOBS`; InvalidArgument for a page key
    this server cannot have made."""
    params: dict[str, Any] = {
        "namespace": namespace,
        "queue": query.queue,
        "limit": query.limit + 1,
    }
    if query.state in (Visible.AVAILABLE, Visible.SCHEDULED, Visible.LEASED):
        params["now"] = at
    if query.after is not None:
        if len(query.after) != 2:
            raise InvalidArgument.field("page_token", "is not a ListJobs page token")
        after_time, after_id = query.after
        if isinstance(after_time, int) and not isinstance(after_time, bool):
            after_time = EPOCH + timedelta(microseconds=after_time)  # SQLite's key unit
        if not isinstance(after_time, datetime) or not isinstance(after_id, str):
            raise InvalidArgument.field("page_token", "is not a ListJobs page token")
        params["after_time"], params["after_id"] = after_time, after_id
    return params
