"""The write path: Commit (with idempotent retries) and the purge of expired records.

A commit runs in one READ COMMITTED transaction, in at most four statements however
many writes it holds (plus one to three when it deletes records, for their children):

1. With a request_id, claim it: `INSERT ... ON CONFLICT DO NOTHING` into request_log.
   Two retries of one request race on that unique key; the second waits until the
   first commits, then reads its fingerprint and result (or, if the first rolled
   back, claims the id itself). So a request's writes happen at most once.
2. Lock the stored rows of every key the writes touch (`SELECT ... FOR UPDATE`,
   expired rows included, in key order). Concurrent commits on one record queue up
   here, so each `expected_version` is checked against the latest committed version:
   of N concurrent updates expecting version v, exactly one wins.
   Enqueues and transcript appends (each under its transcript's row lock) are
   written before that, in this transaction.
3. Plan each write in order with `core.writes.plan_write`, against the rows as the
   earlier writes of this commit left them. A domain error rolls everything back,
   tagged with its write index, before anything has been written.
4. The records it deletes that transcripts or artifacts name as their parent: the
   commit is refused (HasChildren), or with `cascade` they are deleted, their audit
   entries joining the commit's (record_children.py).
5. Persist the final state of each key, the audit entries and the request_log result
   in one statement (`queries.PERSIST`). A key that was absent at step 2 is inserted
   with ON CONFLICT DO NOTHING: if a concurrent commit created it meanwhile, the
   insert is skipped and this commit fails with AlreadyExists (for a create) or
   Conflict, instead of a raw unique violation.

A commit of creates of new keys with no request_id (`optimistic`, the common
CreateRecord) skips steps 1, 2 and 4, so it is one statement (`queries.PERSIST_NEW`),
run on its own without BEGIN/COMMIT: one round trip instead of three.

The request's `notices` (the wakeups of other replicas) are NOTIFYd from the
commit's own transaction, by PERSIST_NEW itself or by one statement after step 5,
so they reach the other replicas when it commits, with no statement after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import errors as pg_errors

from strata_server.core import codec
from strata_server.core.errors import (
    AlreadyExists,
    Conflict,
    StrataError,
    with_write_index,
)
from strata_server.core.job_transitions import Job, NewJob
from strata_server.core.jsontypes import dumps
from strata_server.core.models import (
    CreateRecord,
    Deleted,
    DeleteRecord,
    Record,
    RecordRef,
    RecordWrite,
    UpdateRecord,
    Write,
    WriteResult,
)
from strata_server.core.parent_refs import ParentDelete, ParentRef
from strata_server.core.transcript_rules import Appended, AppendEntries
from strata_server.core.writes import AuditEntry
from strata_server.storage.commit_plan import CommitPlan, Key, with_children
from strata_server.storage.events_relay import POSTGRES_CHANNEL as EVENTS_CHANNEL
from strata_server.storage.ports.records import CommitRequest
from strata_server.storage.postgres import queries, transcripts
from strata_server.storage.postgres.job_rows import insert_jobs
from strata_server.storage.postgres.pool import Conn
from strata_server.storage.postgres.record_children import settle_children
from strata_server.storage.postgres.record_rows import now, record_from_row
from strata_server.storage.postgres.request_log import claim_request


def _record_writes(writes: Sequence[Write]) -> list[tuple[int, RecordWrite]]:
    """The record writes among `writes`, with their positions."""
    return [
        (index, write)
        for index, write in enumerate(writes)
        if isinstance(write, CreateRecord | UpdateRecord | DeleteRecord)
    ]


async def _lock_current(conn: Conn, namespace: str, keys: Sequence[Key]) -> dict[Key, Record]:
    cursor = await conn.execute(
        queries.LOCK_CURRENT,
        ([key[0] for key in keys], [key[1] for key in keys], namespace),
        prepare=True,
        binary=True,
    )
    return {(row[0], row[1]): record_from_row(namespace, row) for row in await cursor.fetchall()}


def _record_arrays(prefix: str, rows: list[tuple[Record, str]]) -> dict[str, list[Any]]:
    return {
        f"{prefix}collection": [row.collection for row, _ in rows],
        f"{prefix}id": [row.id for row, _ in rows],
        f"{prefix}data": [text for _, text in rows],
        f"{prefix}version": [row.version for row, _ in rows],
        f"{prefix}create_time": [row.create_time for row, _ in rows],
        f"{prefix}update_time": [row.update_time for row, _ in rows],
        f"{prefix}expire_time": [row.expire_time for row, _ in rows],
        f"{prefix}owner": [row.owner or None for row, _ in rows],
    }


def _lost_race(writes: Sequence[Write], key: Key) -> StrataError:
    """The error for a key another transaction created while this commit was planning."""
    index, write = next((i, w) for i, w in _record_writes(writes) if (w.collection, w.id) == key)
    error: StrataError
    if isinstance(write, CreateRecord):
        error = AlreadyExists(f"record {key[0]}/{key[1]} already exists")
    else:
        error = Conflict(f"record {key[0]}/{key[1]} was created concurrently; retry the request")
    return with_write_index(error, index)


def _audit_values(audit: AuditEntry) -> tuple[str, str, str, int, str]:
    """An audit entry as PERSIST's audit arrays take it."""
    return (
        audit.action,
        audit.entity,
        audit.entity_id,
        audit.version,
        dumps(list(audit.changed_fields)),
    )


class ExistingRows(Exception):
    """An optimistic commit met stored rows; it rolled back and must take the full path."""


def alone(request: CommitRequest, assume_new: bool) -> bool:
    """Whether the commit is the one statement PERSIST_NEW, atomic without a
    transaction around it: creates assumed new (`optimistic`) and no request_id."""
    return assume_new and request.idempotency is None


def optimistic(writes: Sequence[Write]) -> bool:
    """Whether `writes` are creates of distinct keys, which can skip step 2.

    Such a commit assumes no stored rows and inserts with ON CONFLICT DO NOTHING; if a
    key turns out to exist (live, or expired and due to be replaced), it raises
    ExistingRows, its transaction rolls back, and the caller reruns it in full. New
    records, the common case, save the round trip of the locking SELECT.
    """
    creates = [write for write in writes if isinstance(write, CreateRecord)]
    keys = {(write.collection, write.id) for write in creates}
    return len(keys) == len(creates) == len(writes)


async def commit(
    conn: Conn, request: CommitRequest, *, max_record_bytes: int, assume_new: bool = False
) -> list[WriteResult]:
    """Run inside an open transaction on `conn` (or, when `alone` holds, on its own);
    see the module docstring.

    With `assume_new` (only for writes where `optimistic` holds) step 2 is skipped.
    """
    namespace, writes, idempotency = request.namespace, request.writes, request.idempotency
    if idempotency is not None:
        stored = await claim_request(conn, namespace, idempotency)
        if stored is not None:
            return codec.results_from_json(stored)

    # Enqueues first, in this transaction: their results go into the request_log
    # result below, and a failing record write then rolls them back too.
    jobs = {i: w for i, w in enumerate(writes) if isinstance(w, NewJob)}
    enqueued: dict[int, Job] = {}
    if jobs:
        try:
            created = await insert_jobs(
                conn, namespace, list(jobs.values()), actor=request.actor, idempotency=None
            )
        except StrataError as error:
            position = list(jobs)[int(error.metadata.pop("job_index", "0"))]
            raise with_write_index(error, position) from None
        enqueued = dict(zip(jobs, created, strict=True))
    # Appends next, in request order (two appends to one transcript land in order),
    # each locking only its transcript's row.
    appended: dict[int, Appended] = {}
    for index, write in enumerate(writes):
        if isinstance(write, AppendEntries):
            try:
                appended[index] = await transcripts.append_in(
                    conn,
                    namespace,
                    write,
                    actor=request.actor,
                    request_id=idempotency.request_id if idempotency is not None else None,
                )
            except StrataError as error:
                raise with_write_index(error, index) from None
    keys = sorted({(write.collection, write.id) for _, write in _record_writes(writes)})
    stored_rows = {} if assume_new else await _lock_current(conn, namespace, keys)
    # The commit's one timestamp, taken once its rows are locked: a commit that queued
    # behind another on the same record gets a later update_time than that one's.
    at = now()
    plan = CommitPlan(namespace, at, max_record_bytes, {key: stored_rows.get(key) for key in keys})
    final: dict[Key, tuple[Record, str] | None] = {}
    results: list[WriteResult] = []
    audits: list[tuple[str, str, str, int, str]] = []
    parents: dict[ParentRef, ParentDelete] = {}
    for index, write in enumerate(writes):
        if isinstance(write, NewJob):
            results.append(enqueued[index])
            continue
        if isinstance(write, AppendEntries):
            results.append(appended[index])
            continue
        outcome = plan.decide(index, write)
        parents.pop(ParentRef(write.collection, write.id), None)
        if outcome.row is not None:
            final[write.collection, write.id] = (outcome.row, outcome.data_json)
        elif outcome.delete:
            final[write.collection, write.id] = None
            if isinstance(outcome.result, Deleted) and outcome.result.existed:
                cascade = isinstance(write, DeleteRecord) and write.cascade
                parents[ParentRef(write.collection, write.id)] = ParentDelete(index, cascade)
        results.append(outcome.result)
        audits.append(_audit_values(outcome.audit))
    if parents:
        gone, child_audits = await settle_children(conn, namespace, parents)
        audits += [_audit_values(audit) for audit in child_audits]
        with_children(results, parents, gone)

    inserts: list[tuple[Record, str]] = []
    updates: list[tuple[Record, str]] = []
    deletes: list[Key] = []
    for key in keys:  # sorted: rows are written in the order they were locked
        target = final.get(key)
        if key in stored_rows:
            if target is None:
                deletes.append(key)
            else:
                updates.append(target)
        elif target is not None:
            inserts.append(target)

    params: dict[str, Any] = {
        "namespace": namespace,
        "now": at,
        "actor": request.actor.name,
        "request_id": idempotency.request_id if idempotency is not None else None,
        "result": dumps(codec.results_to_json(results)) if idempotency is not None else None,
        **_record_arrays("insert_", inserts),
        **_record_arrays("update_", updates),
        "delete_collection": [key[0] for key in deletes],
        "delete_id": [key[1] for key in deletes],
        "audit_action": [audit[0] for audit in audits],
        "audit_entity": [audit[1] for audit in audits],
        "audit_entity_id": [audit[2] for audit in audits],
        "audit_version": [audit[3] for audit in audits],
        "audit_changed_fields": [audit[4] for audit in audits],
        "channel": EVENTS_CHANNEL,
        "notices": list(request.notices),
    }
    if alone(request, assume_new):
        try:
            await conn.execute(queries.PERSIST_NEW, params, prepare=True)
        except pg_errors.UniqueViolation as error:
            if error.diag.constraint_name != "records_pkey":
                raise
            raise ExistingRows() from None
        return results
    cursor = await conn.execute(queries.PERSIST, params, prepare=True)
    inserted = {(row[0], row[1]) for row in await cursor.fetchall()}
    for row, _ in inserts:
        if (row.collection, row.id) not in inserted:
            if assume_new:
                raise ExistingRows()
            raise _lost_race(writes, (row.collection, row.id))
    if request.notices:
        await conn.execute(queries.NOTIFY, (EVENTS_CHANNEL, list(request.notices)), prepare=True)
    return results


async def purge_expired(conn: Conn, limit: int) -> list[RecordRef]:
    """Delete up to `limit` expired rows with their audit entries (autocommit: the one
    statement is its own transaction); which rows it removed."""
    if limit <= 0:
        return []
    cursor = await conn.execute(queries.PURGE_EXPIRED, {"now": now(), "limit": limit}, prepare=True)
    return [RecordRef(*row) for row in await cursor.fetchall()]
