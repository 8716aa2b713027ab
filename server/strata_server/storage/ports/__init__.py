"""The storage ports: what the services need from a backend, as typing.Protocols,
one module per port.

The gRPC layer and the services depend only on these; `strata_server.app` picks the
adapters. Every method raises only `strata_server.core.errors` types: adapters
translate driver exceptions at their boundary (an unreachable database is
`Unavailable`).
"""

from __future__ import annotations

from strata_server.storage.ports.admin import (
    AuditLog,
    CleanupRuns,
    IndexAdmin,
    IntegrityLog,
    IntegrityStore,
    OldJobs,
    OldLog,
    QuotaStore,
    RateLimiter,
    RetentionStore,
    TokenStore,
    UsageReport,
)
from strata_server.storage.ports.artifacts import ArtifactStore, BlobStaging
from strata_server.storage.ports.backend import Backend
from strata_server.storage.ports.backups import BackupStore
from strata_server.storage.ports.blobs import BlobStore
from strata_server.storage.ports.cache import Cache, Fill, Lookup
from strata_server.storage.ports.events import Events, Listener, Recheck
from strata_server.storage.ports.owners import Owned, OwnerData
from strata_server.storage.ports.queue import QueueStore
from strata_server.storage.ports.records import CommitRequest, RecordCleanup, RecordStore
from strata_server.storage.ports.search import SearchIndex
from strata_server.storage.ports.transcript_archive import TranscriptArchive
from strata_server.storage.ports.transcripts import TranscriptStore
from strata_server.storage.ports.transfer import ImportRequest, TransferStore

__all__ = [
    "ArtifactStore",
    "AuditLog",
    "Backend",
    "BackupStore",
    "BlobStaging",
    "BlobStore",
    "Cache",
    "CleanupRuns",
    "CommitRequest",
    "Events",
    "Fill",
    "ImportRequest",
    "IndexAdmin",
    "IntegrityLog",
    "IntegrityStore",
    "Listener",
    "Lookup",
    "OldJobs",
    "OldLog",
    "Owned",
    "OwnerData",
    "QueueStore",
    "QuotaStore",
    "RateLimiter",
    "Recheck",
    "RecordCleanup",
    "RecordStore",
    "RetentionStore",
    "SearchIndex",
    "TokenStore",
    "TranscriptArchive",
    "TranscriptStore",
    "TransferStore",
    "UsageReport",
]
