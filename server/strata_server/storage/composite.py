"""`Storage`: one engine's adapters, one per port, as app.py wires them.

Built by `storage.sqlite.open_sqlite` or `storage.postgres.open_postgres`; each
service takes the ports it uses from it (`storage.queue`, `storage.records`, ...),
never the whole. It holds no logic of its own: the lifecycle calls go to the
engine's `Backend`, which closes every adapter.
"""

from __future__ import annotations

from collections.abc import Mapping

from strata_server.core.models import ServerFacts
from strata_server.core.values import frozen
from strata_server.storage.ports import (
    ArtifactStore,
    AuditLog,
    Backend,
    CleanupRuns,
    IndexAdmin,
    IntegrityLog,
    IntegrityStore,
    OwnerData,
    QueueStore,
    QuotaStore,
    RecordCleanup,
    RecordStore,
    RetentionStore,
    SearchIndex,
    TokenStore,
    TranscriptArchive,
    TranscriptStore,
    TransferStore,
    UsageReport,
)

CAPABILITIES = (
    "records",
    "commit",
    "search",
    "ttl",
    "audit",
    "idempotency",
    "queue",
    "transcripts",
    "artifacts",
)
"""What every engine serves, as GetServerInfo lists it (`ServerFacts.capabilities`)."""


@frozen
class Storage:
    """The adapters of one database, by port."""

    records: RecordStore
    cleanup: RecordCleanup
    queue: QueueStore
    transcripts: TranscriptStore
    archive: TranscriptArchive
    artifacts: ArtifactStore
    audit: AuditLog
    retention: RetentionStore
    cleanup_runs: CleanupRuns
    usage: UsageReport
    integrity: IntegrityStore
    integrity_log: IntegrityLog
    indexes: IndexAdmin
    transfer: TransferStore
    tokens: TokenStore
    quotas: QuotaStore
    search: SearchIndex
    owners: OwnerData
    backend: Backend

    async def facts(self) -> ServerFacts:
        """`Backend.facts`."""
        return await self.backend.facts()

    async def ping(self) -> None:
        """`Backend.ping`."""
        await self.backend.ping()

    async def shared_secret(self, name: str, candidate: bytes) -> bytes:
        """`Backend.shared_secret`."""
        return await self.backend.shared_secret(name, candidate)

    def pool_stats(self) -> Mapping[str, int]:
        """`Backend.pool_stats`."""
        return self.backend.pool_stats()

    async def close(self) -> None:
        """`Backend.close`: every adapter's resources go."""
        await self.backend.close()
