"""ExportNamespace and ImportNamespace on PostgreSQL: a namespace's rows out of one
REPEATABLE READ snapshot, and an archive's rows in through one transaction.

The export reads through server-side cursors inside one read-only REPEATABLE READ
transaction, so the archive is one consistent state and memory holds one batch.
The import writes new rows with COPY (the fast path: an import into an empty
namespace is nearly all COPY) and stored rows it overwrites with UPDATEs, after one
keyed SELECT per batch that finds which rows the namespace already holds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

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
from strata_server.storage.postgres.dialect import POSTGRES
from strata_server.storage.postgres.job_rows import job_from_row
from strata_server.storage.postgres.pool import Conn, Runner, translate
from strata_server.storage.postgres.queries import RECORD_COLUMNS
from strata_server.storage.postgres.queue_queries import JOB_COLUMNS
from strata_server.storage.postgres.record_rows import record_from_row
from strata_server.storage.postgres.transcript_queries import EXPORTED_COLUMNS
from strata_server.storage.postgres.transcripts import transcript_from_row
from strata_server.storage.transfer_params import audit_params, dumps, entry_params
from strata_server.storage.transfer_sql import export_rows, export_table, write_batches
from strata_server.storage.transfer_tables import ImportTable, ImportWriter, import_tables

BATCH = 1000
"""Rows per batch fetched from a cursor (and per statement on import)."""

_COLUMNS = {
    Kind.RECORDS: RECORD_COLUMNS,
    Kind.JOBS: JOB_COLUMNS,
    Kind.TRANSCRIPTS: EXPORTED_COLUMNS,
    Kind.ARTIFACTS: ARTIFACT_COLUMNS,
}
"""Each exported table's columns, as the adapter's own queries list them."""
_EXPORTS = export_table(
    _COLUMNS,
    lambda name: f"%({name})s",
)

_BLOB_TOTALS = """
SELECT count(*), coalesce(sum(size), 0)::bigint FROM (
    SELECT sha256, max(size) AS size FROM artifacts
    WHERE namespace = %(ns)s AND (%(owner)s::text IS NULL OR owner = %(owner)s::text)
    GROUP BY sha256) AS blobs
"""


def _entry_from_row(row: Sequence[Any]) -> ArchivedEntry:
    """An exported entry (EXPORT's columns: ... data, create_time, wire_tail): its
    data from the tail unless stored before 0009 (storage/entry_wire.stored_data)."""
    id, seq, start_offset, size, role, content, data, create_time, tail = row
    data = entry_wire.stored_data(data, tail)
    return ArchivedEntry(id, seq, start_offset, size, role, content, data, create_time)


def _from_row(kind: Kind, namespace: str) -> Callable[[Sequence[Any]], Any]:
    if kind is Kind.QUEUES:
        return lambda row: QueueSetting(row[0], row[1])
    if kind is Kind.RECORDS:
        return lambda row: record_from_row(namespace, row)
    if kind is Kind.JOBS:
        return lambda row: job_from_row(namespace, row)
    if kind is Kind.TRANSCRIPTS:
        return lambda row: transcript_from_row(namespace, row)
    if kind is Kind.ENTRIES:
        return _entry_from_row
    if kind is Kind.ARTIFACTS:
        return lambda row: artifact_from_row(POSTGRES, row)
    return lambda row: audit_from_row(POSTGRES, row)


# --- import ---------------------------------------------------------------------------


def _same(value: datetime) -> datetime:
    return value


def _same_list(value: list[Any]) -> list[Any]:
    return value


def _copy_sql(table: ImportTable) -> str:
    return f"COPY {table.table} ({', '.join(table.columns)}) FROM STDIN"


def _stored_sql(table: ImportTable) -> str:
    keys, name = table.keys, table.table
    if len(keys) == 1:
        return f"SELECT {keys[0]} FROM {name} WHERE namespace = %s AND {keys[0]} = ANY(%s)"
    arrays = ", ".join("%s::text[]" for _ in keys)
    return (
        f"SELECT {', '.join(keys)} FROM {name} WHERE namespace = %s "
        f"AND ({', '.join(keys)}) IN (SELECT * FROM unnest({arrays}))"
    )


TABLES = import_tables(_COLUMNS, _same, "%s", jsonb=True)
_COPY = {table.table: _copy_sql(table) for table in TABLES.values()}
_STORED = {table.table: _stored_sql(table) for table in TABLES.values()}

COPY_ENTRIES = """
COPY transcript_entries
    (namespace, transcript_id, seq, start_offset, size, role, content, create_time, wire_head,
     wire_tail)
FROM STDIN
"""
DELETE_ENTRIES = "DELETE FROM transcript_entries WHERE namespace = %s AND transcript_id = ANY(%s)"
HOT_AGAIN = (
    "DELETE FROM transcript_segments WHERE namespace = %s AND transcript_id = ANY(%s)",
    "DELETE FROM archived_entries WHERE namespace = %s AND transcript_id = ANY(%s)",
    "UPDATE transcripts SET archive_time = NULL WHERE namespace = %s AND id = ANY(%s)",
)
"""What an overwrite does to a transcript that was archived: its imported entries are
hot rows (the segments' blobs are left to the sweep)."""
UNIQUE_HOLDERS = """
SELECT queue, unique_key FROM jobs
WHERE namespace = %s AND unique_key IS NOT NULL AND state IN ('ready', 'leased')
  AND (queue, unique_key) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
  AND NOT (id = ANY(%s))
"""
"""Unfinished jobs of other ids holding a unique_key an archived unfinished job
holds: the partial unique index would refuse the archived one."""
AUDIT_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS strata_import_audit (
    ord bigint, time timestamptz, actor text, action text, entity text, entity_id text,
    version bigint, changed_fields jsonb, request_id text, entity_ids text[],
    entity_versions bigint[]
) ON COMMIT DROP
"""
COPY_AUDIT = """
COPY strata_import_audit
    (ord, time, actor, action, entity, entity_id, version, changed_fields, request_id,
     entity_ids, entity_versions)
FROM STDIN
"""
APPEND_AUDIT = """
INSERT INTO audit_log
    (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id,
     entity_ids, entity_versions)
SELECT %(ns)s, i.time, i.actor, i.action, i.entity, i.entity_id, i.version, i.changed_fields,
       i.request_id, i.entity_ids, i.entity_versions
FROM strata_import_audit AS i
WHERE NOT EXISTS (
    SELECT 1 FROM audit_log AS a
    WHERE a.namespace = %(ns)s AND a.entity = i.entity AND a.entity_id = i.entity_id
      AND a.time = i.time AND a.action = i.action AND a.version = i.version
      AND a.actor = i.actor AND a.entity_ids IS NOT DISTINCT FROM i.entity_ids)
ORDER BY i.ord
"""
"""Append the staged audit entries in archive order, less those the log already holds
(so importing an archive twice does not double its history)."""
CLEAR_AUDIT = "TRUNCATE strata_import_audit"
INSERT_AUDIT = """
INSERT INTO audit_log
    (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
VALUES (%s, %s, %s, 'import', 'namespace', %s, 1, %s, NULL)
"""


class _Statements:
    """`ImportEngine` on one connection inside the import's transaction."""

    def __init__(self, conn: Conn, namespace: str) -> None:
        self.conn = conn
        self.namespace = namespace
        self.audit_staged = False
        self.audit_ord = 0

    async def _copy(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self.conn.cursor() as cursor, cursor.copy(sql) as copy:
            for row in rows:
                await copy.write_row(row)

    async def stored(self, table: ImportTable, keys: list[Any]) -> set[Any]:
        params: tuple[Any, ...] = (self.namespace, keys)
        if len(table.keys) > 1:
            params = (self.namespace, *([key[i] for key in keys] for i in range(len(table.keys))))
        cursor = await self.conn.execute(_STORED[table.table], params)
        return {row[0] if len(row) == 1 else tuple(row) for row in await cursor.fetchall()}

    async def insert(self, table: ImportTable, rows: list[tuple[Any, ...]]) -> None:
        await self._copy(_COPY[table.table], rows)

    async def update(self, table: ImportTable, rows: list[tuple[Any, ...]]) -> None:
        async with self.conn.cursor() as cursor:
            await cursor.executemany(table.update, rows)

    async def drop_entries(self, transcript_ids: list[str]) -> None:
        await self.conn.execute(DELETE_ENTRIES, (self.namespace, transcript_ids))
        for statement in HOT_AGAIN:  # an archived one is overwritten as hot
            await self.conn.execute(statement, (self.namespace, transcript_ids))

    async def unique_holders(self, jobs: list[Job]) -> set[tuple[str, str]]:
        queues, keys, ids = (
            [j.queue for j in jobs],
            [j.unique_key for j in jobs],
            [j.id for j in jobs],
        )
        cursor = await self.conn.execute(UNIQUE_HOLDERS, (self.namespace, queues, keys, ids))
        return {(row[0], row[1]) for row in await cursor.fetchall()}

    async def insert_entries(self, entries: list[ArchivedEntry]) -> None:
        await self._copy(COPY_ENTRIES, [entry_params(self.namespace, e, _same) for e in entries])

    async def append_audit(self, entries: list[LoggedAudit]) -> int:
        if not self.audit_staged:
            await self.conn.execute(AUDIT_STAGE)
            self.audit_staged = True
        rows = []
        for a in entries:
            self.audit_ord += 1
            rows.append(audit_params(self.audit_ord, a, _same, _same_list))
        await self._copy(COPY_AUDIT, rows)
        cursor = await self.conn.execute(APPEND_AUDIT, {"ns": self.namespace})
        added = max(cursor.rowcount, 0)
        await self.conn.execute(CLEAR_AUDIT)
        return added

    async def finish(self, actor: Actor, written: list[str]) -> None:
        await self.conn.execute(
            INSERT_AUDIT,
            (self.namespace, datetime.now(UTC), actor.name, self.namespace, dumps(written)),
        )


class PostgresTransfer:
    """`TransferStore` over PostgreSQL."""

    def __init__(self, runner: Runner, quotas: QuotaStore) -> None:
        self.runner = runner
        self._quotas = quotas

    async def export_rows(
        self, namespace: str, owner: str | None
    ) -> AsyncIterator[dict[str, int] | RowBatch]:
        """From one REPEATABLE READ snapshot, on one connection held for the export."""
        try:
            async with self.runner.pool.connection() as conn, conn.transaction():
                params = {"ns": namespace, "owner": owner, "now": datetime.now(UTC)}
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")

                async def fetch(sql: str) -> list[tuple[Any, ...]]:
                    cursor = await conn.execute(sql, params)
                    return await cursor.fetchall()

                async def batches(kind: Kind, sql: str) -> AsyncIterator[list[tuple[Any, ...]]]:
                    async with conn.cursor(name=f"strata_export_{kind.value}") as named:
                        await named.execute(sql, params)
                        while rows := await named.fetchmany(BATCH):
                            yield rows

                def convert(kind: Kind) -> Callable[[Sequence[Any]], Any]:
                    return _from_row(kind, namespace)

                async for item in export_rows(
                    _EXPORTS, owner, fetch, batches, _BLOB_TOTALS, convert
                ):
                    yield item
        except psycopg.Error as error:
            raise translate(error) from error

    async def import_rows(
        self, request: ImportRequest, batches: AsyncIterator[RowBatch]
    ) -> ImportCounts:
        """Every batch in one transaction."""

        async def work(conn: Conn) -> ImportCounts:
            writer = ImportWriter(_Statements(conn, request.namespace), TABLES, request)
            await write_batches(writer, batches)
            return writer.counts

        import_all = self.runner.run(work, transaction=True)
        return await explained(request.namespace, self._quotas.list_quotas, import_all)
