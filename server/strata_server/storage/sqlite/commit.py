"""The write path: Commit (with idempotent retries) and the purge of expired records.

A commit runs in one `BEGIN IMMEDIATE` transaction on the writer:

1. With a request_id, look it up in request_log: a repeat returns the stored results.
2. Read the current rows of every key the record writes touch (expired rows
   included, so a create over one replaces it), one statement per collection.
3. Plan each write in order with `core.writes.plan_write`, against the rows as the
   earlier writes of this commit left them. The first domain error rolls everything
   back, tagged with its write index. Enqueues and transcript appends are written
   in place, in the same transaction (so a later failure rolls them back too).
4. The records it deletes that transcripts or artifacts name as their parent: the
   commit is refused (HasChildren), or with `cascade` they are deleted and audited
   (record_children.py).
5. Persist the final state of each key (upsert or delete), the audit entries and the
   request_log row, each as one batched statement.

So the number of round trips to the writer thread does not grow with the writes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from strata_server.core import codec
from strata_server.core.errors import StrataError, with_write_index
from strata_server.core.job_transitions import NewJob
from strata_server.core.models import (
    CreateRecord,
    Deleted,
    DeleteRecord,
    Record,
    RecordRef,
    UpdateRecord,
    Write,
    WriteResult,
)
from strata_server.core.parent_refs import ParentDelete, ParentRef
from strata_server.core.transcript_rules import AppendEntries
from strata_server.core.writes import AuditEntry
from strata_server.storage.commit_plan import CommitPlan, Key, with_children
from strata_server.storage.ports.records import CommitRequest
from strata_server.storage.sqlite import transcripts
from strata_server.storage.sqlite.connection import Connections, Transaction
from strata_server.storage.sqlite.dialect import to_micros
from strata_server.storage.sqlite.job_rows import insert_jobs
from strata_server.storage.sqlite.record_children import settle_children
from strata_server.storage.sqlite.record_rows import RECORD_COLUMNS, record_from_row
from strata_server.storage.sqlite.request_log import store_result, stored_result
from strata_server.storage.sqlite.shared_sql import INSERT_AUDIT

EXPIRY_ACTOR = "system"
"""The audit actor of rows the server removes by itself (expiry and retention)."""


SELECT_CURRENT = f"""
SELECT {RECORD_COLUMNS} FROM records
WHERE namespace = ? AND collection = ? AND id IN (SELECT value FROM json_each(?))
"""

UPSERT_RECORD = """
INSERT INTO records
    (namespace, collection, id, data, version, create_time, update_time, expire_time, owner)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (namespace, collection, id) DO UPDATE SET
    data = excluded.data,
    version = excluded.version,
    create_time = excluded.create_time,
    update_time = excluded.update_time,
    expire_time = excluded.expire_time,
    owner = excluded.owner
"""

DELETE_RECORD = "DELETE FROM records WHERE namespace = ? AND collection = ? AND id = ?"


SELECT_EXPIRED = """
SELECT rowid, namespace, collection, id, version FROM records
WHERE expire_time IS NOT NULL AND expire_time <= ?
ORDER BY expire_time
LIMIT ?
"""

AUDIT_SELECTED = """
INSERT INTO audit_log
    (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
SELECT r.namespace, ?, ?, ?, 'record', r.collection || '/' || r.id, r.version,
       (SELECT json_group_array('data.' || f.key)
        FROM (SELECT key FROM json_each(r.data) ORDER BY key) AS f),
       NULL
FROM json_each(?) AS picked JOIN records AS r ON r.rowid = picked.value
ORDER BY picked.key
"""
"""One audit entry per record of a JSON array of rowids, in its order, written by the
database: changed_fields is every top-level key of the data, sorted by code point,
as `core.writes.changed_fields` names a delete's (BINARY collation is that order)."""

DELETE_SELECTED = "DELETE FROM records WHERE rowid IN (SELECT value FROM json_each(?))"

INSERT_BATCH_AUDIT = f"""
INSERT INTO audit_log
    (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id,
     entity_ids, entity_versions)
VALUES (?, ?, '{EXPIRY_ACTOR}', ?, 'record', ?, 0, '[]', NULL, ?, ?)
"""
"""A purge batch's row (migration 0024): the removal of every record it lists, filed
under their collection's prefix, by the server (as storage/postgres/purges.py's
`batch_audited` writes it)."""


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _audit_row(
    namespace: str, now: int, actor: str, audit: AuditEntry, request_id: str | None
) -> tuple[Any, ...]:
    return (
        namespace,
        now,
        actor,
        audit.action,
        audit.entity,
        audit.entity_id,
        audit.version,
        _dumps(list(audit.changed_fields)),
        request_id,
    )


async def _read_current(
    tx: Transaction, namespace: str, writes: Sequence[Write]
) -> dict[Key, Record | None]:
    ids: dict[str, dict[str, None]] = {}
    records = [
        write for write in writes if isinstance(write, CreateRecord | UpdateRecord | DeleteRecord)
    ]
    for write in records:
        ids.setdefault(write.collection, {})[write.id] = None
    current: dict[Key, Record | None] = {(write.collection, write.id): None for write in records}
    for collection, keys in ids.items():
        rows = await tx.fetchall(SELECT_CURRENT, (namespace, collection, _dumps(list(keys))))
        for row in rows:
            current[(row[1], row[2])] = record_from_row(row)
    return current


async def commit(
    db: Connections, request: CommitRequest, *, max_record_bytes: int
) -> list[WriteResult]:
    namespace, writes, actor = request.namespace, request.writes, request.actor
    idempotency = request.idempotency
    now = datetime.now(UTC)
    now_us = to_micros(now)
    request_id = idempotency.request_id if idempotency is not None else None
    async with db.transaction() as tx:
        if idempotency is not None:
            stored = await stored_result(tx, namespace, idempotency)
            if stored is not None:
                return codec.results_from_json(stored)

        current = await _read_current(tx, namespace, writes)
        plan = CommitPlan(namespace, now, max_record_bytes, current)
        upserts: dict[Key, tuple[Any, ...]] = {}
        deletes: dict[Key, None] = {}
        parents: dict[ParentRef, ParentDelete] = {}
        audits: list[tuple[Any, ...]] = []
        results: list[WriteResult] = []
        for index, write in enumerate(writes):
            if isinstance(write, NewJob):
                try:
                    [job] = await insert_jobs(
                        tx, namespace, [write], now, actor=actor, request_id=request_id
                    )
                except StrataError as error:
                    error.metadata.pop("job_index", None)
                    raise with_write_index(error, index) from None
                results.append(job)
                continue
            if isinstance(write, AppendEntries):
                try:
                    appended = await transcripts.append_in(
                        tx, namespace, write, now, actor=actor, request_id=request_id
                    )
                except StrataError as error:
                    raise with_write_index(error, index) from None
                results.append(appended)
                continue
            outcome = plan.decide(index, write)
            key = (write.collection, write.id)
            parents.pop(ParentRef(*key), None)
            if outcome.row is not None:
                row = outcome.row
                deletes.pop(key, None)
                upserts[key] = (
                    namespace,
                    row.collection,
                    row.id,
                    outcome.data_json,
                    row.version,
                    to_micros(row.create_time),
                    to_micros(row.update_time),
                    to_micros(row.expire_time) if row.expire_time is not None else None,
                    row.owner or None,
                )
            elif outcome.delete:
                upserts.pop(key, None)
                deletes[key] = None
                if isinstance(outcome.result, Deleted) and outcome.result.existed:
                    cascade = isinstance(write, DeleteRecord) and write.cascade
                    parents[ParentRef(*key)] = ParentDelete(index, cascade)
            results.append(outcome.result)
            audits.append(_audit_row(namespace, now_us, actor.name, outcome.audit, request_id))

        if parents:
            gone, child_audits = await settle_children(tx, namespace, parents)
            with_children(results, parents, gone)
            audits += [
                _audit_row(namespace, now_us, actor.name, audit, request_id)
                for audit in child_audits
            ]

        if deletes:
            await tx.executemany(
                DELETE_RECORD, [(namespace, collection, id) for collection, id in deletes]
            )
        if upserts:
            await tx.executemany(UPSERT_RECORD, upserts.values())
        if audits:
            await tx.executemany(INSERT_AUDIT, audits)
        if idempotency is not None:
            await store_result(tx, namespace, idempotency, codec.results_to_json(results), now_us)
    return results


async def purge_expired(db: Connections, limit: int) -> list[RecordRef]:
    if limit <= 0:
        return []
    now = to_micros(datetime.now(UTC))
    return await purge_batched(db, SELECT_EXPIRED, (now, limit), "expire", now)


async def purge_batched(
    db: Connections, select: str, params: Sequence[Any], action: str, now: int
) -> list[RecordRef]:
    """Delete the records `select` finds (its columns: rowid, namespace, collection,
    id, version) with one `action` audit row per namespace and collection, listing
    their ids and versions in id order (a purge batch's row), in one transaction."""
    async with db.transaction() as tx:
        rows = await tx.fetchall(select, params)
        if not rows:
            return []
        listed: dict[tuple[str, str], list[tuple[str, int]]] = {}
        for _, namespace, collection, id, version in rows:
            listed.setdefault((namespace, collection), []).append((id, version))
        await tx.executemany(
            INSERT_BATCH_AUDIT,
            [
                (
                    namespace,
                    now,
                    action,
                    f"{collection}/",
                    _dumps([f"{collection}/{id}" for id, _ in sorted(records)]),
                    _dumps([version for _, version in sorted(records)]),
                )
                for (namespace, collection), records in sorted(listed.items())
            ],
        )
        await tx.execute(DELETE_SELECTED, (_dumps([row[0] for row in rows]),))
    return [RecordRef(row[1], row[2], row[3]) for row in rows]


async def purge_selected(
    db: Connections,
    select: str,
    params: Sequence[Any],
    action: str,
    now: int,
    actor: str = EXPIRY_ACTOR,
) -> list[RecordRef]:
    """Delete the records `select` finds (its first columns: rowid, namespace,
    collection, id), each with an `action` audit entry by `actor` (the server, unless
    a caller asked) whose changed_fields match a delete's, in one transaction.

    Set-based: the audit entries and the delete are one statement each over the
    picked rowids, so no row's data travels to Python and back."""
    async with db.transaction() as tx:
        rows = await tx.fetchall(select, params)
        if not rows:
            return []
        rowids = _dumps([row[0] for row in rows])
        await tx.execute(AUDIT_SELECTED, (now, actor, action, rowids))
        await tx.execute(DELETE_SELECTED, (rowids,))
    return [RecordRef(row[1], row[2], row[3]) for row in rows]
