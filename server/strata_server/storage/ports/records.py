"""The records port: durable JSON documents and the one transactional write path."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from strata_server.core.filters import Filter
from strata_server.core.models import (
    Actor,
    ChangeBatch,
    Idempotency,
    ListQuery,
    Page,
    Record,
    RecordRef,
    SearchHit,
    SearchQuery,
    Write,
    WriteResult,
)
from strata_server.core.values import frozen


@frozen
class CommitRequest:
    """One all-or-nothing commit: a namespace's writes in order, who makes them, and
    the request_id a retry repeats. One value, because the cache wrapper and each
    engine's transaction pass it along whole."""

    namespace: str
    writes: Sequence[Write]
    actor: Actor
    idempotency: Idempotency | None = None
    """With it, a repeat of the same request_id and fingerprint returns the first
    result without writing; the same request_id with another fingerprint is
    InvalidArgument."""
    notices: Sequence[str] = ()
    """Events.commit_notice payloads for the commit to send when it commits, from its
    own transaction (PostgreSQL, where they are the events channel's NOTIFYs); a
    store whose database does not carry the events ignores them (their events
    then give none: services/topics.Announcement)."""


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
        self, namespace: str, collection: str, after: str, filter: Filter | None, limit: int
    ) -> ChangeBatch:
        """Up to `limit` changes to `collection` committed after cursor `after`, in
        commit order, with no gap: a change is returned only once every change
        ordered before it has committed or aborted. Creates and updates of records
        not matching `filter` (or no longer live) are skipped; deletes never are.
        InvalidArgument (field from_cursor) for a cursor this store did not make;
        CursorExpired for one the audit log's retention has purged past (a removed
        entry lies after it), so a resume never skips a change silently."""
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

    async def commit(self, request: CommitRequest) -> list[WriteResult]:
        """Apply `request.writes` in order in one transaction, or none of them.

        Each write's preconditions are checked inside the transaction; the first
        failing write's error is raised tagged with `write_index`. Every write
        appends an audit entry in the same transaction.
        """
        ...

    async def purge_expired(self, limit: int) -> list[RecordRef]:
        """Delete up to `limit` expired records, with one `expire` audit row per
        collection listing them (a purge batch's row, `LoggedAudit.entity_ids`), in one
        transaction; return which."""
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
        """Delete up to `limit` of them, oldest first, with one `retention` audit row
        per batch listing them (as `purge_expired`); the refs deleted (a cache in front
        must forget them)."""
        ...
