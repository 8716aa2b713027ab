"""Opening the SQLite storage (one file's connections, one adapter per port over
them), and the backend's own lifecycle: facts, ping, the shared secrets, pool
figures, close."""

from __future__ import annotations

from collections.abc import Mapping

from strata_server.core.models import ServerFacts
from strata_server.storage.composite import CAPABILITIES, Storage
from strata_server.storage.sqlite.artifacts import SqliteArtifacts
from strata_server.storage.sqlite.audit import SqliteAudit
from strata_server.storage.sqlite.cleanup_runs import SqliteCleanupRuns
from strata_server.storage.sqlite.connection import Connections
from strata_server.storage.sqlite.indexes import SqliteIndexes
from strata_server.storage.sqlite.integrity import SqliteIntegrity
from strata_server.storage.sqlite.integrity_log import SqliteIntegrityLog
from strata_server.storage.sqlite.leader import FileLeader
from strata_server.storage.sqlite.owners import SqliteOwners
from strata_server.storage.sqlite.queue import SqliteQueue
from strata_server.storage.sqlite.quotas import SqliteQuotas
from strata_server.storage.sqlite.record_rows import now_micros
from strata_server.storage.sqlite.records import SqliteRecords
from strata_server.storage.sqlite.retention import SqliteRecordCleanup, SqliteRetention
from strata_server.storage.sqlite.search import SqliteSearch
from strata_server.storage.sqlite.tokens import SqliteTokens
from strata_server.storage.sqlite.transcript_archive import SqliteTranscriptArchive
from strata_server.storage.sqlite.transcripts import SqliteTranscripts
from strata_server.storage.sqlite.transfer import SqliteTransfer
from strata_server.storage.sqlite.usage import SqliteUsage

HAS_YOYO_TABLE = (
    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_yoyo_migration'"
)
NEWEST_MIGRATION = (
    "SELECT migration_id FROM _yoyo_migration "
    "ORDER BY applied_at_utc DESC, migration_id DESC LIMIT 1"
)
KEEP_SECRET = (
    "INSERT INTO server_secrets (name, value, create_time) VALUES (?, ?, ?) "
    "ON CONFLICT (name) DO NOTHING"
)
READ_SECRET = "SELECT value FROM server_secrets WHERE name = ?"


class SqliteBackend:
    """`Backend` over SQLite; closing also gives up leading (`retention`)."""

    def __init__(self, db: Connections, retention: SqliteRetention) -> None:
        self._db = db
        self._retention = retention

    async def facts(self) -> ServerFacts:
        """The newest applied yoyo migration ("memory" without yoyo)."""
        version = "memory"
        if (await self._db.fetchall(HAS_YOYO_TABLE))[0][0]:
            rows = await self._db.fetchall(NEWEST_MIGRATION)
            if rows:
                version = str(rows[0][0])
        return ServerFacts(backend="sqlite", schema_version=version, capabilities=CAPABILITIES)

    async def ping(self) -> None:
        await self._db.fetchall("SELECT 1")

    async def shared_secret(self, name: str, candidate: bytes) -> bytes:
        """Kept in server_secrets: inserted unless present, then read back."""
        async with self._db.transaction() as tx:
            await tx.execute(KEEP_SECRET, (name, candidate, now_micros()))
        rows = await self._db.fetchall(READ_SECRET, (name,))
        return bytes(rows[0][0])

    def pool_stats(self) -> Mapping[str, int]:
        """The reader pool and the one writer."""
        return self._db.stats()

    async def close(self) -> None:
        await self._retention.close()
        await self._db.close()


async def open_sqlite(
    path: str, *, max_record_bytes: int, readers: int = 4, schema_sql: str | None = None
) -> Storage:
    """Connect to the database file at `path` (or `:memory:`) and build every adapter
    over its connections. The schema comes from the yoyo migrations in
    `migrations/sqlite/`, applied before; for `:memory:`, where no migration tool can
    reach the database, pass their text as `schema_sql` and it runs on the writer
    first. Raises Unavailable when the file cannot be opened.
    """
    db = await Connections.open(path, readers=readers, schema_sql=schema_sql)
    quotas = SqliteQuotas(db)
    leader = FileLeader(path if path and path != ":memory:" else None)
    retention = SqliteRetention(db, leader)
    return Storage(
        records=SqliteRecords(db, quotas, max_record_bytes=max_record_bytes),
        cleanup=SqliteRecordCleanup(db),
        queue=SqliteQueue(db),
        transcripts=SqliteTranscripts(db, quotas),
        archive=SqliteTranscriptArchive(db),
        artifacts=SqliteArtifacts(db, quotas),
        audit=SqliteAudit(db),
        retention=retention,
        cleanup_runs=SqliteCleanupRuns(db),
        usage=SqliteUsage(db),
        integrity=SqliteIntegrity(db),
        integrity_log=SqliteIntegrityLog(db),
        indexes=SqliteIndexes(db),
        transfer=SqliteTransfer(db, quotas),
        tokens=SqliteTokens(db),
        quotas=quotas,
        search=SqliteSearch(db),
        owners=SqliteOwners(db),
        backend=SqliteBackend(db, retention),
    )
