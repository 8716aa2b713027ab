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
from strata_server.storage.postgres.dialect import POSTGRES
from strata_server.storage.postgres.job_rows import job_from_row
from strata_server.storage.postgres.pool import Conn, Runner, translate
from strata_server.storage.postgres.queries import RECORD_COLUMNS
from strata_server.storage.postgres.queue_queries import JOB_COLUMNS
from strata_server.storage.postgres.record_rows import record_from_row
from strata_server.storage.postgres.transcript_queries import TRANSCRIPT_COLUMNS
from strata_server.storage.postgres.transcripts import transcript_from_row
from strata_server.storage.transfer_params import SHAPES, Shape, dumps
from strata_server.storage.transfer_sql import export_table, write_batches

BATCH = 1000
"""Rows per batch fetched from a cursor (and per statement on import)."""

_COLUMNS = {
    Kind.RECORDS: RECORD_COLUMNS,
    Kind.JOBS: JOB_COLUMNS,
    Kind.TRANSCRIPTS: TRANSCRIPT_COLUMNS,
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
        return lambda row: ArchivedEntry(*row)
    if kind is Kind.ARTIFACTS:
        return lambda row: artifact_from_row(POSTGRES, row)
    return lambda row: audit_from_row(POSTGRES, row)


# --- import ---------------------------------------------------------------------------


def _same(value: datetime) -> datetime:
    return value


class _Table:
    """How one kind's rows are keyed, copied in and overwritten."""

    def __init__(self, shape: Shape, columns: Sequence[str]) -> None:
        table, keys = shape.table, shape.keys
        self.key = shape.key
        self.keys = keys
        self._values = shape.values
        self._columns = list(columns)
        self.copy = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        rest = [c for c in columns if c not in keys and c != "namespace"]
        self._update_columns = [*rest, "namespace", *keys]
        sets = ", ".join(f"{c} = %s{'::jsonb' if c in shape.json_columns else ''}" for c in rest)
        self.update = (
            f"UPDATE {table} SET {sets} "
            f"WHERE namespace = %s AND {' AND '.join(f'{k} = %s' for k in keys)}"
        )
        if len(keys) == 1:
            self.stored = (
                f"SELECT {keys[0]} FROM {table} WHERE namespace = %s AND {keys[0]} = ANY(%s)"
            )
        else:
            arrays = ", ".join("%s::text[]" for _ in keys)
            self.stored = (
                f"SELECT {', '.join(keys)} FROM {table} WHERE namespace = %s "
                f"AND ({', '.join(keys)}) IN (SELECT * FROM unnest({arrays}))"
            )

    def stored_params(self, namespace: str, keys: list[Any]) -> tuple[Any, ...]:
        if len(self.keys) == 1:
            return (namespace, keys)
        return (namespace, *([key[i] for key in keys] for i in range(len(self.keys))))

    def params(self, namespace: str, row: Any) -> tuple[Any, ...]:
        values = self._values(namespace, row, _same)
        return tuple(values[c] for c in self._columns)

    def update_params(self, namespace: str, row: Any) -> tuple[Any, ...]:
        values = self._values(namespace, row, _same)
        return tuple(values[c] for c in self._update_columns)


def _columns(text: str) -> list[str]:
    return ["namespace", *(c.strip() for c in text.split(",") if c.strip() != "namespace")]


TABLES = {
    Kind.QUEUES: _Table(SHAPES[Kind.QUEUES], ["namespace", "queue", "paused"]),
    **{kind: _Table(SHAPES[kind], _columns(text)) for kind, text in _COLUMNS.items()},
}

COPY_ENTRIES = """
COPY transcript_entries
    (namespace, transcript_id, seq, start_offset, size, role, content, data, create_time,
     wire)
FROM STDIN
"""
DELETE_ENTRIES = "DELETE FROM transcript_entries WHERE namespace = %s AND transcript_id = ANY(%s)"
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
    version bigint, changed_fields jsonb, request_id text
) ON COMMIT DROP
"""
COPY_AUDIT = """
COPY strata_import_audit
    (ord, time, actor, action, entity, entity_id, version, changed_fields, request_id)
FROM STDIN
"""
APPEND_AUDIT = """
INSERT INTO audit_log
    (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
SELECT %(ns)s, i.time, i.actor, i.action, i.entity, i.entity_id, i.version, i.changed_fields,
       i.request_id
FROM strata_import_audit AS i
WHERE NOT EXISTS (
    SELECT 1 FROM audit_log AS a
    WHERE a.namespace = %(ns)s AND a.entity = i.entity AND a.entity_id = i.entity_id
      AND a.time = i.time AND a.action = i.action AND a.version = i.version
      AND a.actor = i.actor)
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

_UNFINISHED = frozenset({"ready", "leased"})


class _Import:
    """One import's transaction: conflict checks and writes, batch by batch."""

    def __init__(self, conn: Conn, namespace: str, policy: ConflictPolicy) -> None:
        self.conn = conn
        self.namespace = namespace
        self.policy = policy
        self.counts = ImportCounts()
        self.skipped_transcripts: set[str] = set()
        self.audit_staged = False
        self.audit_ord = 0

    async def _copy(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self.conn.cursor() as cursor, cursor.copy(sql) as copy:
            for row in rows:
                await copy.write_row(row)

    async def rows(self, kind: Kind, rows: list[Any]) -> None:
        table = TABLES[kind]
        keys = [table.key(row) for row in rows]
        cursor = await self.conn.execute(table.stored, table.stored_params(self.namespace, keys))
        stored = {row[0] if len(row) == 1 else tuple(row) for row in await cursor.fetchall()}
        if kind is Kind.JOBS:
            stored |= await self._unique_clashes(rows)
        fresh, taken = split_conflicts(
            kind, self.namespace, rows, keys, stored, self.policy, self.counts[kind]
        )
        if kind is Kind.TRANSCRIPTS and self.policy is ConflictPolicy.SKIP:
            self.skipped_transcripts.update(k for k in keys if k in stored)
        ns = self.namespace
        if fresh:
            await self._copy(table.copy, [table.params(ns, row) for row in fresh])
        if taken:
            async with self.conn.cursor() as cur:
                await cur.executemany(table.update, [table.update_params(ns, r) for r in taken])
        if kind is Kind.TRANSCRIPTS and taken:  # their entries come again from the archive
            await self.conn.execute(DELETE_ENTRIES, (ns, [t.id for t in taken]))

    async def _unique_clashes(self, jobs: list[Job]) -> set[Any]:
        unique = [j for j in jobs if j.unique_key is not None and j.state.value in _UNFINISHED]
        if not unique:
            return set()
        cursor = await self.conn.execute(
            UNIQUE_HOLDERS,
            (
                self.namespace,
                [j.queue for j in unique],
                [j.unique_key for j in unique],
                [j.id for j in unique],
            ),
        )
        held = {tuple(row) for row in await cursor.fetchall()}
        if held and self.policy is ConflictPolicy.OVERWRITE:
            queue, key = next(iter(held))
            raise AlreadyExists(
                f"an unfinished job of queue {queue!r} already holds unique_key {key!r} in "
                f"namespace {self.namespace!r}; nothing was imported",
                metadata={"kind": "jobs", "unique_key": str(key)},
            )
        return {j.id for j in unique if (j.queue, j.unique_key) in held}

    async def entries(self, entries: list[ArchivedEntry]) -> None:
        count = self.counts[Kind.ENTRIES]
        ns = self.namespace
        kept = [e for e in entries if e.transcript_id not in self.skipped_transcripts]
        count.skipped += len(entries) - len(kept)
        count.imported += len(kept)
        await self._copy(
            COPY_ENTRIES,
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
                    e.create_time,
                    entry_wire.encode_entry(e.seq, e.role, e.content, e.data, e.create_time),
                )
                for e in kept
            ],
        )

    async def audit(self, entries: list[LoggedAudit]) -> None:
        if not self.audit_staged:
            await self.conn.execute(AUDIT_STAGE)
            self.audit_staged = True
        rows = []
        for a in entries:
            self.audit_ord += 1
            rows.append(
                (
                    self.audit_ord,
                    a.time,
                    a.actor,
                    a.action,
                    a.entity,
                    a.entity_id,
                    a.version,
                    dumps(list(a.changed_fields)),
                    a.request_id,
                )
            )
        await self._copy(COPY_AUDIT, rows)
        cursor = await self.conn.execute(APPEND_AUDIT, {"ns": self.namespace})
        added = max(cursor.rowcount, 0)
        await self.conn.execute(CLEAR_AUDIT)
        count = self.counts[Kind.AUDIT]
        count.imported += added
        count.skipped += len(entries) - added

    async def finish(self, actor: Actor) -> None:
        written = [k for k, c in self.counts.kinds.items() if c.imported or c.overwritten]
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
                counts: dict[str, int] = {}
                for kind in KINDS:
                    where = _EXPORTS[kind].select(owner)
                    if where is None:
                        counts[kind] = 0
                        continue
                    cursor = await conn.execute(f"SELECT count(*) FROM {where}", params)
                    counts[kind] = (await cursor.fetchone() or (0,))[0]
                cursor = await conn.execute(_BLOB_TOTALS, params)
                row = await cursor.fetchone()
                counts["blobs"], counts["blob_bytes"] = (row[0], row[1]) if row else (0, 0)
                yield counts
                for kind in KINDS:
                    where = _EXPORTS[kind].select(owner)
                    if where is None:
                        continue
                    query = _EXPORTS[kind]
                    convert = _from_row(kind, namespace)
                    async with conn.cursor(name=f"strata_export_{kind.value}") as named:
                        await named.execute(
                            f"SELECT {query.columns} FROM {where} ORDER BY {query.order}", params
                        )
                        while rows := await named.fetchmany(BATCH):
                            yield RowBatch(kind, [convert(row) for row in rows])
        except psycopg.Error as error:
            raise translate(error) from error

    async def import_rows(
        self,
        namespace: str,
        batches: AsyncIterator[RowBatch],
        policy: ConflictPolicy,
        *,
        actor: Actor,
    ) -> ImportCounts:
        """Every batch in one transaction."""

        async def work(conn: Conn) -> ImportCounts:
            writer = _Import(conn, namespace, policy)
            await write_batches(writer, batches, actor)
            return writer.counts

        import_all = self.runner.run(work, transaction=True)
        return await explained(namespace, self._quotas.list_quotas, import_all)
