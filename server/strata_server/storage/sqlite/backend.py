"""Opening the SQLite storage: one file's connections, one adapter per port over them."""

from __future__ import annotations

from strata_server.storage.composite import Storage
from strata_server.storage.sqlite.artifacts import SqliteArtifacts
from strata_server.storage.sqlite.audit import SqliteAudit
from strata_server.storage.sqlite.database import SqliteDatabase
from strata_server.storage.sqlite.indexes import SqliteIndexes
from strata_server.storage.sqlite.integrity import SqliteIntegrity
from strata_server.storage.sqlite.queue import SqliteQueue
from strata_server.storage.sqlite.retention import SqliteRecordCleanup
from strata_server.storage.sqlite.transcripts import SqliteTranscripts
from strata_server.storage.sqlite.transfer import SqliteTransfer
from strata_server.storage.sqlite.usage import SqliteUsage


async def open_sqlite(
    path: str,
    *,
    max_record_bytes: int,
    readers: int = 4,
    schema_sql: str | None = None,
) -> Storage:
    """Connect to the database file at `path` (or `:memory:`) and build every adapter
    over its connections. The schema comes from the yoyo migrations in
    `migrations/sqlite/`, applied before; for `:memory:`, where no migration tool can
    reach the database, pass their text as `schema_sql` and it runs on the writer
    first. Raises Unavailable when the file cannot be opened.
    """
    database = await SqliteDatabase.open(
        path, max_record_bytes=max_record_bytes, readers=readers, schema_sql=schema_sql
    )
    return Storage(
        records=database,
        cleanup=SqliteRecordCleanup(database.connections),
        queue=SqliteQueue(database.connections),
        transcripts=SqliteTranscripts(database.connections, database.quotas),
        artifacts=SqliteArtifacts(database.connections, database.quotas),
        audit=SqliteAudit(database.connections),
        retention=database.retention,
        usage=SqliteUsage(database.connections),
        integrity=SqliteIntegrity(database.connections),
        indexes=SqliteIndexes(database.connections),
        transfer=SqliteTransfer(database.connections, database.quotas),
        tokens=database.tokens,
        quotas=database.quotas,
        backend=database,
    )
