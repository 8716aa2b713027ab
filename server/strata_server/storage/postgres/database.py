"""`PostgresDatabase`: the production backend, PostgreSQL through a psycopg pool.

Open it with the classmethod `PostgresDatabase.open(dsn, max_record_bytes=...)`. The
schema comes from the yoyo migrations in `migrations/postgres/`, applied before
`open`.

Every call borrows one pooled connection and turns driver errors into domain errors
(`pool.translate`): an unreachable database is `Unavailable`, never a psycopg
exception. A connection found dead on first use (the database restarted since it was
pooled) makes the pool check all its idle connections, and the call is retried once
on a fresh one: always for a read, and for a commit only when its BEGIN failed, since
nothing can have been written then. So the server serves again as soon as the
database is back, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
import structlog

from strata_server.core.archive import ConflictPolicy, ImportCounts
from strata_server.core.archive_rows import RowBatch
from strata_server.core.artifacts import Artifact, BlobRef
from strata_server.core.errors import Conflict, StrataError
from strata_server.core.filters import Filter
from strata_server.core.indexes import RecordIndex, index_name
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
from strata_server.storage.postgres import (
    archive,
    artifacts,
    audit,
    changes,
    commit,
    content_retention,
    indexes,
    integrity,
    queries,
    quotas,
    records,
    retention,
    transcripts,
    usage,
)
from strata_server.storage.postgres import queue as job_queue
from strata_server.storage.postgres.indexes import IndexedPaths
from strata_server.storage.postgres.pool import Conn, Pool, lost, open_pool, translate
from strata_server.storage.postgres.tokens import PostgresTokenStore

log = structlog.get_logger("strata.postgres")

INDEX_PROGRESS_SECONDS = 0.5
"""How often CreateIndex reports a running build's progress."""

COMMIT_ATTEMPTS = 4
"""How often a commit that lost a race to a concurrent transaction is tried."""

if TYPE_CHECKING:
    from strata_server.storage.ports import Database

T = TypeVar("T")

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

NO_YOYO_VERSION = "unknown"
"""schema_version when the schema was not applied by yoyo (no _yoyo_migration table)."""


class PostgresDatabase:
    """The `storage.ports.Database` port over PostgreSQL (satisfied structurally)."""

    def __init__(self, pool: Pool, *, max_record_bytes: int) -> None:
        self._pool = pool
        self._max_record_bytes = max_record_bytes
        self._indexes = IndexedPaths()
        self._builds: dict[str, asyncio.Task[None]] = {}
        self._leader: Conn | None = None  # a session of its own, outside the pool
        self._led: set[str] = set()
        self._tokens = PostgresTokenStore(self._run)

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        max_record_bytes: int,
        min_size: int = 2,
        max_size: int = 10,
        pool_timeout: float = 5.0,
        statement_timeout: float = 0.0,
    ) -> PostgresDatabase:
        """Connect a pool of `min_size`..`max_size` connections to `dsn`.

        `pool_timeout` is how long a call waits for a free connection (and `open` for the
        first ones) before raising Unavailable. `statement_timeout` (seconds, 0: none)
        bounds every statement; one that runs longer fails with QueryTimeout.
        """
        pool = await open_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            pool_timeout=pool_timeout,
            statement_timeout=statement_timeout,
        )
        return cls(pool, max_record_bytes=max_record_bytes)

    @property
    def tokens(self) -> PostgresTokenStore:
        """The bearer tokens, over the same pool."""
        return self._tokens

    async def _run(
        self,
        work: Callable[[Conn], Awaitable[T]],
        *,
        transaction: bool = False,
        writes: bool = False,
    ) -> T:
        """Run `work` on a pooled connection (inside a transaction if asked), with
        driver errors translated and one retry after a dead pooled connection.

        The retry is safe for reads, and for a transaction whose BEGIN failed (the
        BEGIN finds the dead connection before anything is written). `writes` marks
        autocommit work that writes: a connection lost under it may have committed,
        so it is not run again (the caller gets UNAVAILABLE, as for a COMMIT lost)."""
        for attempt in (1, 2):
            conn: Conn | None = None
            begun = writes and not transaction
            try:
                async with self._pool.connection() as conn:
                    if not transaction:
                        return await work(conn)
                    async with conn.transaction():
                        begun = True
                        return await work(conn)
            except psycopg.Error as error:
                if lost(conn):
                    await self._pool.check()
                    if attempt == 1 and not begun:
                        continue
                raise translate(error) from error
        raise AssertionError("unreachable")  # pragma: no cover

    async def get_record(self, namespace: str, collection: str, id: str) -> Record:
        """The live record, or NotFound."""
        return await self._run(lambda conn: records.get_record(conn, namespace, collection, id))

    async def batch_get_records(
        self, namespace: str, collection: str, ids: Sequence[str]
    ) -> list[Record]:
        """The live records among `ids`; missing ids are absent."""
        return await self._run(
            lambda conn: records.batch_get_records(conn, namespace, collection, ids)
        )

    async def list_records(self, namespace: str, query: ListQuery) -> Page[Record]:
        """One page in `query.order` after `query.after` (keyset pagination)."""

        async def work(conn: Conn) -> Page[Record]:
            dialect = await self._indexes.dialect(conn)
            return await records.list_records(conn, namespace, query, dialect)

        return await self._run(work)

    async def count_records(self, namespace: str, collection: str, filter: Filter | None) -> int:
        """How many live records match."""

        async def work(conn: Conn) -> int:
            dialect = await self._indexes.dialect(conn)
            return await records.count_records(conn, namespace, collection, filter, dialect)

        return await self._run(work)

    async def list_audit(self, namespace: str, query: AuditQuery) -> Page[LoggedAudit]:
        """Audit entries, newest first."""
        return await self._run(lambda conn: audit.list_audit(conn, namespace, query))

    async def changes_head(self, namespace: str) -> str:
        """The cursor below which every transaction has ended."""
        return await self._run(changes.head)

    async def record_changes(
        self, namespace: str, collection: str, after: str, filter: Filter | None, limit: int
    ) -> ChangeBatch:
        """Settled changes after `after`, in (xact, seq) order."""

        async def work(conn: Conn) -> ChangeBatch:
            dialect = await self._indexes.dialect(conn)
            return await changes.record_changes(
                conn, namespace, collection, after, filter, limit, dialect
            )

        return await self._run(work)

    async def changes_pending(self, namespace: str, collection: str) -> bool:
        """Whether committed changes wait for an older transaction to end."""
        return await self._run(lambda conn: changes.pending(conn, namespace, collection))

    async def search_records(self, namespace: str, query: SearchQuery) -> Page[SearchHit]:
        """Full-text matches, paged by offset: `plainto_tsquery`, so every word must
        match as on SQLite; ranked by ts_rank."""
        return await self._run(lambda conn: records.search_records(conn, namespace, query))

    async def commit(
        self,
        namespace: str,
        writes: Sequence[Write],
        *,
        actor: Actor,
        idempotency: Idempotency | None = None,
    ) -> list[WriteResult]:
        """Apply `writes` all-or-nothing in one transaction, with audit entries.

        A Conflict (a concurrent transaction created a key this one meant to insert,
        or a serialization failure) rolled everything back, so the commit is retried
        here a few times: the next attempt sees the other transaction's rows and
        decides again (an upsert becomes an update, a create AlreadyExists).
        Creates of new keys first try the optimistic path (commit.optimistic).
        """
        return await explained(
            namespace, self.list_quotas, self._commit(namespace, writes, actor, idempotency)
        )

    async def _commit(
        self,
        namespace: str,
        writes: Sequence[Write],
        actor: Actor,
        idempotency: Idempotency | None,
    ) -> list[WriteResult]:
        assume_new = commit.optimistic(writes)
        for attempt in range(1, COMMIT_ATTEMPTS + 1):

            async def work(conn: Conn, new: bool = assume_new) -> list[WriteResult]:
                return await commit.commit(
                    conn,
                    namespace,
                    writes,
                    actor=actor,
                    idempotency=idempotency,
                    max_record_bytes=self._max_record_bytes,
                    assume_new=new,
                )

            try:
                return await self._run(work, transaction=True)
            except commit.ExistingRows:
                assume_new = False  # rolled back; decide again against the stored rows
                continue
            except Conflict:
                if attempt == COMMIT_ATTEMPTS:
                    raise
                await asyncio.sleep(random.uniform(0, 0.002 * attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    async def purge_expired(self, limit: int) -> list[RecordRef]:
        """Delete up to `limit` expired records, each with an `expire` audit entry."""
        return await self._run(lambda conn: commit.purge_expired(conn, limit))

    # --- QueueStore (storage/postgres/queue.py) -----------------------------------------

    async def enqueue(
        self,
        namespace: str,
        jobs: Sequence[NewJob],
        *,
        actor: Actor,
        idempotency: Idempotency | None = None,
        notices: Sequence[str] = (),
    ) -> list[Job]:
        """Insert `jobs` in one transaction (unique_key by the partial unique index),
        sending `notices` on the events channel when a job is inserted and commits."""
        # One job without a request_id needs no transaction: each statement of
        # job_queue.enqueue is atomic alone and none depends on an earlier one's
        # writes. Skipping BEGIN and COMMIT is two round trips off every Enqueue,
        # on the path of enqueue -> delivery latency.
        return await self._run(
            lambda conn: job_queue.enqueue(
                conn, namespace, jobs, actor=actor, idempotency=idempotency, notices=notices
            ),
            transaction=idempotency is not None or len(jobs) > 1,
            writes=True,
        )

    async def enqueue_and_lease(
        self,
        namespace: str,
        job: NewJob,
        handoff: Handoff,
        *,
        actor: Actor,
        notices: Sequence[str] = (),
    ) -> tuple[Job, list[Job]]:
        """Insert one job, already leased for `handoff` when it is first in line, in
        one statement (job_queue.enqueue_and_lease)."""
        return await self._run(
            lambda conn: job_queue.enqueue_and_lease(
                conn, namespace, job, handoff, actor=actor, notices=notices
            ),
            writes=True,
        )

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
        """Lease up to `max_jobs` jobs (FOR UPDATE SKIP LOCKED); [] when paused."""
        return await self._run(
            lambda conn: job_queue.lease_jobs(
                conn, namespace, queue, max_jobs, lease, actor=actor, token_prefix=token_prefix
            ),
        )

    async def ack_job(
        self, namespace: str, id: str, token: str, result: JSON | None, *, actor: Actor
    ) -> Job:
        """Complete the holder's attempt."""
        return await self._run(
            lambda conn: job_queue.ack_job(conn, namespace, id, token, result, actor=actor),
            writes=True,
        )

    async def ack_jobs(
        self, namespace: str, acks: Sequence[Ack], *, actor: Actor
    ) -> list[Job | StrataError]:
        """Complete each holder's attempt, each on its own, in one statement."""
        return await self._run(
            lambda conn: job_queue.ack_jobs(conn, namespace, acks, actor=actor), writes=True
        )

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
        """Record a failed attempt (retry after backoff, or dead)."""
        return await self._run(
            lambda conn: job_queue.fail_job(
                conn, namespace, id, token, error, retry_delay, actor=actor
            ),
            transaction=True,
        )

    async def release_job(self, namespace: str, id: str, token: str, *, actor: Actor) -> Job:
        """Give the holder's job back unworked (attempt not counted)."""
        return await self._run(
            lambda conn: job_queue.release_job(conn, namespace, id, token, actor=actor),
            writes=True,
        )

    async def extend_lease(
        self, namespace: str, id: str, token: str, lease: timedelta, *, actor: Actor
    ) -> Job:
        """Heartbeat; the result carries the lease_token."""
        return await self._run(
            lambda conn: job_queue.extend_lease(conn, namespace, id, token, lease, actor=actor),
            writes=True,
        )

    async def cancel_job(self, namespace: str, id: str, *, actor: Actor) -> Job:
        """Cancel an unfinished job."""
        return await self._run(
            lambda conn: job_queue.cancel_job(conn, namespace, id, actor=actor), transaction=True
        )

    async def retry_job(self, namespace: str, id: str, *, actor: Actor) -> Job:
        """Bring a dead or cancelled job back."""
        return await self._run(
            lambda conn: job_queue.retry_job(conn, namespace, id, actor=actor), transaction=True
        )

    async def get_job(self, namespace: str, id: str) -> Job:
        """One job, without its lease_token."""
        return await self._run(lambda conn: job_queue.get_job(conn, namespace, id))

    async def held_leases(self, namespace: str, leases: Mapping[str, str]) -> set[str]:
        """The ids of `leases` (job id -> token) still leased under their token."""
        return await self._run(lambda conn: job_queue.held_leases(conn, namespace, leases))

    async def availability(self, namespace: str, queue: str) -> Availability:
        """Whether a lease could take a job of the queue now, and whether it holds any."""
        return await self._run(lambda conn: job_queue.availability(conn, namespace, queue))

    async def list_jobs(
        self,
        namespace: str,
        queue: str,
        state: Visible | None,
        limit: int,
        after: tuple[Any, ...] | None,
    ) -> Page[Job]:
        """Jobs of a queue in (create_time, id) order after `after`."""
        return await self._run(
            lambda conn: job_queue.list_jobs(conn, namespace, queue, state, limit, after)
        )

    async def set_paused(self, namespace: str, queue: str, paused: bool, *, actor: Actor) -> None:
        """Pause or resume leasing from a queue."""
        await self._run(
            lambda conn: job_queue.set_paused(conn, namespace, queue, paused, actor=actor)
        )

    async def queue_stats(self, namespace: str, queue: str) -> QueueStats:
        """Counts by visible state, oldest available age, recent lease expiries."""
        return await self._run(lambda conn: job_queue.queue_stats(conn, namespace, queue))

    async def purge_completed(self, finished_before: datetime, limit: int) -> int:
        """Delete up to `limit` completed jobs finished before the time."""
        return await self._run(lambda conn: job_queue.purge_completed(conn, finished_before, limit))

    # --- TranscriptStore (storage/postgres/transcripts.py) ------------------------------

    async def create_transcript(
        self,
        namespace: str,
        new: NewTranscript,
        *,
        actor: Actor,
        idempotency: Idempotency | None = None,
    ) -> Transcript:
        """Create an empty transcript (idempotent by request_id)."""
        return await self._run(
            lambda conn: transcripts.create_transcript(
                conn, namespace, new, actor=actor, idempotency=idempotency
            ),
            transaction=True,
        )

    async def get_transcript(self, namespace: str, id: str) -> Transcript:
        """One transcript's description."""
        return await self._run(lambda conn: transcripts.get_transcript(conn, namespace, id))

    async def transcript_states(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, bool]]:
        """Next seq and sealed of each transcript, by (namespace, id)."""
        return await self._run(lambda conn: transcripts.transcript_states(conn, keys))

    async def list_transcripts(
        self, namespace: str, owner: str | None, limit: int, after: tuple[Any, ...] | None
    ) -> Page[Transcript]:
        """Transcripts newest first, optionally of one owner."""
        return await self._run(
            lambda conn: transcripts.list_transcripts(conn, namespace, owner, limit, after)
        )

    async def append_entries(
        self,
        namespace: str,
        append: AppendEntries,
        *,
        actor: Actor,
        idempotency: Idempotency | None = None,
        notice: str | None = None,
    ) -> Appended:
        """Append under the transcript's row lock only (idempotent by request_id),
        sending `notice` on the events channel when it commits."""
        # Without a request_id the append is one statement (transcript_queries.APPEND
        # writes the entries, the counters and the audit entry together), atomic
        # alone: skipping BEGIN and COMMIT takes two round trips off the path of
        # append -> follower delivery.
        work = self._run(
            lambda conn: transcripts.append_entries(
                conn, namespace, append, actor=actor, idempotency=idempotency, notice=notice
            ),
            transaction=idempotency is not None,
            writes=True,
        )
        return await explained(namespace, self.list_quotas, work)

    async def read_batch(
        self, namespace: str, id: str, from_seq: int, max_bytes: int
    ) -> EntryBatch | None:
        """Entries from `from_seq` on that fit in `max_bytes` (one keyset query)."""
        return await self._run(
            lambda conn: transcripts.read_batch(conn, namespace, id, from_seq, max_bytes)
        )

    async def seal_transcript(self, namespace: str, id: str, *, actor: Actor) -> Transcript:
        """Seal a transcript; a sealed one is returned unchanged."""
        return await self._run(
            lambda conn: transcripts.seal_transcript(conn, namespace, id, actor=actor),
            transaction=True,
        )

    async def delete_transcript(self, namespace: str, id: str, *, actor: Actor) -> None:
        """Delete a transcript and its entries."""
        await self._run(
            lambda conn: transcripts.delete_transcript(conn, namespace, id, actor=actor),
            transaction=True,
        )

    async def search_transcripts(
        self, namespace: str, query: TranscriptSearch
    ) -> Page[TranscriptHit]:
        """Full-text matches over entries' content (tsvector, ts_rank), best first."""
        return await self._run(lambda conn: transcripts.search_transcripts(conn, namespace, query))

    async def pin_blob(
        self, namespace: str, upload_id: str, sha256: str, expire_time: datetime
    ) -> None:
        """Keep the sweep off a blob until the upload's row exists."""
        await self._run(
            lambda conn: artifacts.pin_blob(conn, namespace, upload_id, sha256, expire_time),
            transaction=True,
        )

    async def create_artifact(
        self,
        artifact: Artifact,
        *,
        actor: Actor,
        idempotency: Idempotency | None,
        upload_id: str | None,
    ) -> Artifact:
        """Insert an artifact row (audited) and drop its upload's pin."""
        work = self._run(
            lambda conn: artifacts.create_artifact(
                conn, artifact, actor=actor, idempotency=idempotency, upload_id=upload_id
            ),
            transaction=True,
        )
        return await explained(artifact.namespace, self.list_quotas, work)

    async def unpin_blob(self, namespace: str, upload_id: str) -> None:
        """Drop an upload's pin."""
        await self._run(lambda conn: artifacts.unpin_blob(conn, namespace, upload_id))

    async def get_artifact(self, namespace: str, id: str) -> Artifact:
        """One artifact, or NotFound."""
        return await self._run(lambda conn: artifacts.get_artifact(conn, namespace, id))

    async def list_artifacts(
        self, namespace: str, owner: str | None, kind: str | None, limit: int, after: str | None
    ) -> Page[Artifact]:
        """Artifacts in id order after `after`."""
        return await self._run(
            lambda conn: artifacts.list_artifacts(conn, namespace, owner, kind, limit, after)
        )

    async def delete_artifact(self, namespace: str, id: str, *, actor: Actor) -> Artifact:
        """Delete an artifact row (audited)."""
        return await self._run(
            lambda conn: artifacts.delete_artifact(conn, namespace, id, actor=actor),
            transaction=True,
        )

    async def namespace_blobs(self, namespace: str, sha256s: Sequence[str]) -> dict[str, BlobRef]:
        """The blobs among `sha256s` named by an artifact of the namespace."""
        return await self._run(lambda conn: artifacts.namespace_blobs(conn, namespace, sha256s))

    async def unreferenced_blobs(self, sha256s: Sequence[str], now: datetime) -> set[str]:
        """Blobs among `sha256s` that no artifact names and no live pin holds."""
        return await self._run(lambda conn: artifacts.unreferenced_blobs(conn, sha256s, now))

    async def delete_blob_if_unreferenced(
        self, sha256: str, now: datetime, delete: Callable[[], Awaitable[None]]
    ) -> bool:
        """Delete a blob's bytes if, under its advisory lock, nothing references it."""
        return await self._run(
            lambda conn: artifacts.delete_blob_if_unreferenced(conn, sha256, now, delete),
            transaction=True,
        )

    async def purge_pins(self, now: datetime) -> int:
        """Delete expired pins."""
        return await self._run(lambda conn: artifacts.purge_pins(conn, now))

    async def all_artifacts(self) -> AsyncIterator[Artifact]:
        """Every artifact of every namespace, a page per pooled query."""
        after = ("", "")
        while True:
            page = await self._run(
                lambda conn, key=after: artifacts.artifacts_page(conn, key)  # type: ignore[misc]
            )
            for artifact in page:
                yield artifact
            if len(page) < artifacts.PAGE:
                return
            after = (page[-1].namespace, page[-1].id)

    async def export_rows(
        self, namespace: str, owner: str | None
    ) -> AsyncIterator[dict[str, int] | RowBatch]:
        """Counts, then rows kind by kind, from one REPEATABLE READ snapshot on one
        connection held for the export."""
        try:
            async with self._pool.connection() as conn, conn.transaction():
                async for item in archive.export_rows(conn, namespace, owner):
                    yield item
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
        work = self._run(
            lambda conn: archive.import_rows(conn, namespace, batches, policy, actor=actor),
            transaction=True,
        )
        return await explained(namespace, self.list_quotas, work)

    # --- QuotaStore (storage/postgres/quotas.py) ----------------------------------------

    async def set_quota(self, namespace: str, max_bytes: int, *, actor: Actor) -> Quota:
        """Save, recount or remove a quota (quotas.py: the three steps of a new one)."""
        if max_bytes == 0:
            return await self._run(
                lambda conn: quotas.remove(conn, namespace, actor=actor), transaction=True
            )
        created = await self._run(
            lambda conn: quotas.save(conn, namespace, max_bytes, actor=actor), transaction=True
        )
        if created:
            xids = await self._run(quotas.running)

            async def count_running(xids: list[str]) -> int:
                return await self._run(lambda conn: quotas.still_running(conn, xids))

            await quotas.settle(count_running, xids)
        saved = await self._run(lambda conn: quotas.recount(conn, namespace), transaction=True)
        return saved or Quota(namespace, 0, 0)

    async def list_quotas(self, namespace: str | None) -> list[Quota]:
        """The quota rows of one namespace or of all."""
        return await self._run(lambda conn: quotas.list_quotas(conn, namespace))

    async def facts(self) -> ServerFacts:
        """Backend name, newest applied yoyo migration (NO_YOYO_VERSION without yoyo)."""

        async def schema_version(conn: Conn) -> str:
            cursor = await conn.execute(queries.HAS_YOYO_TABLE)
            row = await cursor.fetchone()
            if row is None or not row[0]:
                return NO_YOYO_VERSION
            cursor = await conn.execute(queries.NEWEST_MIGRATION)
            row = await cursor.fetchone()
            return str(row[0]) if row is not None else NO_YOYO_VERSION

        version = await self._run(schema_version)
        return ServerFacts(backend="postgres", schema_version=version, capabilities=CAPABILITIES)

    async def create_index(
        self, namespace: str, collection: str, path: tuple[str, ...], *, actor: Actor
    ) -> AsyncIterator[Progress | RecordIndex]:
        """Declare, then build CONCURRENTLY in a task of its own (which finishes even
        if the caller goes away), yielding its progress and then the index."""
        created = await self._run(
            lambda conn: indexes.declare(conn, namespace, collection, path, actor=actor),
            transaction=True,
        )
        name = index_name(path)
        yield Progress(f"{indexes.PHASE}: starting", 0, 0, "blocks")
        build = self._builds.get(name)
        if build is None:
            build = asyncio.create_task(self._build(path), name=f"build {name}")
            self._builds[name] = build
            build.add_done_callback(lambda task: self._built(name, task))
        while not build.done():
            await asyncio.wait({build}, timeout=INDEX_PROGRESS_SECONDS)
            if not build.done():
                progress = await self._run(lambda conn: indexes.progress(conn, path))
                if progress is not None:
                    yield progress
        await build  # its error, if it failed
        self._indexes.invalidate()
        ready = await self._run(lambda conn: indexes.ready(conn, path))
        yield RecordIndex(collection, path, name, ready, created)

    def _built(self, name: str, task: asyncio.Task[None]) -> None:
        self._builds.pop(name, None)
        if not task.cancelled() and (error := task.exception()) is not None:
            # Logged here as well as raised to the callers still waiting: there may
            # be none left.
            log.warning("index build failed", index=name, error=str(error))

    async def _build(self, path: tuple[str, ...]) -> None:
        try:
            async with self._pool.connection() as conn:
                # A build may take long on a big collection: no statement_timeout for
                # it, and the session's own back before the pool hands it out again.
                await conn.execute("SET statement_timeout = 0")
                try:
                    await indexes.build(conn, path)
                finally:
                    await conn.execute("RESET statement_timeout")
        except psycopg.Error as error:
            raise translate(error) from error

    async def list_indexes(self, namespace: str, collection: str | None) -> list[RecordIndex]:
        """Declared indexes, with whether each is built."""
        return await self._run(lambda conn: indexes.list_declared(conn, namespace, collection))

    async def drop_index(
        self, namespace: str, collection: str, path: tuple[str, ...], *, actor: Actor
    ) -> None:
        """Remove the declaration; drop the index once nothing declares its path."""
        await self._run(
            lambda conn: indexes.undeclare(conn, namespace, collection, path, actor=actor),
            transaction=True,
        )
        await self._run(lambda conn: indexes.drop_unused(conn, path))
        self._indexes.invalidate()

    async def count_expired(self) -> int:
        """Records past their expire_time."""
        return await self._run(retention.count_expired)

    async def count_old_records(self, namespace: str, collection: str, before: datetime) -> int:
        """Records of a collection last written before `before`."""
        return await self._run(
            lambda conn: retention.count_old_records(conn, namespace, collection, before)
        )

    async def purge_old_records(
        self, namespace: str, collection: str, before: datetime, limit: int
    ) -> list[RecordRef]:
        """Delete up to `limit` of them, each with a `retention` audit entry."""
        return await self._run(
            lambda conn: retention.purge_old_records(conn, namespace, collection, before, limit)
        )

    async def set_retention(self, policy: RetentionPolicy, *, actor: Actor) -> RetentionPolicy:
        """Create or replace a policy."""
        return await self._run(lambda conn: retention.set_policy(conn, policy, actor=actor))

    async def list_retention(self, namespace: str | None) -> list[RetentionPolicy]:
        """Policies of a namespace, or of all."""
        return await self._run(lambda conn: retention.list_policies(conn, namespace))

    async def delete_retention(
        self, namespace: str, target: Target, selector: str, *, actor: Actor
    ) -> None:
        """Remove a policy."""
        await self._run(
            lambda conn: retention.delete_policy(conn, namespace, target, selector, actor=actor)
        )

    async def count_old_jobs(
        self,
        namespace: str | None,
        queue: str | None,
        state: str,
        before: datetime,
        exclude: Exclude,
    ) -> int:
        """Finished jobs a purge would take."""
        return await self._run(
            lambda conn: retention.count_old_jobs(conn, namespace, queue, state, before, exclude)
        )

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
        return await self._run(
            lambda conn: retention.purge_old_jobs(
                conn, namespace, queue, state, before, exclude, limit
            )
        )

    async def count_old_transcripts(self, namespace: str, before: datetime) -> int:
        """Transcripts sealed before `before`."""
        return await self._run(
            lambda conn: content_retention.count_old_transcripts(conn, namespace, before)
        )

    async def purge_old_transcripts(self, namespace: str, before: datetime, limit: int) -> int:
        """Delete up to `limit` of them with their entries, in one transaction."""
        return await self._run(
            lambda conn: content_retention.purge_old_transcripts(conn, namespace, before, limit),
            transaction=True,
        )

    async def count_old_artifacts(self, namespace: str, kind: str, before: datetime) -> int:
        """Artifacts of a kind (or of every unnamed kind) created before `before`."""
        return await self._run(
            lambda conn: content_retention.count_old_artifacts(conn, namespace, kind, before)
        )

    async def purge_old_artifacts(
        self, namespace: str, kind: str, before: datetime, limit: int
    ) -> int:
        """Delete up to `limit` of those rows (their blobs go at the orphan sweep)."""
        return await self._run(
            lambda conn: content_retention.purge_old_artifacts(conn, namespace, kind, before, limit)
        )

    async def usage(self, namespace: str | None, owner: str | None = None) -> Usage:
        """Records, jobs, transcripts, artifacts and blobs per namespace."""
        return await self._run(lambda conn: usage.usage(conn, namespace, owner))

    async def queue_depths(self) -> list[QueueDepth]:
        """Unfinished jobs per queue."""
        return await self._run(usage.queue_depths)

    def check_integrity(
        self, namespace: str | None, *, repair: bool
    ) -> AsyncIterator[Progress | Finding | tuple[str, int]]:
        """Jobs, declared indexes, transcripts."""
        return integrity.check(self._run, self._rebuild, namespace, repair=repair)

    async def _rebuild(self, path: tuple[str, ...]) -> None:
        await self._build(path)
        self._indexes.invalidate()

    async def lead(self, name: str) -> bool:
        """A session advisory lock, on a connection of its own kept open while this
        process leads (a pooled one would hand the lock to whoever took it next)."""
        try:
            if self._leader is None or self._leader.closed:
                self._led.clear()
                info = self._pool.conninfo
                assert isinstance(info, str)  # open_pool gives a string
                self._leader = await psycopg.AsyncConnection.connect(info, autocommit=True)
            if name in self._led:
                await self._leader.execute("SELECT 1")  # the session, so the lock, still holds
                return True
            cursor = await self._leader.execute(
                "SELECT pg_try_advisory_lock(hashtext(%s))", ("strata.lead." + name,)
            )
            row = await cursor.fetchone()
            if row is not None and row[0]:
                self._led.add(name)
                return True
            return False
        except psycopg.Error:
            await self._drop_leader()
            return False

    async def _drop_leader(self) -> None:
        self._led.clear()
        if self._leader is not None:
            with contextlib.suppress(psycopg.Error):
                await self._leader.close()
            self._leader = None

    async def ping(self) -> None:
        """Return when the database answers a query; raise Unavailable otherwise."""

        async def select_one(conn: Conn) -> None:
            await conn.execute(queries.PING, prepare=True)

        await self._run(select_one)

    async def shared_secret(self, name: str, candidate: bytes) -> bytes:
        """Kept in server_secrets: inserted unless present, then read back."""

        async def keep_and_read(conn: Conn) -> bytes:
            await conn.execute(queries.KEEP_SECRET, (name, candidate))
            cursor = await conn.execute(queries.READ_SECRET, (name,))
            row = await cursor.fetchone()
            assert row is not None  # inserted above, or by the replica that won
            return bytes(row[0])

        return await self._run(keep_and_read)

    def pool_stats(self) -> Mapping[str, int]:
        """psycopg_pool's own figures: open connections, idle ones, queued callers, and
        the connections handed out since the start (`requests`: one per statement or
        transaction)."""
        stats = self._pool.get_stats()
        return {
            "size": stats.get("pool_size", 0),
            "idle": stats.get("pool_available", 0),
            "waiting": stats.get("requests_waiting", 0),
            "requests": stats.get("requests_num", 0),
        }

    async def close(self) -> None:
        """Close the pool and its connections; the object is unusable afterwards.
        An index build still running is abandoned: the next CreateIndex of its
        field replaces the invalid index it leaves."""
        for build in list(self._builds.values()):
            build.cancel()
        await self._drop_leader()
        await self._pool.close()


if TYPE_CHECKING:

    def _satisfies_port(db: PostgresDatabase) -> Database:
        """mypy proves here that PostgresDatabase implements the Database port."""
        return db
