"""Every gRPC servicer, registered on a server over the use-case services it
translates for, each given the ports it needs of the opened storage. app.py calls
this once per process; it returns the cleanup schedule and the other background
work (scheduled integrity checks and backups), which app.py runs.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc

from strata.v1 import (
    admin_pb2_grpc,
    artifacts_pb2_grpc,
    cache_pb2_grpc,
    queue_pb2_grpc,
    records_pb2_grpc,
    search_pb2_grpc,
    transaction_pb2_grpc,
)
from strata_server.api.admin_rpc import AdminService
from strata_server.api.artifacts_rpc import ArtifactService
from strata_server.api.cache_rpc import CacheService
from strata_server.api.queue_rpc import QueueService
from strata_server.api.records_rpc import RecordService
from strata_server.api.search_rpc import SearchService
from strata_server.api.transaction_rpc import TransactionService
from strata_server.api.transcripts_rpc import TranscriptService
from strata_server.api.transcripts_rpc import add_to_server as add_transcript_service
from strata_server.api.transfer_rpc import TransferRpc
from strata_server.backends import Caching, open_backups
from strata_server.config import Settings
from strata_server.core.models import RecordRef
from strata_server.core.paging import PageTokens
from strata_server.services.access_service import TokenAdmin, Verifier
from strata_server.services.admin_service import Administration, Backends, ServerDescription
from strata_server.services.archive_service import Archiver
from strata_server.services.artifacts_service import Artifacts
from strata_server.services.backup_service import ScheduledBackups
from strata_server.services.cleanup_schedule import CleanupSchedule, default_replica
from strata_server.services.cleanup_service import Cleanup, Keep
from strata_server.services.commit_service import Commits
from strata_server.services.integrity_service import IntegrityCheck
from strata_server.services.owner_cleanup import OwnerCleanup
from strata_server.services.queue_service import Queues
from strata_server.services.records_service import Records
from strata_server.services.search_reindex import Reindexing
from strata_server.services.search_service import Searches
from strata_server.services.topics import Wakeups
from strata_server.services.transcripts_service import Transcripts
from strata_server.services.transfer_export import NamespaceExport
from strata_server.services.transfer_import import ImportLimits, NamespaceImport
from strata_server.storage.composite import Storage
from strata_server.storage.ports import BlobStore, Events


def register_services(
    server: grpc.aio.Server,
    settings: Settings,
    database: Storage,
    caching: Caching,
    events: Events,
    blobs: BlobStore,
    tokens: PageTokens,
    verifier: Verifier | None,
) -> tuple[CleanupSchedule, list[Coroutine[Any, Any, None]]]:
    """Add the eight Strata servicers to `server`; returns the cleanup schedule and
    the other background work to run."""
    records = Records(caching.records, events)
    commits = Commits(caching.records, events)
    archiver = Archiver(database.transcripts, database.archive, blobs, database.artifacts)
    transcripts = Transcripts(
        database.transcripts,
        events,
        heartbeat_seconds=settings.transcript_heartbeat_seconds,
        archived=archiver.read,
    )
    queues = Queues(database.queue, events)
    searches = Searches(database.search, blobs, settings.search_text_max_bytes)
    artifacts = Artifacts(
        database.artifacts,
        database.quotas,
        blobs,
        max_bytes=settings.max_artifact_bytes,
        idle_seconds=settings.upload_idle_timeout_seconds,
        stored=searches.index_artifact_text,
    )
    records_pb2_grpc.add_RecordServiceServicer_to_server(
        RecordService(records, settings.max_record_bytes, tokens=tokens), server
    )
    transaction_pb2_grpc.add_TransactionServiceServicer_to_server(
        TransactionService(
            commits, settings.max_record_bytes, max_entry_bytes=settings.max_entry_bytes
        ),
        server,
    )
    add_transcript_service(
        TranscriptService(
            transcripts, archiver, max_entry_bytes=settings.max_entry_bytes, tokens=tokens
        ),
        server,
    )
    cache_pb2_grpc.add_CacheServiceServicer_to_server(
        CacheService(
            caching.cache,
            max_value_bytes=settings.cache_max_value_bytes,
            default_ttl=settings.cache_default_ttl_seconds,
        ),
        server,
    )
    queue_pb2_grpc.add_QueueServiceServicer_to_server(
        QueueService(queues, settings.max_record_bytes, tokens=tokens), server
    )
    artifacts_pb2_grpc.add_ArtifactServiceServicer_to_server(
        ArtifactService(artifacts, tokens=tokens), server
    )
    search_pb2_grpc.add_SearchServiceServicer_to_server(
        SearchService(searches, tokens=tokens), server
    )

    def wake_watches(refs: Sequence[RecordRef]) -> None:
        # Removed records are changes too: wake the watches of their collections (a
        # watched collection is not re-checked while nothing waits to settle).
        for namespace, collection in {(ref.namespace, ref.collection) for ref in refs}:
            Wakeups(events).records_changed(namespace, [collection])

    async def purged(refs: Sequence[RecordRef]) -> None:
        wake_watches(refs)
        await caching.forget(refs)

    async def purge_expired(limit: int) -> list[RecordRef]:
        refs = await caching.records.purge_expired(limit)
        wake_watches(refs)
        return refs

    def sealed(keys: Sequence[tuple[str, str]]) -> None:
        # Followers of a transcript cleanup sealed end with `sealed`, on every replica.
        for namespace, id in keys:
            Wakeups(events).transcript_changed(namespace, id)

    def transcripts_gone(namespace: str, ids: Sequence[str]) -> None:
        # Followers of an owner cleanup's removed transcripts end at once (NOT_FOUND).
        for id in ids:
            Wakeups(events).transcript_changed(namespace, id)

    blob_grace = timedelta(seconds=settings.blob_sweep_grace_seconds)
    cleanup = Cleanup(
        database.retention,
        database.cleanup,
        database.artifacts,
        keep=Keep(
            completed_jobs=timedelta(seconds=settings.completed_job_retention_seconds),
            audit_log=timedelta(seconds=settings.audit_retention_seconds),
            request_log=timedelta(seconds=settings.request_log_retention_seconds),
            idle=timedelta(seconds=settings.transcript_auto_seal_seconds),
        ),
        purge_expired=purge_expired,
        forget=purged,
        sealed=sealed,
        blobs=blobs,
        blob_grace=blob_grace,
        archiver=archiver,
    )
    schedule = CleanupSchedule(
        cleanup,
        database.retention,
        database.cleanup_runs,
        settings.replica_name or default_replica(),
    )
    transfer = TransferRpc(
        NamespaceExport(
            database.transfer,
            blobs,
            facts=database.facts,
            archive=archiver,
        ),
        NamespaceImport(
            database.transfer,
            database.artifacts,
            blobs,
            limits=ImportLimits(
                archive_bytes=settings.max_import_bytes,
                line_bytes=settings.import_line_bytes,
                rows_bytes=settings.max_import_rows_bytes,
            ),
            idle_seconds=settings.import_idle_timeout_seconds,
            forget=caching.forget_namespace,
            wakeups=Wakeups(events),
        ),
    )
    integrity = IntegrityCheck(
        database.integrity,
        database.artifacts,
        blobs,
        blob_grace=blob_grace,
        reports=database.integrity_log,
        lead=database.retention.lead,
        interval=settings.integrity_interval_seconds,
        sample=settings.integrity_sample_percent / 100,
        segment_blobs=database.archive.segment_blobs,
    )
    scheduled: list[Coroutine[Any, Any, None]] = []
    if settings.integrity_interval_seconds > 0:
        scheduled.append(integrity.run_every())
    backups = open_backups(settings)
    if backups is not None and settings.backup_interval_seconds > 0:
        scheduled.append(
            ScheduledBackups(
                backups, database.retention.lead, settings.backup_interval_seconds
            ).run_every()
        )
    admin_pb2_grpc.add_AdminServiceServicer_to_server(
        AdminService(
            ServerDescription(
                database.facts,
                Backends(cache=caching.backend, blobs=blobs.kind),
                datetime.now(UTC),
                caching.stats,
            ),
            Administration(
                database.audit,
                database.indexes,
                database.retention,
                database.usage,
                database.quotas,
            ),
            cleanup,
            integrity,
            transfer=transfer,
            schedule=schedule,
            token_admin=TokenAdmin(database.tokens, events, verifier.forget if verifier else None),
            tokens=tokens,
            reindexing=Reindexing(database.artifacts, searches),
            owner_cleanup=OwnerCleanup(
                database.owners, forget=purged, transcripts_gone=transcripts_gone
            ),
        ),
        server,
    )
    return schedule, scheduled
