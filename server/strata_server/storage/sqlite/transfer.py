"""ExportNamespace and ImportNamespace on SQLite: a namespace's rows out of one read
snapshot, and an archive's rows in through one write transaction.

The export reads every kind inside one read transaction of one reader connection
(`Connections.snapshot`), so the archive is one consistent state while writers go
on. The import holds the writer for its whole transaction: other writes wait for it
(as for a `CREATE INDEX`), and readers never see part of it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from strata_server.core.errors import AlreadyExists
from strata_server.core.job_transitions import Job
from strata_server.core.models import Actor, LoggedAudit
from strata_server.core.quota_rules import explained
from strata_server.core.transfer_format import (
    KINDS,
    ConflictPolicy,
    ImportCounts,
    Kind,
    split_conflicts,
)
from strata_server.core.transfer_rows import ArchivedEntry, QueueSetting, RowBatch
from strata_server.storage import entry_wire
from strata_server.storage.artifact_sql import COLUMNS as ARTIFACT_COLUMNS
from strata_server.storage.artifact_sql import artifact_from_row
from strata_server.storage.audit_sql import audit_from_row
from strata_server.storage.ports import QuotaStore
from strata_server.storage.sqlite.connection import Connections, Row, Transaction
from strata_server.storage.sqlite.dialect import SQLITE, from_micros, to_micros
from strata_server.storage.sqlite.job_rows import job_from_row
from strata_server.storage.sqlite.queue_queries import JOB_COLUMNS
from strata_server.storage.sqlite.record_rows import RECORD_COLUMNS, record_from_row
from strata_server.storage.sqlite.shared_sql import INSERT_AUDIT
from strata_server.storage.sqlite.transcript_queries import TRANSCRIPT_COLUMNS
from strata_server.storage.sqlite.transcripts import transcript_from_row
from strata_server.storage.transfer_params import SHAPES, Shape, dumps
from strata_server.storage.transfer_sql import export_table, write_batches

BATCH = 1000
"""Rows per batch read from the snapshot (and per statement on import)."""

_COLUMNS = {
    Kind.RECORDS: RECORD_COLUMNS,
    Kind.JOBS: JOB_COLUMNS,
    Kind.TRANSCRIPTS: TRANSCRIPT_COLUMNS,
    Kind.ARTIFACTS: ARTIFACT_COLUMNS,
}
"""Each exported table's columns, as the adapter's own queries list them."""
_EXPORTS = export_table(
    _COLUMNS,
    lambda name: f":{name}",
)

_BLOB_TOTALS = """
SELECT count(*), coalesce(sum(size), 0) FROM (
    SELECT sha256, max(size) AS size FROM artifacts
    WHERE namespace = :ns AND (:owner IS NULL OR owner = :owner) GROUP BY sha256)
"""


def _entry_from_row(row: Row) -> ArchivedEntry:
    return ArchivedEntry(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        json.loads(row[6]) if row[6] is not None else None,
        from_micros(row[7]),
    )


_FROM_ROW: dict[Kind, Callable[[Row], Any]] = {
    Kind.QUEUES: lambda row: QueueSetting(row[0], bool(row[1])),
    Kind.RECORDS: record_from_row,
    Kind.JOBS: lambda row: job_from_row(row, with_token=True),
    Kind.TRANSCRIPTS: transcript_from_row,
    Kind.ENTRIES: _entry_from_row,
    Kind.ARTIFACTS: lambda row: artifact_from_row(SQLITE, row),
    Kind.AUDIT: lambda row: audit_from_row(SQLITE, row),
}


# --- import ---------------------------------------------------------------------------


class _Table:
    """How one kind's rows are keyed, inserted and overwritten."""

    def __init__(self, shape: Shape, columns: Sequence[str]) -> None:
        table, keys = shape.table, shape.keys
        self.key = shape.key
        self._values = shape.values
        self._columns = list(columns)
        self.insert = (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        )
        rest = [c for c in columns if c not in keys and c != "namespace"]
        self._update_columns = [*rest, "namespace", *keys]
        self.update = (
            f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in rest)} "
            f"WHERE namespace = ? AND {' AND '.join(f'{k} = ?' for k in keys)}"
        )
        if len(keys) == 1:
            self.stored = (
                f"SELECT {keys[0]} FROM {table} WHERE namespace = ? "
                f"AND {keys[0]} IN (SELECT value FROM json_each(?))"
            )
        else:
            picks = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(keys)))
            self.stored = (
                f"SELECT {', '.join(keys)} FROM {table} WHERE namespace = ? "
                f"AND ({', '.join(keys)}) IN (SELECT {picks} FROM json_each(?))"
            )

    def params(self, namespace: str, row: Any) -> tuple[Any, ...]:
        values = self._values(namespace, row, to_micros)
        return tuple(values[c] for c in self._columns)

    def update_params(self, namespace: str, row: Any) -> tuple[Any, ...]:
        values = self._values(namespace, row, to_micros)
        return tuple(values[c] for c in self._update_columns)


def _columns(text: str) -> list[str]:
    return [c.strip() for c in text.split(",")]


TABLES = {
    Kind.QUEUES: _Table(SHAPES[Kind.QUEUES], ["namespace", "queue", "paused"]),
    **{kind: _Table(SHAPES[kind], _columns(text)) for kind, text in _COLUMNS.items()},
}

INSERT_ENTRY = """
INSERT INTO transcript_entries
    (namespace, transcript_id, seq, start_offset, size, role, content, data, create_time,
     wire)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
UNINDEX_ENTRIES = """
INSERT INTO transcript_entries_fts (transcript_entries_fts, rowid, content)
SELECT 'delete', rowid, content FROM transcript_entries
WHERE namespace = ? AND transcript_id = ?
"""
DELETE_ENTRIES = "DELETE FROM transcript_entries WHERE namespace = ? AND transcript_id = ?"
MAX_ENTRY_ROWID = "SELECT coalesce(max(rowid), 0) FROM transcript_entries"
INDEX_NEW_ENTRIES = """
INSERT INTO transcript_entries_fts (rowid, content)
SELECT rowid, content FROM transcript_entries WHERE rowid > ?
"""
UNIQUE_HOLDERS = """
SELECT queue, unique_key FROM jobs
WHERE namespace = ? AND unique_key IS NOT NULL AND state IN ('ready', 'leased')
  AND (queue, unique_key) IN (
      SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))
  AND id NOT IN (SELECT value FROM json_each(?))
"""
"""Unfinished jobs of other ids holding a unique_key an archived unfinished job
holds: the partial unique index would refuse the archived one."""
INSERT_AUDIT_ONCE = """
INSERT INTO audit_log
    (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9
WHERE NOT EXISTS (
    SELECT 1 FROM audit_log WHERE namespace = ?1 AND entity = ?5 AND entity_id = ?6
      AND time = ?2 AND action = ?4 AND version = ?7 AND actor = ?3)
"""
"""Append an archived audit entry unless the log already holds the same one, so
importing an archive twice does not double its history."""
TOTAL_CHANGES = "SELECT total_changes()"


class _Import:
    """One import's transaction: conflict checks and writes, batch by batch."""

    def __init__(self, tx: Transaction, namespace: str, policy: ConflictPolicy) -> None:
        self.tx = tx
        self.namespace = namespace
        self.policy = policy
        self.counts = ImportCounts()
        self.skipped_transcripts: set[str] = set()
        self.entry_watermark: int | None = None

    async def rows(self, kind: Kind, rows: list[Any]) -> None:
        table = TABLES[kind]
        keys = [table.key(row) for row in rows]
        stored = await self._stored(table, keys)
        if kind is Kind.JOBS:
            stored |= await self._unique_clashes(rows)
        fresh, taken = split_conflicts(
            kind, self.namespace, rows, keys, stored, self.policy, self.counts[kind]
        )
        if kind is Kind.TRANSCRIPTS and self.policy is ConflictPolicy.SKIP:
            self.skipped_transcripts.update(k for k in keys if k in stored)
        ns = self.namespace
        if fresh:
            await self.tx.executemany(table.insert, [table.params(ns, row) for row in fresh])
        if taken:
            await self.tx.executemany(table.update, [table.update_params(ns, r) for r in taken])
        if kind is Kind.TRANSCRIPTS:
            for transcript in taken:  # its entries come again from the archive
                await self.tx.execute(UNINDEX_ENTRIES, (ns, transcript.id))
                await self.tx.execute(DELETE_ENTRIES, (ns, transcript.id))

    async def _stored(self, table: _Table, keys: list[Any]) -> set[Any]:
        found = await self.tx.fetchall(table.stored, (self.namespace, dumps(keys)))
        return {row[0] if len(row) == 1 else tuple(row) for row in found}

    async def _unique_clashes(self, jobs: list[Job]) -> set[Any]:
        unique = [j for j in jobs if j.unique_key is not None and j.state.value in _UNFINISHED]
        if not unique:
            return set()
        pairs = dumps([[j.queue, j.unique_key] for j in unique])
        ids = dumps([j.id for j in unique])
        held = {
            tuple(row)
            for row in await self.tx.fetchall(UNIQUE_HOLDERS, (self.namespace, pairs, ids))
        }
        if held and self.policy is ConflictPolicy.OVERWRITE:
            queue, key = next(iter(held))
            raise AlreadyExists(
                f"an unfinished job of queue {queue!r} already holds unique_key {key!r} in "
                f"namespace {self.namespace!r}; nothing was imported",
                metadata={"kind": "jobs", "unique_key": str(key)},
            )
        return {j.id for j in unique if (j.queue, j.unique_key) in held}

    async def entries(self, entries: list[ArchivedEntry]) -> None:
        if self.entry_watermark is None:
            self.entry_watermark = (await self.tx.fetchall(MAX_ENTRY_ROWID))[0][0]
        count = self.counts[Kind.ENTRIES]
        ns = self.namespace
        kept = [e for e in entries if e.transcript_id not in self.skipped_transcripts]
        count.skipped += len(entries) - len(kept)
        count.imported += len(kept)
        await self.tx.executemany(
            INSERT_ENTRY,
            [
                (
                    ns,
                    e.transcript_id,
                    e.seq,
                    e.start_offset,
                    e.size,
                    e.role,
                    e.content,
                    None if e.data is None else dumps(e.data),
                    to_micros(e.create_time),
                    entry_wire.encode_entry(e.seq, e.role, e.content, e.data, e.create_time),
                )
                for e in kept
            ],
        )

    async def audit(self, entries: list[LoggedAudit]) -> None:
        before = (await self.tx.fetchall(TOTAL_CHANGES))[0][0]
        ns = self.namespace
        await self.tx.executemany(
            INSERT_AUDIT_ONCE,
            [
                (
                    ns,
                    to_micros(a.time),
                    a.actor,
                    a.action,
                    a.entity,
                    a.entity_id,
                    a.version,
                    dumps(list(a.changed_fields)),
                    a.request_id,
                )
                for a in entries
            ],
        )
        added = (await self.tx.fetchall(TOTAL_CHANGES))[0][0] - before
        count = self.counts[Kind.AUDIT]
        count.imported += added
        count.skipped += len(entries) - added

    async def finish(self, actor: Actor) -> None:
        if self.entry_watermark is not None:
            await self.tx.execute(INDEX_NEW_ENTRIES, (self.entry_watermark,))
        written = [k for k, c in self.counts.kinds.items() if c.imported or c.overwritten]
        await self.tx.execute(
            INSERT_AUDIT,
            (
                self.namespace,
                to_micros(datetime.now(UTC)),
                actor.name,
                "import",
                "namespace",
                self.namespace,
                1,
                dumps(written),
                None,
            ),
        )


_UNFINISHED = frozenset({"ready", "leased"})


class SqliteTransfer:
    """`TransferStore` over SQLite."""

    def __init__(self, db: Connections, quotas: QuotaStore) -> None:
        self._db = db
        self._quotas = quotas

    async def export_rows(
        self, namespace: str, owner: str | None
    ) -> AsyncIterator[dict[str, int] | RowBatch]:
        """From one read snapshot."""
        params = {"ns": namespace, "owner": owner, "now": to_micros(datetime.now(UTC))}
        async with self._db.snapshot() as snap:
            counts: dict[str, int] = {}
            for kind in KINDS:
                where = _EXPORTS[kind].select(owner)
                found = (
                    [(0,)]
                    if where is None
                    else await snap.fetchall(f"SELECT count(*) FROM {where}", params)
                )
                counts[kind] = found[0][0]
            blobs, blob_bytes = (await snap.fetchall(_BLOB_TOTALS, params))[0]
            counts["blobs"], counts["blob_bytes"] = blobs, blob_bytes
            yield counts
            for kind in KINDS:
                where = _EXPORTS[kind].select(owner)
                if where is None:
                    continue
                query = _EXPORTS[kind]
                convert = _FROM_ROW[kind]
                sql = f"SELECT {query.columns} FROM {where} ORDER BY {query.order}"
                async for rows in snap.batches(sql, params, BATCH):
                    yield RowBatch(kind, [convert(row) for row in rows])

    async def import_rows(
        self,
        namespace: str,
        batches: AsyncIterator[RowBatch],
        policy: ConflictPolicy,
        *,
        actor: Actor,
    ) -> ImportCounts:
        """Every batch in one write transaction (holding the writer)."""

        async def import_all() -> ImportCounts:
            async with self._db.transaction() as tx:
                writer = _Import(tx, namespace, policy)
                await write_batches(writer, batches, actor)
            return writer.counts

        return await explained(namespace, self._quotas.list_quotas, import_all())
