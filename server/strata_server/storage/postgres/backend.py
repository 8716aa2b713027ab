"""Opening the PostgreSQL storage (one pool, one adapter per port over it), and the
backend's own lifecycle: facts, ping, the shared secrets, pool figures, close.

Every adapter borrows its connections through one `pool.Runner`, so a connection
found dead on first use (the database restarted since it was pooled) makes the
pool check all its idle connections, and the call is retried once on a fresh one
when that is safe (pool.py): the server serves again as soon as the database is
back, without a restart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

from strata_server.core.models import ServerFacts
from strata_server.storage.composite import CAPABILITIES, Storage
from strata_server.storage.postgres import queries
from strata_server.storage.postgres.artifacts import PostgresArtifacts
from strata_server.storage.postgres.audit import PostgresAudit
from strata_server.storage.postgres.cleanup_runs import PostgresCleanupRuns
from strata_server.storage.postgres.indexes import IndexedPaths, PostgresIndexes
from strata_server.storage.postgres.integrity import PostgresIntegrity
from strata_server.storage.postgres.integrity_log import PostgresIntegrityLog
from strata_server.storage.postgres.leader import SessionLeader
from strata_server.storage.postgres.owners import PostgresOwners
from strata_server.storage.postgres.pool import Conn, Runner, borrowing, open_pool
from strata_server.storage.postgres.queue import PostgresQueue
from strata_server.storage.postgres.quotas import PostgresQuotas
from strata_server.storage.postgres.records import PostgresRecords
from strata_server.storage.postgres.retention import PostgresRecordCleanup, PostgresRetention
from strata_server.storage.postgres.search import PostgresSearch
from strata_server.storage.postgres.tokens import PostgresTokens
from strata_server.storage.postgres.transcript_archive import PostgresTranscriptArchive
from strata_server.storage.postgres.transcripts import PostgresTranscripts
from strata_server.storage.postgres.transfer import PostgresTransfer
from strata_server.storage.postgres.usage import PostgresUsage

NO_YOYO_VERSION = "unknown"
"""schema_version when the schema was not applied by yoyo (no _yoyo_migration table)."""


class PostgresBackend:
    """`Backend` over PostgreSQL. `closing` release what adapters hold beside the
    pool (running index builds, the leader's session) before the pool closes."""

    def __init__(self, runner: Runner, closing: Sequence[Callable[[], Awaitable[None]]]) -> None:
        self.runner = runner
        self._closing = closing

    @borrowing()
    async def facts(self, conn: Conn) -> ServerFacts:
        """The newest applied yoyo migration (NO_YOYO_VERSION without yoyo)."""
        version = NO_YOYO_VERSION
        row = await (await conn.execute(queries.HAS_YOYO_TABLE)).fetchone()
        if row is not None and row[0]:
            row = await (await conn.execute(queries.NEWEST_MIGRATION)).fetchone()
            version = str(row[0]) if row is not None else NO_YOYO_VERSION
        return ServerFacts(backend="postgres", schema_version=version, capabilities=CAPABILITIES)

    @borrowing()
    async def ping(self, conn: Conn) -> None:
        await conn.execute(queries.PING, prepare=True)

    @borrowing()
    async def shared_secret(self, conn: Conn, name: str, candidate: bytes) -> bytes:
        """Kept in server_secrets: inserted unless present, then read back."""
        await conn.execute(queries.KEEP_SECRET, (name, candidate))
        row = await (await conn.execute(queries.READ_SECRET, (name,))).fetchone()
        assert row is not None  # inserted above, or by the replica that won
        return bytes(row[0])

    def pool_stats(self) -> Mapping[str, int]:
        """psycopg_pool's own figures; `requests` counts the connections handed out
        (one per statement or transaction)."""
        stats = self.runner.pool.get_stats()
        return {
            "size": stats.get("pool_size", 0),
            "idle": stats.get("pool_available", 0),
            "waiting": stats.get("requests_waiting", 0),
            "requests": stats.get("requests_num", 0),
        }

    async def close(self) -> None:
        for close in self._closing:
            await close()
        await self.runner.pool.close()


async def open_postgres(
    dsn: str,
    *,
    max_record_bytes: int,
    min_size: int = 2,
    max_size: int = 10,
    pool_timeout: float = 5.0,
    statement_timeout: float = 0.0,
) -> Storage:
    """Connect a pool of `min_size`..`max_size` connections to `dsn` and build every
    adapter over it. The schema comes from the yoyo migrations in
    `migrations/postgres/`, applied before.

    `pool_timeout` is how long a call waits for a free connection (and the opening
    for the first ones) before raising Unavailable. `statement_timeout` (seconds, 0:
    none) bounds every statement; one that runs longer fails with QueryTimeout.
    """
    pool = await open_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        pool_timeout=pool_timeout,
        statement_timeout=statement_timeout,
    )
    runner = Runner(pool)
    conninfo = pool.conninfo
    assert isinstance(conninfo, str)  # open_pool gives a string
    quotas = PostgresQuotas(runner)
    indexed = IndexedPaths()  # shared: records read with the indexes the builds make
    indexes = PostgresIndexes(runner, indexed)
    retention = PostgresRetention(runner, SessionLeader(conninfo))
    return Storage(
        records=PostgresRecords(runner, indexed, quotas, max_record_bytes=max_record_bytes),
        cleanup=PostgresRecordCleanup(runner),
        queue=PostgresQueue(runner),
        transcripts=PostgresTranscripts(runner, quotas),
        archive=PostgresTranscriptArchive(runner),
        artifacts=PostgresArtifacts(runner, quotas),
        audit=PostgresAudit(runner),
        retention=retention,
        cleanup_runs=PostgresCleanupRuns(runner),
        usage=PostgresUsage(runner),
        integrity=PostgresIntegrity(runner, indexes.rebuild),
        integrity_log=PostgresIntegrityLog(runner),
        indexes=indexes,
        transfer=PostgresTransfer(runner, quotas),
        tokens=PostgresTokens(runner),
        quotas=quotas,
        search=PostgresSearch(runner),
        owners=PostgresOwners(runner),
        backend=PostgresBackend(runner, closing=(indexes.close, retention.close)),
    )
