"""`SqliteDatabase`: the embedded backend, one SQLite file in WAL mode.

Open it with the classmethod `SqliteDatabase.open(path, max_record_bytes=...)`. The
schema comes from the yoyo migrations in `migrations/sqlite/`, applied before `open`;
for `:memory:` pass their text as `schema_sql` and it runs on the writer first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from strata_server.core.archive import ConflictPolicy, ImportCounts
from strata_server.core.archive_rows import RowBatch
from strata_server.core.artifacts import Artifact, BlobRef
from strata_server.core.errors import StrataError
from strata_server.core.filters import Filter
from strata_server.core.indexes import RecordIndex
from strata_server.core.integrity import Finding
from strata_server.core.jsontypes import JSON
from strata_server.core.models import (
    Actor,
    AuditQuery,
    ChangeBatch,
    Handoff,
    Idempotency,
    ListQuery,
    LoggedAudit,
    Page,
    Progress,
    QueueDepth,
    Record,
    RecordRef,
    SearchHit,
    SearchQuery,
    ServerFacts,
    Usage,
    Write,
    WriteResult,
)
from strata_server.core.queue import Ack, Availability, Job, NewJob, QueueStats, Visible
from strata_server.core.quotas import Quota, explained
from strata_server.core.retention import Exclude, RetentionPolicy, Target
from strata_server.core.transcripts import (
    Appended,
    AppendEntries,
    EntryBatch,
    NewTranscript,
    Transcript,
    TranscriptHit,
    TranscriptSearch,
)
from strata_server.storage.sqlite import (
    archive,
    artifacts,
    audit,
    changes,
    commit,
    content_retention,
    indexes,
    integrity,
    quotas,
    records,
    retention,
    transcripts,
    usage,
)
from strata_server.storage.sqlite import queue as queues
from strata_server.storage.sqlite.connection import Connections
from strata_server.storage.sqlite.leader import FileLeader
from strata_server.storage.sqlite.tokens import SqliteTokenStore

if TYPE_CHECKING:
    from strata_server.storage.ports import Database

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


class SqliteDatabase:
    """The `storage.ports.Database` port over SQLite (satisfied structurally)."""

    def __init__(
        self, connections: Connections, *, max_record_bytes: int, path: str | None = None
    ) -> None:
        self._db = connections
        self._max_record_bytes = max_record_bytes
        self._leader = FileLeader(path if path and path != ":memory:" else None)
        self._tokens = SqliteTokenStore(connections)

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        max_record_bytes: int,
        readers: int = 4,
        schema_sql: str | None = None,
    ) -> SqliteDatabase:
        """Connect to the database file at `path` (or `:memory:`).

        `schema_sql`, when given, is run as a script on the writer connection before
        anything else (for `:memory:`, where no migration tool can reach the database).
        Raises Unavailable when the file cannot be opened.
        """
        connections = await Connections.open(path, readers=readers, schema_sql=schema_sql)
        return cls(connections, max_record_bytes=max_record_bytes, path=path)

    @property
    def tokens(self) -> SqliteTokenStore:
        """The bearer tokens, over the same connections."""
        return self._tokens

    async def get_record(self, namespace: str, collection: str, id: str) -> Record:
        """The live record, or NotFound."""
        return await records.get_record(self._db, namespace, collection, id)

    async def batch_get_records(
        self, namespace: str, collection: str, ids: Sequence[str]
    ) -> list[Record]:
        """The live records among `ids`; missing ids are absent."""
        return await records.batch_get_records(self._db, namespace, collection, ids)

    async def list_records(self, namespace: str, query: ListQuery) -> Page[Record]:
        """One page in `query.order` after `query.after` (keyset pagination)."""
        return await records.list_records(self._db, namespace, query)

    async def count_records(self, namespace: str, collection: str, filter: Filter | None) -> int:
        """How many live records match."""
        return await records.count_records(self._db, namespace, collection, filter)

    def create_index(
        self, namespace: str, collection: str, path: tuple[str, ...], *, actor: Actor
    ) -> AsyncIterator[Progress | RecordIndex]:
        """Declare and build (holding the writer); progress, then the index."""
        return indexes.create_index(self._db, namespace, collection, path, actor=actor)

    async def list_indexes(self, namespace: str, collection: str | None) -> list[RecordIndex]:
        """Declared indexes."""
        return await indexes.list_indexes(self._db, namespace, collection)

    async def drop_index(
        self, namespace: str, collection: str, path: tuple[str, ...], *, actor: Actor
    ) -> None:
        """Remove the declaration; drop the index once nothing declares its path."""
        await indexes.drop_index(self._db, namespace, collection, path, actor=actor)

    async def list_audit(self, namespace: str, query: AuditQuery) -> Page[LoggedAudit]:
        """Audit entries, newest first."""
        return await audit.list_audit(self._db, namespace, query)

    async def changes_head(self, namespace: str) -> str:
        """The cursor of the newest audit entry."""
        return await changes.head(self._db)

    async def record_changes(
        self, namespace: str, collection: str, after: str, filter: Filter | None, limit: int
    ) -> ChangeBatch:
        """Changes after `after`, in commit (= seq) order."""
        return await changes.record_changes(self._db, namespace, collection, after, filter, limit)

    async def changes_pending(self, namespace: str, collection: str) -> bool:
        """Never: writes commit one at a time, in seq order, so a committed change
        can be read at once."""
        return False

    async def search_records(self, namespace: str, query: SearchQuery) -> Page[SearchHit]:
        """Full-text matches (FTS5, bm25), best first, paged by offset."""
        return await records.search_records(self._db, namespace, query)

    async def commit(
        self,
        namespace: str,
        writes: Sequence[Write],
        *,
        actor: Actor,
        idempotency: Idempotency | None = None,
    ) -> list[WriteResult]:
        """Apply `writes` all-or-nothing in one transaction, with audit entries."""
        work = commit.commit(
            self._db,
            namespace,
            writes,
            actor=actor,
            idempotency=idempotency,
            max_record_bytes=self._max_record_bytes,
        )
        return await explained(namespace, self.list_quotas, work)

    async def purge_expired(self, limit: int) -> list[RecordRef]:
        """Delete up to `limit` expired records, each with an `expire` audit entry."""
        return await commit.purge_expired(self._db, limit)

    async def enqueue(
        self,
        namespace: str,
        jobs: Sequence[NewJob],
        *,
        actor: Actor,
        idempotency: Idempotency | None = None,
        notices: Sequence[str] = (),
    ) -> list[Job]:
        """Insert `jobs` in one transaction (unique_key dedup, idempotent by request_id).
        `notices` are never given here: the embedded shape has no other replicas."""
        return await queues.enqueue(self._db, namespace, jobs, actor=actor, idempotency=idempotency)

    async def enqueue_and_lease(
        self,
        namespace: str,
        job: NewJob,
        handoff: Handoff,
        *,
        actor: Actor,
        notices: Sequence[str] = (),
    ) -> tuple[Job, list[Job]]:
        """Insert one job and lease for `handoff` in one transaction."""
        return await queues.enqueue_and_lease(self._db, namespace, job, handoff, actor=actor)

    async def lease_jobs(
        self,
        namespace: str,
        queue: str,
        max_jobs: int,
        lease: timedelta,
        *,
        actor: Actor,
        token_prefix: str = "",
    ) -> list[Job]:
        """Lease up to `max_jobs` leasable jobs, reclaiming expired leases."""
        return await queues.lease_jobs(
            self._db, namespace, queue, max_jobs, lease, actor=actor, token_prefix=token_prefix
        )

    async def ack_job(
        self, namespace: str, id: str, token: str, result: JSON | None, *, actor: Actor
    ) -> Job:
        """Complete the holder's attempt."""
        return await queues.ack_job(self._db, namespace, id, token, result, actor=actor)

    async def ack_jobs(
        self, namespace: str, acks: Sequence[Ack], *, actor: Actor
    ) -> list[Job | StrataError]:
        """Complete each holder's attempt, each on its own, in one transaction."""
        return await queues.ack_jobs(self._db, namespace, acks, actor=actor)

    async def fail_job(
        self,
        namespace: str,
        id: str,
        token: str,
        error: str,
        retry_delay: timedelta | None,
        *,
        actor: Actor,
    ) -> Job:
        """Record a failed attempt: retry after a backoff, or dead."""
        return await queues.fail_job(
            self._db, namespace, id, token, error, retry_delay, actor=actor
        )

    async def extend_lease(
        self, namespace: str, id: str, token: str, lease: timedelta, *, actor: Actor
    ) -> Job:
        """Heartbeat; the result carries the lease_token."""
        return await queues.extend_lease(self._db, namespace, id, token, lease, actor=actor)

    async def cancel_job(self, namespace: str, id: str, *, actor: Actor) -> Job:
        """Cancel an unfinished job."""
        return await queues.cancel_job(self._db, namespace, id, actor=actor)

    async def retry_job(self, namespace: str, id: str, *, actor: Actor) -> Job:
        """Bring a dead or cancelled job back."""
        return await queues.retry_job(self._db, namespace, id, actor=actor)

    async def release_job(self, namespace: str, id: str, token: str, *, actor: Actor) -> Job:
        """Give a leased job back unworked."""
        return await queues.release_job(self._db, namespace, id, token, actor=actor)

    async def get_job(self, namespace: str, id: str) -> Job:
        """One job, without its lease_token."""
        return await queues.get_job(self._db, namespace, id)

    async def held_leases(self, namespace: str, leases: Mapping[str, str]) -> set[str]:
        """The ids of `leases` still leased under their token."""
        return await queues.held_leases(self._db, namespace, leases)

    async def availability(self, namespace: str, queue: str) -> Availability:
        """Whether a lease could take a job of the queue now, and whether it holds any."""
        return await queues.availability(self._db, namespace, queue)

    async def list_jobs(
        self,
        namespace: str,
        queue: str,
        state: Visible | None,
        limit: int,
        after: tuple[Any, ...] | None,
    ) -> Page[Job]:
        """Jobs of a queue in (create_time, id) order; `last_key` is (create_time_us, id)."""
        return await queues.list_jobs(self._db, namespace, queue, state, limit, after)

    async def set_paused(self, namespace: str, queue: str, paused: bool, *, actor: Actor) -> None:
        """Pause or resume leasing from a queue."""
        await queues.set_paused(self._db, namespace, queue, paused, actor=actor)

    async def queue_stats(self, namespace: str, queue: str) -> QueueStats:
        """Counts by visible state, oldest available age, recent lease expiries."""
        return await queues.queue_stats(self._db, namespace, queue)

    async def purge_completed(self, finished_before: datetime, limit: int) -> int:
        """Delete up to `limit` completed jobs finished before the time."""
        return await queues.purge_completed(self._db, finished_before, limit)

    async def create_transcript(
        self,
        namespace: str,
        new: NewTranscript,
        *,
        actor: Actor,
        idempotency: Idempotency | None = None,
    ) -> Transcript:
        """Create an empty transcript (idempotent by request_id)."""
        return await transcripts.create_transcript(
            self._db, namespace, new, actor=actor, idempotency=idempotency
        )

    async def get_transcript(self, namespace: str, id: str) -> Transcript:
        """One transcript's description."""
        return await transcripts.get_transcript(self._db, namespace, id)

    async def transcript_states(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, bool]]:
        """Next seq and sealed of each transcript, by (namespace, id)."""
        return await transcripts.transcript_states(self._db, keys)

    async def list_transcripts(
        self, namespace: str, owner: str | None, limit: int, after: tuple[Any, ...] | None
    ) -> Page[Transcript]:
        """Transcripts newest first, optionally of one owner."""
        return await transcripts.list_transcripts(self._db, namespace, owner, limit, after)

    async def append_entries(
        self,
        namespace: str,
        append: AppendEntries,
        *,
        actor: Actor,
        idempotency: Idempotency | None = None,
        notice: str | None = None,
    ) -> Appended:
        """Append entries with the next seqs, all or none (idempotent by request_id).
        `notice` is never given here: the embedded shape has no other replicas."""
        work = transcripts.append_entries(
            self._db, namespace, append, actor=actor, idempotency=idempotency
        )
        return await explained(namespace, self.list_quotas, work)

    async def read_batch(
        self, namespace: str, id: str, from_seq: int, max_bytes: int
    ) -> EntryBatch | None:
        """Entries from `from_seq` on that fit in `max_bytes` (one keyset query)."""
        return await transcripts.read_batch(self._db, namespace, id, from_seq, max_bytes)

    async def seal_transcript(self, namespace: str, id: str, *, actor: Actor) -> Transcript:
        """Seal a transcript; a sealed one is returned unchanged."""
        return await transcripts.seal_transcript(self._db, namespace, id, actor=actor)

    async def delete_transcript(self, namespace: str, id: str, *, actor: Actor) -> None:
        """Delete a transcript and its entries."""
        await transcripts.delete_transcript(self._db, namespace, id, actor=actor)

    async def search_transcripts(
        self, namespace: str, query: TranscriptSearch
    ) -> Page[TranscriptHit]:
        """Full-text matches over entries' content (FTS5, bm25), best first."""
        return await transcripts.search_transcripts(self._db, namespace, query)

    def pool_stats(self) -> Mapping[str, int]:
        """The reader pool and the one writer."""
        return self._db.stats()

    async def pin_blob(
        self, namespace: str, upload_id: str, sha256: str, expire_time: datetime
    ) -> None:
        """Keep the sweep off a blob until the upload's row exists."""
        await artifacts.pin_blob(self._db, namespace, upload_id, sha256, expire_time)

    async def create_artifact(
        self,
        artifact: Artifact,
        *,
        actor: Actor,
        idempotency: Idempotency | None,
        upload_id: str | None,
    ) -> Artifact:
        """Insert an artifact row (audited) and drop its upload's pin."""
        work = artifacts.create_artifact(
            self._db, artifact, actor=actor, idempotency=idempotency, upload_id=upload_id
        )
        return await explained(artifact.namespace, self.list_quotas, work)

    async def unpin_blob(self, namespace: str, upload_id: str) -> None:
        """Drop an upload's pin."""
        await artifacts.unpin_blob(self._db, namespace, upload_id)

    async def get_artifact(self, namespace: str, id: str) -> Artifact:
        """One artifact, or NotFound."""
        return await artifacts.get_artifact(self._db, namespace, id)

    async def list_artifacts(
        self, namespace: str, owner: str | None, kind: str | None, limit: int, after: str | None
    ) -> Page[Artifact]:
        """Artifacts in id order after `after`."""
        return await artifacts.list_artifacts(self._db, namespace, owner, kind, limit, after)

    async def delete_artifact(self, namespace: str, id: str, *, actor: Actor) -> Artifact:
        """Delete an artifact row (audited)."""
        return await artifacts.delete_artifact(self._db, namespace, id, actor=actor)

    async def namespace_blobs(self, namespace: str, sha256s: Sequence[str]) -> dict[str, BlobRef]:
        """The blobs among `sha256s` named by an artifact of the namespace."""
        return await artifacts.namespace_blobs(self._db, namespace, sha256s)

    async def unreferenced_blobs(self, sha256s: Sequence[str], now: datetime) -> set[str]:
        """Blobs among `sha256s` that no artifact names and no live pin holds."""
        return await artifacts.unreferenced_blobs(self._db, sha256s, now)

    async def delete_blob_if_unreferenced(
        self, sha256: str, now: datetime, delete: Callable[[], Awaitable[None]]
    ) -> bool:
        """Delete a blob's bytes if, under the writer lock, nothing references it."""
        return await artifacts.delete_blob_if_unreferenced(self._db, sha256, now, delete)

    async def purge_pins(self, now: datetime) -> int:
        """Delete expired pins."""
        return await artifacts.purge_pins(self._db, now)

    def all_artifacts(self) -> AsyncIterator[Artifact]:
        """Every artifact of every namespace."""
        return artifacts.all_artifacts(self._db)

    async def facts(self) -> ServerFacts:
        """Backend name, newest applied yoyo migration ("memory" without yoyo)."""
        version = "memory"
        if (await self._db.fetchall(HAS_YOYO_TABLE))[0][0]:
            rows = await self._db.fetchall(NEWEST_MIGRATION)
            if rows:
                version = str(rows[0][0])
        return ServerFacts(backend="sqlite", schema_version=version, capabilities=CAPABILITIES)

    async def ping(self) -> None:
        """Return when the database answers a query; raise Unavailable otherwise."""
        await self._db.fetchall("SELECT 1")

    async def shared_secret(self, name: str, candidate: bytes) -> bytes:
        """Kept in server_secrets: inserted unless present, then read back."""
        async with self._db.transaction() as tx:
            await tx.execute(KEEP_SECRET, (name, candidate, records.now_micros()))
        rows = await self._db.fetchall(READ_SECRET, (name,))
        return bytes(rows[0][0])

    async def count_expired(self) -> int:
        """Records past their expire_time."""
        return await retention.count_expired(self._db)

    async def count_old_records(self, namespace: str, collection: str, before: datetime) -> int:
        """Records of a collection last written before `before`."""
        return await retention.count_old_records(self._db, namespace, collection, before)

    async def purge_old_records(
        self, namespace: str, collection: str, before: datetime, limit: int
    ) -> list[RecordRef]:
        """Delete up to `limit` of them, each with a `retention` audit entry."""
        return await retention.purge_old_records(self._db, namespace, collection, before, limit)

    async def set_retention(self, policy: RetentionPolicy, *, actor: Actor) -> RetentionPolicy:
        """Create or replace a policy."""
        return await retention.set_policy(self._db, policy, actor=actor)

    async def list_retention(self, namespace: str | None) -> list[RetentionPolicy]:
        """Policies of a namespace, or of all."""
        return await retention.list_policies(self._db, namespace)

    async def delete_retention(
        self, namespace: str, target: Target, selector: str, *, actor: Actor
    ) -> None:
        """Remove a policy."""
        await retention.delete_policy(self._db, namespace, target, selector, actor=actor)

    async def count_old_jobs(
        self,
        namespace: str | None,
        queue: str | None,
        state: str,
        before: datetime,
        exclude: Exclude,
    ) -> int:
        """Finished jobs a purge would take."""
        return await retention.count_old_jobs(self._db, namespace, queue, state, before, exclude)

    async def purge_old_jobs(
        self,
        namespace: str | None,
        queue: str | None,
        state: str,
        before: datetime,
        exclude: Exclude,
        limit: int,
    ) -> int:
        """Delete up to `limit` of them."""
        return await retention.purge_old_jobs(
            self._db, namespace, queue, state, before, exclude, limit
        )

    async def count_old_transcripts(self, namespace: str, before: datetime) -> int:
        """Transcripts sealed before `before`."""
        return await content_retention.count_old_transcripts(self._db, namespace, before)

    async def purge_old_transcripts(self, namespace: str, before: datetime, limit: int) -> int:
        """Delete up to `limit` of them with their entries, in one transaction."""
        return await content_retention.purge_old_transcripts(self._db, namespace, before, limit)

    async def count_old_artifacts(self, namespace: str, kind: str, before: datetime) -> int:
        """Artifacts of a kind (or of every unnamed kind) created before `before`."""
        return await content_retention.count_old_artifacts(self._db, namespace, kind, before)

    async def purge_old_artifacts(
        self, namespace: str, kind: str, before: datetime, limit: int
    ) -> int:
        """Delete up to `limit` of those rows (their blobs go at the orphan sweep)."""
        return await content_retention.purge_old_artifacts(self._db, namespace, kind, before, limit)

    async def usage(self, namespace: str | None, owner: str | None = None) -> Usage:
        """Records, jobs, transcripts, artifacts and blobs per namespace."""
        return await usage.usage(self._db, namespace, owner)

    async def queue_depths(self) -> list[QueueDepth]:
        """Unfinished jobs per queue."""
        return await usage.queue_depths(self._db)

    def check_integrity(
        self, namespace: str | None, *, repair: bool
    ) -> AsyncIterator[Progress | Finding | tuple[str, int]]:
        """The file (quick_check), jobs, declared indexes, transcripts."""
        return integrity.check(self._db, namespace, repair=repair)

    async def lead(self, name: str) -> bool:
        """A file lock beside the database (see leader.py)."""
        return self._leader.lead(name)

    def export_rows(
        self, namespace: str, owner: str | None
    ) -> AsyncIterator[dict[str, int] | RowBatch]:
        """Counts, then rows kind by kind, from one read snapshot."""
        return archive.export_rows(self._db, namespace, owner)

    async def import_rows(
        self,
        namespace: str,
        batches: AsyncIterator[RowBatch],
        policy: ConflictPolicy,
        *,
        actor: Actor,
    ) -> ImportCounts:
        """Every batch in one write transaction (holding the writer)."""
        work = archive.import_rows(self._db, namespace, batches, policy, actor=actor)
        return await explained(namespace, self.list_quotas, work)

    async def set_quota(self, namespace: str, max_bytes: int, *, actor: Actor) -> Quota:
        """Save (recounting) or remove a quota, in one write transaction."""
        return await quotas.set_quota(self._db, namespace, max_bytes, actor=actor)

    async def list_quotas(self, namespace: str | None) -> list[Quota]:
        """The quota rows of one namespace or of all."""
        return await quotas.list_quotas(self._db, namespace)

    async def close(self) -> None:
        """Close every connection; the object is unusable afterwards."""
        self._leader.close()
        await self._db.close()


if TYPE_CHECKING:

    def _satisfies_port(db: SqliteDatabase) -> Database:
        """mypy proves here that SqliteDatabase implements the Database port."""
        return db
