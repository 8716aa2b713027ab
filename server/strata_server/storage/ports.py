"""The storage ports: what the services need from a backend, as typing.Protocols.

The gRPC layer depends only on these; `strata_server.app` picks the adapter.
Every method raises only `strata_server.core.errors` types: adapters translate
driver exceptions at their boundary (an unreachable database is `Unavailable`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, Self

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
from strata_server.core.transcripts import (
    Appended,
    AppendEntries,
    Entry,
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
    ) -> Appended:
        """Append in one transaction, all or none: core.transcripts.check_append
        decides (sealed, expected_next_seq), entries get the next seqs in order. A
        repeat of the same request_id returns the first result and appends nothing."""
        ...

    async def read_entries(
        self, namespace: str, id: str, from_seq: int, max_bytes: int
    ) -> list[Entry]:
        """Committed entries from `from_seq` on, consecutive, as many as fit in
        `max_bytes` (at least one when entry `from_seq` exists; core.transcripts.
        fit_batch). [] when there is no entry `from_seq` (yet); existence of the
        transcript is not checked. One keyset query: memory is bounded by
        `max_bytes` plus one entry, whatever the transcript's length."""
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


class Database(RecordStore, QueueStore, TranscriptStore, AuditLog, Protocol):
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
