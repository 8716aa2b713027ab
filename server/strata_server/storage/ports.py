"""The storage ports: what the services need from a backend, as typing.Protocols.

The gRPC layer depends only on these; `strata_server.app` picks the adapter.
Every method raises only `strata_server.core.errors` types: adapters translate
driver exceptions at their boundary (an unreachable database is `Unavailable`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, Self

from strata_server.core.access import Principal
from strata_server.core.archive import ConflictPolicy, ImportCounts
from strata_server.core.archive_rows import RowBatch
from strata_server.core.artifacts import (
    Artifact,
    BlobRef,
    StagedBlob,
    StoredBlob,
)
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
from strata_server.core.quotas import Quota
from strata_server.core.retention import Exclude, RetentionPolicy, Target
from strata_server.core.tokens import NewToken, Token
from strata_server.core.transcripts import (
    Appended,
    AppendEntries,
    EntryBatch,
    NewTranscript,
    Transcript,
    TranscriptHit,
    TranscriptSearch,
)


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

    async def changes_pending(self, namespace: str, collection: str) -> bool:
        """Whether changes to `collection` have committed that record_changes does
        not return yet (one ordered before them has not ended): what keeps a watched
        collection's re-check going until they can be read."""
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

    async def purge_expired(self, limit: int) -> list[RecordRef]:
        """Delete up to `limit` expired records (with audit entries); return which."""
        ...


class RecordCleanup(Protocol):
    """What a cleanup run removes of records, beyond the expiry purge."""

    async def count_expired(self) -> int:
        """Records whose expire_time has passed, in every namespace."""
        ...

    async def count_old_records(self, namespace: str, collection: str, before: datetime) -> int:
        """Records of a collection last written before `before`."""
        ...

    async def purge_old_records(
        self, namespace: str, collection: str, before: datetime, limit: int
    ) -> list[RecordRef]:
        """Delete up to `limit` of them, oldest first, each with a `retention` audit
        entry; the refs deleted (a cache in front must forget them)."""
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
        notices: Sequence[str] = (),
    ) -> list[Job]:
        """Insert `jobs` in one transaction, or none. A job whose unique_key matches an
        unfinished job of its queue yields that job instead (enforced by a partial
        unique index, never by read-then-write). Errors carry `job_index`. `notices`
        (Events.commit_notice): sent when a job is inserted and commits, by a store
        that can; ignored by one that can't."""
        ...

    async def enqueue_and_lease(
        self,
        namespace: str,
        job: NewJob,
        handoff: Handoff,
        *,
        actor: Actor,
        notices: Sequence[str] = (),
    ) -> tuple[Job, list[Job]]:
        """`enqueue` of one job without a request_id that, in the same transaction,
        leases the new job for `handoff` when it is first in line (nothing ranks
        ahead of it and the queue is not paused). A store may instead lease the
        head of the queue, which is an older job when the new one is not first.
        Returns the job as enqueued (leased if it was) and the jobs leased. The
        commit notices go out only if the new job is left ready."""
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

    async def ack_jobs(
        self, namespace: str, acks: Sequence[Ack], *, actor: Actor
    ) -> list[Job | StrataError]:
        """`ack_job` for each of `acks` (distinct ids), each on its own, in one
        transaction: per ack the job completed, or the error ack_job would raise."""
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

    async def availability(self, namespace: str, queue: str) -> Availability:
        """Whether the queue holds a job a lease could take now (ready and due, or
        leased with its lease expired), paused or not, and whether it holds any ready
        or leased job: indexed probes, the shared re-check that wakes a queue's
        consumers when time, not a write, made a job available (a scheduled job
        coming due, a lease expiring), and that rests while nothing can come due."""
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


class TranscriptStore(Protocol):
    """Append-only transcripts. Entries are numbered 1, 2, 3, ... with no gap, in
    commit order; appends to one transcript are serialized (never all appends), and
    every mutation appends its audit entry (entity "transcript") in the same
    transaction. Unknown ids are NotFound."""

    async def create_transcript(
        self,
        namespace: str,
        new: NewTranscript,
        *,
        actor: Actor,
        idempotency: Idempotency | None = None,
    ) -> Transcript:
        """Create an empty transcript; AlreadyExists when the id is taken. A repeat
        of the same request_id returns the first result."""
        ...

    async def get_transcript(self, namespace: str, id: str) -> Transcript:
        """One transcript's description."""
        ...

    async def transcript_states(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, bool]]:
        """The next seq and whether it is sealed of each transcript named by a
        (namespace, id) key, in one query however many: the followed transcripts'
        shared re-check. A transcript that does not exist is left out."""
        ...

    async def list_transcripts(
        self, namespace: str, owner: str | None, limit: int, after: tuple[Any, ...] | None
    ) -> Page[Transcript]:
        """Transcripts newest first ((create_time, id) descending), optionally of one
        owner, after the key `after`; `last_key` is (create_time, id)."""
        ...

    async def append_entries(
        self,
        namespace: str,
        append: AppendEntries,
        *,
        actor: Actor,
        idempotency: Idempotency | None = None,
        notice: str | None = None,
    ) -> Appended:
        """Append in one transaction, all or none: core.transcripts.check_append
        decides (sealed, expected_next_seq), entries get the next seqs in order. A
        repeat of the same request_id returns the first result and appends nothing.
        `notice` (Events.commit_notice): sent with the append's commit by a store
        that can, ignored by one that can't."""
        ...

    async def read_batch(
        self, namespace: str, id: str, from_seq: int, max_bytes: int
    ) -> EntryBatch | None:
        """Committed entries from `from_seq` on, consecutive, as many as fit in
        `max_bytes` (at least one when entry `from_seq` exists; core.transcripts.
        fit_batch), in their wire form. None when there is no entry `from_seq` (yet);
        existence of the transcript is not checked. One keyset query: memory is bounded
        by `max_bytes` plus one entry, whatever the transcript's length."""
        ...

    async def seal_transcript(self, namespace: str, id: str, *, actor: Actor) -> Transcript:
        """Seal (audit action `seal`); a sealed transcript is returned unchanged."""
        ...

    async def delete_transcript(self, namespace: str, id: str, *, actor: Actor) -> None:
        """Delete the transcript and its entries, with one audit entry."""
        ...

    async def search_transcripts(
        self, namespace: str, query: TranscriptSearch
    ) -> Page[TranscriptHit]:
        """Entries whose content holds every word of the query, best first, paged by
        offset; `last_key` is non-None when a further page may exist."""
        ...


@dataclass(frozen=True, slots=True)
class Lookup:
    """What `Cache.lookup` found under one key: the cached `value` (a hit), or a miss
    with the `lease` this caller placed (it may fill the key), or a miss without one
    (another reader holds the lease; read on, but do not fill)."""

    value: bytes | None = None
    lease: str | None = None


@dataclass(frozen=True, slots=True)
class Fill:
    """One conditional write for `Cache.fill`: `value` for `ttl` seconds under `key`,
    only if the key still holds `lease`; `value` None releases the lease instead."""

    key: str
    lease: str
    value: bytes | None
    ttl: float


class Cache(Protocol):
    """Bytes under string keys, one key space per namespace, each entry with a TTL.

    A cache may drop any entry at any time (eviction under its memory bound), so
    callers treat a miss as normal. `lookup` and `fill` are the race-free
    read-through pair: a miss places a lease on the key, every `delete` (and any
    eviction) removes it, and `fill` writes only over the caller's own lease. So a
    value read from the database before a write can never be cached after that
    write's invalidation. Adapters raise only `Unavailable` for backend failures.
    """

    async def get(self, namespace: str, key: str) -> bytes | None:
        """The value under `key`, or None."""
        ...

    async def set(self, namespace: str, key: str, value: bytes, ttl: float) -> None:
        """Store `value` under `key` for `ttl` seconds, replacing whatever is there."""
        ...

    async def delete(self, namespace: str, keys: Sequence[str]) -> int:
        """Remove `keys` (values and leases alike); how many held either."""
        ...

    async def lookup(
        self, namespace: str, keys: Sequence[str], lease_seconds: float
    ) -> list[Lookup]:
        """Each key's value, or for a key holding nothing a lease of `lease_seconds`
        placed for this caller (all with one fresh token), position for position."""
        ...

    async def fill(self, namespace: str, fills: Sequence[Fill]) -> None:
        """Apply each fill whose key still holds its lease; skip the others."""
        ...

    async def clear(self, namespace: str, prefix: str) -> None:
        """Remove every key of `namespace` that starts with `prefix`."""
        ...

    async def ping(self) -> None:
        """Return when the backend answers; raise Unavailable when it does not."""
        ...

    async def close(self) -> None:
        """Release connections; the object is unusable afterwards."""
        ...


@dataclass(frozen=True, slots=True)
class Recheck:
    """How to re-check one topic in the database: `probe` returns a value that
    changes when the topic's listeners should look again (a transcript's next seq,
    a namespace's change cursor); `every`, when set, is the interval for probes
    whose answer time alone may change (a job coming due), whatever the events
    channel's state: a probe answering `core.idle.Probed` says whether it may now
    (else the topic rests until a notify on it), any other answer is taken to.
    Listeners of one topic must bring equivalent probes: the first one's is used."""

    topic: str
    probe: Callable[[], Awaitable[object]]
    every: float | None = None


class Listener(Protocol):
    """Wakeups on a fixed set of topics, from `Events.listen` until `close`."""

    async def wait(self, within: float | None) -> set[str]:
        """Wait up to `within` seconds (None: until woken); the topics notified
        since the last wait."""
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
    notification only delays work until its topic's shared re-check (`Recheck`).
    """

    def notify(self, topic: str, *, announced: bool = False) -> None:
        """Wake waiters on `topic` (here, and on other replicas where supported).
        `announced`: the write's own commit already told the other replicas (it
        carried `commit_notice(topic)`), so only this replica's waiters are woken."""
        ...

    def commit_notice(self, topic: str) -> str | None:
        """What a write to the database may send on `topic`'s behalf when it commits
        (a PostgreSQL NOTIFY payload on the events channel, from the write's own
        statement), or None when wakeups between replicas do not travel through
        the database. Saves the round trip of sending it after the commit."""
        ...

    def listen(self, *topics: str, recheck: Recheck | None = None) -> Listener:
        """Start listening on `topics` now; `Listener.wait` then returns the topics
        notified since. Listen before checking the database, then wait: a notify
        in between is not lost. `recheck` covers the wakeups that may never come
        (see storage/events/local.py): one probe per topic, shared by its listeners,
        so a listener needs no timeout of its own to poll the database."""
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


class RetentionStore(Protocol):
    """Retention policies, and the finished jobs they remove."""

    async def set_retention(self, policy: RetentionPolicy, *, actor: Actor) -> RetentionPolicy:
        """Create or replace the policy of (namespace, target, selector)."""
        ...

    async def list_retention(self, namespace: str | None) -> list[RetentionPolicy]:
        """Policies of a namespace (None: of every namespace)."""
        ...

    async def delete_retention(
        self, namespace: str, target: Target, selector: str, *, actor: Actor
    ) -> None:
        """Remove a policy; NotFound if there is none."""
        ...

    async def count_old_jobs(
        self,
        namespace: str | None,
        queue: str | None,
        state: str,
        before: datetime,
        exclude: Exclude,
    ) -> int:
        """Jobs in `state` ("completed" or "dead") finished before `before`, of a
        namespace (None: any) and queue (None: any), less those `exclude` leaves
        to other policies."""
        ...

    async def purge_old_jobs(
        self,
        namespace: str | None,
        queue: str | None,
        state: str,
        before: datetime,
        exclude: Exclude,
        limit: int,
    ) -> int:
        """Delete up to `limit` of those jobs, oldest first; how many went."""
        ...

    async def count_old_transcripts(self, namespace: str, before: datetime) -> int:
        """Transcripts of a namespace sealed before `before` (open ones never)."""
        ...

    async def purge_old_transcripts(self, namespace: str, before: datetime, limit: int) -> int:
        """Delete up to `limit` of them with their entries, oldest seal first, each
        with a `retention` audit entry; how many went."""
        ...

    async def count_old_artifacts(self, namespace: str, kind: str, before: datetime) -> int:
        """Artifacts of a namespace created before `before`, of `kind`, or ("") of
        every kind no artifacts policy of the namespace names."""
        ...

    async def purge_old_artifacts(
        self, namespace: str, kind: str, before: datetime, limit: int
    ) -> int:
        """Delete up to `limit` of those rows, oldest first, each with a `retention`
        audit entry (their blobs are left to the orphan sweep); how many went."""
        ...

    async def lead(self, name: str) -> bool:
        """Whether this process holds the lock `name` among every process on this
        database, taking it when it is free; once taken it stays held until this
        process closes or loses its database session (PostgreSQL: a session
        advisory lock; SQLite: a file lock beside the database)."""
        ...


class UsageReport(Protocol):
    """What namespaces store, for GetUsage."""

    async def usage(self, namespace: str | None, owner: str | None = None) -> Usage:
        """Per namespace (None: every namespace that stores anything), by name, by
        aggregate queries and the transcripts' counters (no scan of entries). With
        `owner`, only that owner's transcripts and artifacts (records and jobs have
        no owner)."""
        ...

    async def queue_depths(self) -> list[QueueDepth]:
        """Every queue with unfinished jobs, in every namespace."""
        ...


class IntegrityStore(Protocol):
    """CheckIntegrity's database checks."""

    def check_integrity(
        self, namespace: str | None, *, repair: bool
    ) -> AsyncIterator[Progress | Finding | tuple[str, int]]:
        """Progress messages, findings (repaired when `repair` and safe), and for
        each check ("check name", how many things it looked at)."""
        ...


class IndexAdmin(Protocol):
    """Secondary indexes declared on a data field of one collection."""

    def create_index(
        self, namespace: str, collection: str, path: tuple[str, ...], *, actor: Actor
    ) -> AsyncIterator[Progress | RecordIndex]:
        """Declare an index on data `path` and build it unless built: progress
        messages, then the index (not `ready` if a concurrent build by another
        process has not finished). Declaring a declared index returns it."""
        ...

    async def list_indexes(self, namespace: str, collection: str | None) -> list[RecordIndex]:
        """The declarations of a namespace (or one collection), by collection and path."""
        ...

    async def drop_index(
        self, namespace: str, collection: str, path: tuple[str, ...], *, actor: Actor
    ) -> None:
        """Remove a declaration (NotFound if none); the database index goes once no
        declaration needs it."""
        ...


class NamespaceArchive(Protocol):
    """The rows of ExportNamespace and ImportNamespace (core/archive.py: the format)."""

    def export_rows(
        self, namespace: str, owner: str | None
    ) -> AsyncIterator[dict[str, int] | RowBatch]:
        """From one consistent snapshot: first the counts (each Kind, plus "blobs" and
        "blob_bytes" of the distinct blobs the artifacts name), then the rows in
        batches, kind by kind in KINDS order, each kind in key order. Records past
        their expire_time are left out; with `owner`, only that owner's transcripts
        (and entries) and artifacts, and the audit entries about them."""
        ...

    async def import_rows(
        self,
        namespace: str,
        batches: AsyncIterator[RowBatch],
        policy: ConflictPolicy,
        *,
        actor: Actor,
    ) -> ImportCounts:
        """Write every batch into `namespace` in one transaction, or nothing. A row
        whose key is stored is skipped, overwritten (a transcript's entries replaced
        by the archive's) or refused (AlreadyExists) by `policy`; an audit entry
        the log already holds is skipped. Ends with an `import` audit entry."""
        ...


class TokenStore(Protocol):
    """Bearer tokens, found by the hash of their secret (core/tokens.py).

    One table for the whole server, not per namespace. Tokens are never deleted:
    a revoked one keeps its row (and its name), so its revocation is remembered
    and `fingerprint` only ever grows. Each create and revoke writes its audit
    entry (entity "token", in the reserved namespace "*") in the same transaction.
    """

    async def create_token(self, token: NewToken, secret_hash: str, *, actor: Actor) -> Token:
        """Store a new token (expiring `token.ttl` after now, by the database's
        clock); AlreadyExists when a token, revoked or not, has the name."""
        ...

    async def list_tokens(self, after: str | None, limit: int, *, inactive: bool) -> Page[Token]:
        """Up to `limit` tokens by name after `after`: the active ones, or with
        `inactive` the revoked and expired ones too. `last_key` is `(name,)` when a
        further page may exist."""
        ...

    async def revoke_token(self, name: str, *, actor: Actor) -> Token:
        """Mark the token revoked now; NotFound when no token has the name. A
        revoked token is returned unchanged (and nothing is written)."""
        ...

    async def find_token(self, secret_hash: str) -> Token | None:
        """The token whose secret has this hash (revoked or expired ones too), or None."""
        ...

    async def fingerprint(self) -> tuple[int, int]:
        """Something that changes whenever a token is created or revoked (how many
        tokens there are, and how many are revoked): a cheap probe for revocations a
        server was not told about."""
        ...


class QuotaStore(Protocol):
    """Per-namespace storage quotas (core/quotas.py says what counts). The figure
    is kept in each write's own transaction, and a write that would take a
    namespace past its quota raises QuotaExceeded having written nothing."""

    async def set_quota(self, namespace: str, max_bytes: int, *, actor: Actor) -> Quota:
        """Create or change the quota (0: remove it), recounting what the namespace
        stores, with an audit entry; the quota as saved (for a removal, max_bytes 0
        and what the namespace stores)."""
        ...

    async def list_quotas(self, namespace: str | None) -> list[Quota]:
        """The quotas of one namespace (None: of all), by namespace."""
        ...


class RateLimiter(Protocol):
    """Request rates per principal: a token bucket (core/rates.py), kept in process
    or shared by every replica (Redis)."""

    async def acquire(self, principal: Principal) -> float | None:
        """Take one request from the principal's bucket: None when allowed (also for
        a principal without a limit), else the seconds to wait before retrying."""
        ...


class Database(
    NamespaceArchive,
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
