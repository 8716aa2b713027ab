"""The storage ports: what the services need from a backend, as typing.Protocols.

The gRPC layer depends only on these; `strata_server.app` picks the adapter.
Every method raises only `strata_server.core.errors` types: adapters translate
driver exceptions at their boundary (an unreachable database is `Unavailable`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, Self

from strata_server.core.artifacts import (
    Artifact,
    BlobRef,
    StagedBlob,
    StoredBlob,
)
from strata_server.core.filters import Filter
from strata_server.core.jsontypes import JSON
from strata_server.core.models import (
    Actor,
    AuditQuery,
    ChangeBatch,
    Idempotency,
    ListQuery,
    LoggedAudit,
    Page,
    Record,
    SearchHit,
    SearchQuery,
    ServerFacts,
    Write,
    WriteResult,
)
from strata_server.core.queue import Job, NewJob, QueueStats, Visible


class RecordStore(Protocol):
    """Durable records plus the one transactional write path every mutation takes.

    Expired records (expire_time <= now) are invisible to every read at once and
    removed later by `purge_expired`.
    """

    async def get_record(self, namespace: str, collection: str, id: str) -> Record:
        """The live record, or NotFound."""
        ...

    async def batch_get_records(
        self, namespace: str, collection: str, ids: Sequence[str]
    ) -> list[Record]:
        """The live records among `ids`, in any order; missing ids are simply absent."""
        ...

    async def list_records(self, namespace: str, query: ListQuery) -> Page[Record]:
        """One page in `query.order`, starting after `query.after`.

        Returns `last_key` (the sort values of the last row, one per order key) when
        a further page may exist.
        """
        ...

    async def count_records(self, namespace: str, collection: str, filter: Filter | None) -> int:
        """How many live records match."""
        ...

    async def changes_head(self, namespace: str) -> str:
        """The cursor of "now": record_changes after it returns only changes that
        commit from here on (and possibly a few just before)."""
        ...

    async def record_changes(
        self,
        namespace: str,
        collection: str,
        after: str,
        filter: Filter | None,
        limit: int,
    ) -> ChangeBatch:
        """Up to `limit` changes to `collection` committed after cursor `after`, in
        commit order, with no gap: a change is returned only once every change
        ordered before it has committed or aborted. Creates and updates of records
        not matching `filter` (or no longer live) are skipped; deletes never are.
        InvalidArgument (field from_cursor) for a cursor this store did not make."""
        ...

    async def search_records(self, namespace: str, query: SearchQuery) -> Page[SearchHit]:
        """Full-text matches over the string values of data, best first.

        `last_key` is non-None (any value) when a further page may exist.
        """
        ...

    async def commit(
        self,
        namespace: str,
        writes: Sequence[Write],
        *,
        actor: Actor,
        idempotency: Idempotency | None = None,
    ) -> list[WriteResult]:
        """Apply `writes` in order in one transaction, or none of them.

        Each write's preconditions are checked inside the transaction; the first
        failing write's error is raised tagged with `write_index`. Every write
        appends an audit entry in the same transaction. With `idempotency`, a
        repeat of the same request_id and fingerprint returns the first result
        without writing; the same request_id with another fingerprint is
        InvalidArgument.
        """
        ...

    async def purge_expired(self, limit: int) -> int:
        """Delete up to `limit` expired records (with audit entries); return how many."""
        ...


class QueueStore(Protocol):
    """Durable jobs. Every transition goes through the rules in `core.queue`
    (plan_lease, plan_ack, ...); every mutation appends audit entries in the same
    transaction. Unknown job ids are NotFound."""

    async def enqueue(
        self,
        namespace: str,
        jobs: Sequence[NewJob],
        *,
        actor: Actor,
        idempotency: Idempotency | None = None,
    ) -> list[Job]:
        """Insert `jobs` in one transaction, or none. A job whose unique_key matches an
        unfinished job of its queue yields that job instead (enforced by a partial
        unique index, never by read-then-write). Errors carry `job_index`."""
        ...

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
        """Lease up to `max_jobs` leasable jobs (priority desc, run_time, create_time,
        id), reclaiming expired leases; concurrent callers never get the same job.
        Returns [] for a paused queue. Jobs carry their lease_token, made by
        core.queue.new_lease_token(token_prefix)."""
        ...

    async def ack_job(
        self, namespace: str, id: str, token: str, result: JSON | None, *, actor: Actor
    ) -> Job:
        """Complete the holder's attempt (core.queue.plan_ack)."""
        ...

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
        """Record a failed attempt (core.queue.plan_fail)."""
        ...

    async def release_job(self, namespace: str, id: str, token: str, *, actor: Actor) -> Job:
        """Give a leased job back unworked (core.queue.plan_release); audit action
        `release`."""
        ...

    async def extend_lease(
        self, namespace: str, id: str, token: str, lease: timedelta, *, actor: Actor
    ) -> Job:
        """Heartbeat (core.queue.plan_extend); the result carries the lease_token."""
        ...

    async def cancel_job(self, namespace: str, id: str, *, actor: Actor) -> Job:
        """core.queue.plan_cancel."""
        ...

    async def retry_job(self, namespace: str, id: str, *, actor: Actor) -> Job:
        """core.queue.plan_retry."""
        ...

    async def get_job(self, namespace: str, id: str) -> Job:
        """One job, without its lease_token."""
        ...

    async def held_leases(self, namespace: str, leases: Mapping[str, str]) -> set[str]:
        """Of `leases` (job id -> lease token), the ids whose job is still leased
        under that token and unexpired: what a SubscribeJobs stream still holds."""
        ...

    async def list_jobs(
        self,
        namespace: str,
        queue: str,
        state: Visible | None,
        limit: int,
        after: tuple[Any, ...] | None,
    ) -> Page[Job]:
        """Jobs of a queue in (create_time, id) order after the key `after`, optionally
        only those whose visible state is `state` at the time of the call."""
        ...

    async def set_paused(self, namespace: str, queue: str, paused: bool, *, actor: Actor) -> None:
        """Pause or resume leasing from a queue (an upsert of its settings row)."""
        ...

    async def queue_stats(self, namespace: str, queue: str) -> QueueStats:
        """Counts by visible state, oldest available job's age, and lease expiries
        reclaimed within core.queue.EXPIRY_WINDOW."""
        ...

    async def purge_completed(self, finished_before: datetime, limit: int) -> int:
        """Delete up to `limit` completed jobs finished before the time; how many."""
        ...


class Listener(Protocol):
    """Wakeups on a fixed set of topics, from `Events.listen` until `close`."""

    async def wait(self, within: float) -> set[str]:
        """Wait up to `within` seconds; the topics notified since the last wait."""
        ...

    def close(self) -> None:
        """Stop listening."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


class ArtifactStore(Protocol):
    """Artifact rows, and the pins that order uploads against the blob sweep.

    Uploads and the sweep serialize per blob (SQLite: the one writer; PostgreSQL: a
    transaction-scoped advisory lock on the SHA-256), so the sweep never deletes a
    blob between an upload deciding it is stored and the upload's row naming it.
    Every artifact mutation appends its audit entry in the same transaction.
    """

    async def pin_blob(
        self, namespace: str, upload_id: str, sha256: str, expire_time: datetime
    ) -> None:
        """Keep the sweep off `sha256` until the upload's row exists or the pin expires.
        Waits for a sweep deleting that blob to finish first, so afterwards the blob
        store's answer to "is it stored?" stays true."""
        ...

    async def create_artifact(
        self,
        artifact: Artifact,
        *,
        actor: Actor,
        idempotency: Idempotency | None,
        upload_id: str | None,
    ) -> Artifact:
        """Insert the row (and its audit entry) and drop the upload's pin, in one
        transaction. Without `upload_id` (an upload that sent no bytes), the blob must
        already be named by an artifact of the namespace, else FailedPrecondition
        BLOB_NOT_FOUND. A repeated request_id returns the first result instead."""
        ...

    async def unpin_blob(self, namespace: str, upload_id: str) -> None:
        """Drop an upload's pin (the upload failed after pinning)."""
        ...

    async def get_artifact(self, namespace: str, id: str) -> Artifact:
        """One artifact, or NotFound."""
        ...

    async def list_artifacts(
        self, namespace: str, owner: str | None, kind: str | None, limit: int, after: str | None
    ) -> Page[Artifact]:
        """Artifacts in id (= creation) order after the id `after`; `last_key` is
        (id,) when more may follow."""
        ...

    async def delete_artifact(self, namespace: str, id: str, *, actor: Actor) -> Artifact:
        """Delete the row (the blob stays for the sweep); NotFound when absent."""
        ...

    async def namespace_blobs(self, namespace: str, sha256s: Sequence[str]) -> dict[str, BlobRef]:
        """Of `sha256s`, those an artifact of the namespace names, with how it is stored."""
        ...

    async def unreferenced_blobs(self, sha256s: Sequence[str], now: datetime) -> set[str]:
        """Of `sha256s`, those no artifact (any namespace) names and no live pin holds."""
        ...

    async def delete_blob_if_unreferenced(
        self, sha256: str, now: datetime, delete: Callable[[], Awaitable[None]]
    ) -> bool:
        """Under the blob's lock: if still unreferenced and unpinned, run `delete`
        (which removes the bytes) and return True; else False."""
        ...

    async def purge_pins(self, now: datetime) -> int:
        """Delete expired pins (left by crashed uploads); how many."""
        ...

    def all_artifacts(self) -> AsyncIterator[Artifact]:
        """Every artifact of every namespace, in pages (for the integrity check)."""
        ...


class BlobStaging(Protocol):
    """One upload's bytes on their way into a blob store.

    `write` each chunk, then `finish` (hash and sizes known, nothing visible yet),
    then `publish` to make the blob visible under its SHA-256 atomically. `discard`
    is always called last, whatever happened: it removes every staged byte that was
    not published (a cancelled or failed upload leaves nothing behind).
    """

    async def write(self, chunk: bytes) -> None:
        """Stage the next content bytes (hashed, maybe compressed)."""
        ...

    async def finish(self) -> StagedBlob:
        """All content received: the SHA-256, sizes and encoding; publishes nothing."""
        ...

    async def publish(self) -> StoredBlob:
        """Make the blob visible, unless it already is (then no new bytes are stored);
        returns the stored blob either way."""
        ...

    async def discard(self) -> None:
        """Remove whatever was staged and not published; idempotent."""
        ...


class BlobStore(Protocol):
    """Content-addressed bytes: local disk or S3. Blobs are named by the SHA-256 of
    their uncompressed content; both layouts are `blobs/sha256/ab/cd/<sha256>` (plus
    `.zst` when stored compressed). Driver errors become Unavailable; a blob that
    should be there and is not is BlobMissing."""

    kind: str
    """"disk" or "s3", as GetServerInfo reports it."""

    def stage(self, content_type: str, sha256: str | None, *, sink: bool) -> BlobStaging:
        """Start staging an upload. `sha256` is the caller's expected hash, if any;
        `sink` means the blob is known to be stored already: hash and discard the
        bytes instead of keeping them."""
        ...

    async def stat(self, sha256: str) -> StoredBlob | None:
        """The stored blob with that SHA-256, or None."""
        ...

    async def open(self, blob: BlobRef, start: int, end: int) -> AsyncIterator[bytes]:
        """Content bytes [start, end) of a blob, as an iterator of pieces. The blob is
        opened before this returns (BlobMissing when it is gone)."""
        ...

    async def delete(self, blob: StoredBlob) -> None:
        """Remove a blob (nothing if already gone)."""
        ...

    def list_blobs(self) -> AsyncIterator[StoredBlob]:
        """Every stored blob, in no particular order."""
        ...

    async def verify(self, blob: StoredBlob) -> bool:
        """Whether the blob's content still hashes to its name."""
        ...

    async def presign(
        self, blob: BlobRef, expiry: timedelta, content_type: str, filename: str
    ) -> str:
        """A presigned GET URL for the stored bytes; FailedPrecondition where the
        store has no URLs (local disk)."""
        ...

    async def remove_stale_staging(self, older_than: datetime) -> int:
        """Remove staging leftovers of crashed uploads last touched before the time."""
        ...

    async def close(self) -> None:
        """Release threads and connections."""
        ...


class Events(Protocol):
    """Wakeups between replicas: "something changed on this topic, look again".

    Never a data channel: consumers re-read the database after a wakeup, so a lost
    notification only delays work until the consumer's fallback poll.
    """

    def notify(self, topic: str) -> None:
        """Wake waiters on `topic` (here, and on other replicas where supported)."""
        ...

    def listen(self, *topics: str) -> Listener:
        """Start listening on `topics` now; `Listener.wait` then returns the topics
        notified since. Listen before checking the database, then wait: a notify
        in between is not lost."""
        ...

    async def wait(self, topic: str, within: float) -> bool:
        """Wait up to `within` seconds for a notify on `topic`; True if one came."""
        ...

    async def close(self) -> None:
        """Release listeners and connections."""
        ...


class AuditLog(Protocol):
    """Reads of the audit log every mutation appends to."""

    async def list_audit(self, namespace: str, query: AuditQuery) -> Page[LoggedAudit]:
        """Entries matching `query`, newest (largest seq) first; `last_key` is
        (seq,) of the last entry when more may follow."""
        ...


class Database(RecordStore, QueueStore, AuditLog, ArtifactStore, Protocol):
    """A storage backend's lifecycle, on top of the data ports it serves."""

    def pool_stats(self) -> Mapping[str, int]:
        """Connection pool figures for metrics, read without I/O: `size` (open),
        `idle` and `waiting` (callers queued for a connection)."""
        ...

    async def facts(self) -> ServerFacts:
        """Backend name, applied schema version and capabilities."""
        ...

    async def ping(self) -> None:
        """Return when the database answers; raise Unavailable when it does not."""
        ...

    async def close(self) -> None:
        """Release connections and threads; the object is unusable afterwards."""
        ...
