"""The storage ports: what the services need from a backend, as typing.Protocols,
one module per port.

The gRPC layer and the services depend only on these; `strata_server.app` picks the
adapters. Every method raises only `strata_server.core.errors` types: adapters
translate driver exceptions at their boundary (an unreachable database is
`Unavailable`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from strata_server.core.models import ServerFacts
from strata_server.storage.ports.admin import (
    AuditLog,
    IndexAdmin,
    IntegrityStore,
    QuotaStore,
    RateLimiter,
    RetentionStore,
    TokenStore,
    UsageReport,
)
from strata_server.storage.ports.artifacts import ArtifactStore, BlobStaging
from strata_server.storage.ports.backend import Backend
from strata_server.storage.ports.blobs import BlobStore
from strata_server.storage.ports.cache import Cache, Fill, Lookup
from strata_server.storage.ports.events import Events, Listener, Recheck
from strata_server.storage.ports.queue import QueueStore
from strata_server.storage.ports.records import RecordCleanup, RecordStore
from strata_server.storage.ports.transcripts import TranscriptStore
from strata_server.storage.ports.transfer import TransferStore

NamespaceArchive = TransferStore
"""The former name of TransferStore."""

__all__ = [
    "ArtifactStore",
    "AuditLog",
    "Backend",
    "BlobStaging",
    "BlobStore",
    "Cache",
    "Database",
    "Events",
    "Fill",
    "IndexAdmin",
    "IntegrityStore",
    "Listener",
    "Lookup",
    "NamespaceArchive",
    "QueueStore",
    "QuotaStore",
    "RateLimiter",
    "Recheck",
    "RecordCleanup",
    "RecordStore",
    "RetentionStore",
    "TokenStore",
    "TranscriptStore",
    "TransferStore",
    "UsageReport",
]


class Database(
    TransferStore,
    QuotaStore,
    RecordStore,
    RecordCleanup,
    QueueStore,
    TranscriptStore,
    AuditLog,
    IndexAdmin,
    RetentionStore,
    UsageReport,
    IntegrityStore,
    ArtifactStore,
    Protocol,
):
    """A storage backend's lifecycle, on top of the data ports it serves."""

    @property
    def tokens(self) -> TokenStore:
        """The bearer tokens, over the same connections."""
        ...

    def pool_stats(self) -> Mapping[str, int]:
        """Connection pool figures for metrics, read without I/O: `size` (open),
        `idle`, `waiting` (callers queued for a connection) and `requests` (reads and
        transactions run since the start)."""
        ...

    async def facts(self) -> ServerFacts:
        """Backend name, applied schema version and capabilities."""
        ...

    async def ping(self) -> None:
        """Return when the database answers; raise Unavailable when it does not."""
        ...

    async def shared_secret(self, name: str, candidate: bytes) -> bytes:
        """The secret kept under `name`, keeping `candidate` first if there is none:
        every server process on this database gets the same bytes (the first to ask
        wins a race), so replicas can verify what any of them signed."""
        ...

    async def close(self) -> None:
        """Release connections and threads; the object is unusable afterwards."""
        ...
