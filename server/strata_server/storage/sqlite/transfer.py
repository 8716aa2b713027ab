"""ExportNamespace and ImportNamespace on SQLite: a namespace's rows out of one read
snapshot, and an archive's rows in through one write transaction.

The export reads every kind inside one read transaction of one reader connection
(`Connections.snapshot`), so the archive is one consistent state while writers go
on. The import holds the writer for its whole transaction: other writes wait for it
(as for a `CREATE INDEX`), and readers never see part of it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from strata_server.core.job_transitions import Job
from strata_server.core.models import Actor, LoggedAudit
from strata_server.core.quota_rules import explained
from strata_server.core.transfer_format import (
    ImportCounts,
    Kind,
)
from strata_server.core.transfer_rows import ArchivedEntry, QueueSetting, RowBatch
from strata_server.storage import entry_wire
from strata_server.storage.artifact_sql import COLUMNS as ARTIFACT_COLUMNS
from strata_server.storage.artifact_sql import artifact_from_row
from strata_server.storage.audit_sql import audit_from_row
from strata_server.storage.ports import ImportRequest, QuotaStore
from strata_server.storage.sqlite.connection import Connections, Row, Transaction
from strata_server.storage.sqlite.dialect import SQLITE, from_micros, to_micros
from strata_server.storage.sqlite.job_rows import job_from_row
from strata_server.storage.sqlite.queue_queries import JOB_COLUMNS
from strata_server.storage.sqlite.record_rows import RECORD_COLUMNS, record_from_row
from strata_server.storage.sqlite.transcript_queries import EXPORTED_COLUMNS
from strata_server.storage.sqlite.transcript_rows import transcript_from_row
from strata_server.storage.transfer_params import audit_params, dumps, entry_params
from strata_server.storage.transfer_sql import export_rows, export_table, write_batches
from strata_server.storage.transfer_tables import ImportTable, ImportWriter, import_tables

BATCH = 1000
"""Rows per batch read from the snapshot (and per statement on import)."""

_COLUMNS = {
    Kind.RECORDS: RECORD_COLUMNS,
    Kind.JOBS: JOB_COLUMNS,
    Kind.TRANSCRIPTS: EXPORTED_COLUMNS,
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
        entry_wire.stored_data(json.loads(row[6]) if row[6] is not None else None, row[8]),
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


def _insert_sql(table: ImportTable) -> str:
    columns, marks = ", ".join(table.columns), ", ".join("?" * len(table.columns))
    return f"INSERT INTO {table.table} ({columns}) VALUES ({marks})"


def _stored_sql(table: ImportTable) -> str:
    keys, name = table.keys, table.table
    if len(keys) == 1:
        return (
            f"SELECT {keys[0]} FROM {name} WHERE namespace = ? "
            f"AND {keys[0]} IN (SELECT value FROM json_each(?))"
        )
    picks = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(keys)))
    return (
        f"SELECT {', '.join(keys)} FROM {name} WHERE namespace = ? "
        f"AND ({', '.join(keys)}) IN (SELECT {picks} FROM json_each(?))"
    )


TABLES = import_tables(_COLUMNS, to_micros, "?", jsonb=False)
_INSERT = {table.table: _insert_sql(table) for table in TABLES.values()}
_STORED = {table.table: _stored_sql(table) for table in TABLES.values()}

INSERT_ENTRY = """
INSERT INTO transcript_entries
    (namespace, transcript_id, seq, start_offset, size, role, content, create_time, wire_head,
     wire_tail)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
UNINDEX_ENTRIES = """
INSERT INTO transcript_entries_fts (transcript_entries_fts, rowid, content)
SELECT 'delete', rowid, content FROM transcript_entries
WHERE namespace = ? AND transcript_id = ?
"""
DELETE_ENTRIES = "DELETE FROM transcript_entries WHERE namespace = ? AND transcript_id = ?"
HOT_AGAIN = (
    "DELETE FROM transcript_segments WHERE namespace = ? AND transcript_id = ?",
    "DELETE FROM archived_entries WHERE namespace = ? AND transcript_id = ?",
    "UPDATE transcripts SET archive_time = NULL WHERE namespace = ? AND id = ?",
)
"""What an overwrite does to a transcript that was archived: its imported entries are
hot rows (the segments' blobs are left to the sweep)."""
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
    (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id,
     entity_ids, entity_versions)
SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11
WHERE NOT EXISTS (
    SELECT 1 FROM audit_log WHERE namespace = ?1 AND entity = ?5 AND entity_id = ?6
      AND time = ?2 AND action = ?4 AND version = ?7 AND actor = ?3 AND entity_ids IS ?10)
"""
"""Append an archived audit entry unless the log already holds the same one, so
importing an archive twice does not double its history."""
TOTAL_CHANGES = "SELECT total_changes()"
IMPORT_AUDIT = """
INSERT INTO audit_log
    (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
VALUES (?, ?, ?, 'import', 'namespace', ?, 1, ?, NULL)
"""
"""The import's own audit entry, naming the kinds it wrote."""


class _Statements:
    """`ImportEngine` inside the import's write transaction."""

    def __init__(self, tx: Transaction, namespace: str) -> None:
        self.tx = tx
        self.namespace = namespace
        self.entry_watermark: int | None = None

    async def stored(self, table: ImportTable, keys: list[Any]) -> set[Any]:
        found = await self.tx.fetchall(_STORED[table.table], (self.namespace, dumps(keys)))
        return {row[0] if len(row) == 1 else tuple(row) for row in found}

    async def insert(self, table: ImportTable, rows: list[tuple[Any, ...]]) -> None:
        await self.tx.executemany(_INSERT[table.table], rows)

    async def update(self, table: ImportTable, rows: list[tuple[Any, ...]]) -> None:
        await self.tx.executemany(table.update, rows)

    async def drop_entries(self, transcript_ids: list[str]) -> None:
        for transcript_id in transcript_ids:
            key = (self.namespace, transcript_id)
            await self.tx.execute(UNINDEX_ENTRIES, key)
            await self.tx.execute(DELETE_ENTRIES, key)
            for statement in HOT_AGAIN:  # an archived one is overwritten as hot
                await self.tx.execute(statement, key)

    async def unique_holders(self, jobs: list[Job]) -> set[tuple[str, str]]:
        pairs = dumps([[j.queue, j.unique_key] for j in jobs])
        ids = dumps([j.id for j in jobs])
        found = await self.tx.fetchall(UNIQUE_HOLDERS, (self.namespace, pairs, ids))
        return {(row[0], row[1]) for row in found}

    async def insert_entries(self, entries: list[ArchivedEntry]) -> None:
        if self.entry_watermark is None:  # index what comes above it when finished
            self.entry_watermark = (await self.tx.fetchall(MAX_ENTRY_ROWID))[0][0]
        ns = self.namespace
        await self.tx.executemany(INSERT_ENTRY, [entry_params(ns, e, to_micros) for e in entries])

    async def append_audit(self, entries: list[LoggedAudit]) -> int:
        before = (await self.tx.fetchall(TOTAL_CHANGES))[0][0]
        rows = [audit_params(self.namespace, a, to_micros, dumps) for a in entries]
        await self.tx.executemany(INSERT_AUDIT_ONCE, rows)
        added: int = (await self.tx.fetchall(TOTAL_CHANGES))[0][0] - before
        return added

    async def finish(self, actor: Actor, written: list[str]) -> None:
        if self.entry_watermark is not None:
            await self.tx.execute(INDEX_NEW_ENTRIES, (self.entry_watermark,))
        now = to_micros(datetime.now(UTC))
        await self.tx.execute(
            IMPORT_AUDIT, (self.namespace, now, actor.name, self.namespace, dumps(written))
        )


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

            async def fetch(sql: str) -> list[Row]:
                return await snap.fetchall(sql, params)

            def batches(kind: Kind, sql: str) -> AsyncIterator[list[Row]]:
                return snap.batches(sql, params, BATCH)

            async for item in export_rows(
                _EXPORTS, owner, fetch, batches, _BLOB_TOTALS, _FROM_ROW.__getitem__
            ):
                yield item

    async def import_rows(
        self, request: ImportRequest, batches: AsyncIterator[RowBatch]
    ) -> ImportCounts:
        """Every batch in one write transaction (holding the writer)."""

        async def import_all() -> ImportCounts:
            async with self._db.transaction() as tx:
                writer = ImportWriter(_Statements(tx, request.namespace), TABLES, request)
                await write_batches(writer, batches)
            return writer.counts

        return await explained(request.namespace, self._quotas.list_quotas, import_all())
