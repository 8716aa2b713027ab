"""Opening the PostgreSQL storage: one pool, one adapter per port over it."""

from __future__ import annotations

from strata_server.storage.composite import Storage
from strata_server.storage.postgres.artifacts import PostgresArtifacts
from strata_server.storage.postgres.audit import PostgresAudit
from strata_server.storage.postgres.database import PostgresDatabase
from strata_server.storage.postgres.integrity import PostgresIntegrity
from strata_server.storage.postgres.queue import PostgresQueue
from strata_server.storage.postgres.retention import PostgresRecordCleanup
from strata_server.storage.postgres.transcripts import PostgresTranscripts
from strata_server.storage.postgres.transfer import PostgresTransfer
from strata_server.storage.postgres.usage import PostgresUsage


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
    database = await PostgresDatabase.open(
        dsn,
        max_record_bytes=max_record_bytes,
        min_size=min_size,
        max_size=max_size,
        pool_timeout=pool_timeout,
        statement_timeout=statement_timeout,
    )
    return Storage(
        records=database,
        cleanup=PostgresRecordCleanup(database.runner),
        queue=PostgresQueue(database.runner),
        transcripts=PostgresTranscripts(database.runner, database.quotas),
        artifacts=PostgresArtifacts(database.runner, database.quotas),
        audit=PostgresAudit(database.runner),
        retention=database.retention,
        usage=PostgresUsage(database.runner),
        integrity=PostgresIntegrity(database.runner, database.indexes.rebuild),
        indexes=database.indexes,
        transfer=PostgresTransfer(database.runner, database.quotas),
        tokens=database.tokens,
        quotas=database.quotas,
        backend=database,
    )
