"""Domain types shared by the gRPC layer and the storage adapters.

They hold plain Python values (JSON data as dicts, UTC-aware datetimes) so that
neither side needs to know the other's types: the API converts protobuf to these,
adapters convert these to SQL rows.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from strata_server.core.artifact_rules import KindUsage as KindUsage
from strata_server.core.filters import Filter, OrderKey
from strata_server.core.job_transitions import Job, NewJob
from strata_server.core.jsontypes import JSON as JSON
from strata_server.core.parent_refs import ChildRef
from strata_server.core.transcript_rules import Appended, AppendEntries
from strata_server.core.values import frozen

T = TypeVar("T")


@frozen
class Record:
    """A stored JSON document; `version` starts at 1 and grows by 1 per write.

    `owner` is who the record belongs to (as a transcript's or artifact's owner), so
    usage, export and cleanup can be asked for one owner across every kind; empty
    means none.
    """

    namespace: str
    collection: str
    id: str
    data: JSON
    version: int
    create_time: datetime
    update_time: datetime
    expire_time: datetime | None = None
    owner: str = ""


@frozen
class CreateRecord:
    """Create `id` in `collection`; fails with AlreadyExists if a live record has it."""

    collection: str
    id: str
    data: JSON
    expire_time: datetime | None = None
    owner: str = ""


@frozen
class UpdateRecord:
    """Replace a record's data, or merge the `paths` of `data` into it.

    `paths` is None for a full replace (data and expire_time). Otherwise each path is
    a tuple of keys below `data` (the empty tuple means all of data) or the special
    path `EXPIRE_TIME_PATH`. `owner` None keeps the record's owner (a caller that
    never heard of owners cannot drop one); a string sets it, empty clears it.
    """

    collection: str
    id: str
    data: JSON
    paths: tuple[tuple[str, ...], ...] | None = None
    expected_version: int | None = None
    allow_missing: bool = False
    expire_time: datetime | None = None
    owner: str | None = None


EXPIRE_TIME_PATH: tuple[str, ...] = ("\x00expire_time",)
"""Marks `expire_time` in UpdateRecord.paths; no data key can contain a NUL."""


@frozen
class DeleteRecord:
    """Delete a record; `allow_missing` makes deleting a missing record succeed."""

    collection: str
    id: str
    expected_version: int | None = None
    allow_missing: bool = False
    cascade: bool = False
    """Delete the record's children with it (core/parent_refs.py); without it, a
    record with children is refused with HasChildren."""


RecordWrite = CreateRecord | UpdateRecord | DeleteRecord
"""A write of a Commit that changes one record."""

Write = RecordWrite | NewJob | AppendEntries
"""One write of a Commit: a record change, an enqueue or a transcript append."""


@frozen
class Deleted:
    """Result of a DeleteRecord write."""

    collection: str
    id: str
    existed: bool
    children: tuple[ChildRef, ...] = ()
    """The transcripts and artifacts deleted with it (a cascade); not kept in the
    request log, so a retry's result names none."""


WriteResult = Record | Deleted | Job | Appended
"""The outcome of one Write, position for position."""


@frozen
class Idempotency:
    """A caller's request_id plus a fingerprint of the request it came with.

    A retry with the same key and fingerprint gets the stored result; the same key
    with another fingerprint is a caller error.
    """

    request_id: str
    fingerprint: str


@frozen
class Actor:
    """Who made a mutation, as written to the audit log."""

    name: str = "anonymous"


@frozen
class Handoff:
    """A lease an enqueue takes in its own transaction, for a consumer (a
    SubscribeJobs stream, a LeaseJobs long poll) parked on the job's queue on this
    replica (`QueueStore.enqueue_and_lease`): it gets its job without a wakeup and a
    lease round trip of its own."""

    lease: timedelta
    token_prefix: str
    actor: Actor


@frozen
class ListQuery:
    """A validated ListRecords request.

    `order` always ends with the `id` key, so every page boundary is unique.
    `after` holds the sort values of the last row of the previous page (from the
    page token), in `order`'s order, or None for the first page.
    """

    collection: str
    filter: Filter | None
    order: tuple[OrderKey, ...]
    limit: int
    after: tuple[Any, ...] | None = None


@frozen
class SearchQuery:
    """A validated SearchRecords request; `offset` comes from the page token."""

    collection: str
    text: str
    limit: int
    offset: int = 0


@frozen
class SearchHit:
    """A record matching a search, with its relevance (higher is better)."""

    record: Record
    score: float


@frozen
class Page(Generic[T]):
    """One page of results.

    `last_key` holds the sort values of the last item (for ListQuery.after) when
    more items may follow, else None.
    """

    items: Sequence[T]
    last_key: tuple[Any, ...] | None = None


class ChangeKind(enum.Enum):
    """What a change did to a record (WatchRecords)."""

    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


CHANGE_KINDS = {
    "create": ChangeKind.CREATED,
    "update": ChangeKind.UPDATED,
    "delete": ChangeKind.DELETED,
    "expire": ChangeKind.DELETED,
    "retention": ChangeKind.DELETED,
    "owner_cleanup": ChangeKind.DELETED,
}
"""The record audit actions that are changes, and the kind of each."""


@frozen
class RecordChange:
    """One committed change to a record, read back from the audit log.

    `record` is the record as it is when the change is read (at `version` or
    newer), None for a delete and for a record deleted since (`core.change_cursors`).
    `cursor` is the position just past the change."""

    kind: ChangeKind
    collection: str
    record_id: str
    version: int
    time: datetime
    record: Record | None
    cursor: str


@frozen
class ChangeBatch:
    """Changes after a cursor, and the cursor to read on from: past the last
    change, or past audit entries that were read and skipped (another collection's
    or a record not matching the filter)."""

    changes: Sequence[RecordChange]
    cursor: str


@frozen
class Progress:
    """How far a long operation has come, streamed before its result so a client
    can draw a progress bar; `total` is 0 while unknown."""

    phase: str
    done: int
    total: int
    unit: str


@frozen
class CollectionUsage:
    """Live records of one collection and the bytes of their JSON data."""

    collection: str
    records: int
    bytes: int


@frozen
class BlobUsage:
    """The distinct blobs some artifacts name: `referenced` counts a blob once per
    artifact, `unique` once; `stored` is what the distinct ones take."""

    blobs: int = 0
    referenced: int = 0
    unique: int = 0
    stored: int = 0

    @property
    def dedup_saved(self) -> int:
        """Bytes not stored because identical content is stored once."""
        return self.referenced - self.unique


@frozen
class ArchivedUsage:
    """Archived transcripts: how many, their sizes, their segments' stored bytes."""

    transcripts: int = 0
    entry_bytes: int = 0
    stored_bytes: int = 0


@frozen
class NamespaceUsage:
    """What one namespace stores (GetUsage); `jobs` counts by visible state;
    `entries` and `entry_bytes` come from the transcripts' counters."""

    namespace: str
    collections: tuple[CollectionUsage, ...] = ()
    jobs: tuple[tuple[str, int], ...] = ()
    transcripts: int = 0
    entries: int = 0
    entry_bytes: int = 0
    kinds: tuple[KindUsage, ...] = ()
    blobs: BlobUsage = BlobUsage()
    archived: ArchivedUsage = ArchivedUsage()

    @property
    def records(self) -> int:
        """Live records over every collection."""
        return sum(c.records for c in self.collections)

    @property
    def record_bytes(self) -> int:
        """Their JSON bytes."""
        return sum(c.bytes for c in self.collections)


@frozen
class Usage:
    """GetUsage's figures: per namespace, and the distinct blobs over all of them
    (a blob named from several namespaces is stored once)."""

    namespaces: tuple[NamespaceUsage, ...]
    blobs: BlobUsage


@frozen
class QueueDepth:
    """The unfinished jobs of one queue, for the queue metrics."""

    namespace: str
    queue: str
    available: int
    scheduled: int
    leased: int
    oldest_available_seconds: float
    """How long the oldest available job has waited (0: none waits)."""


@frozen
class AuditQuery:
    """ListAuditEntries: which entries (None: any), newest first, before `before_seq`."""

    entity: str | None = None
    entity_id: str | None = None
    actor: str | None = None
    action: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    limit: int = 50
    before_seq: int | None = None


@frozen
class LoggedAudit:
    """An audit entry as stored."""

    seq: int
    time: datetime
    actor: str
    action: str
    entity: str
    entity_id: str
    version: int
    changed_fields: tuple[str, ...]
    request_id: str | None
    entity_ids: tuple[str, ...] = ()
    """A purge batch's row (migration 0024) stands for the removal of every record
    listed here (its `entity_id` is then the collection's prefix, `<collection>/`);
    empty on every other entry."""
    entity_versions: tuple[int, ...] = ()
    """The last version of each of `entity_ids`' records, in the same order."""


@frozen
class ServerFacts:
    """What the storage layer says about itself for GetServerInfo."""

    backend: str
    schema_version: str
    capabilities: tuple[str, ...] = ()


@frozen
class CacheStats:
    """The record cache's counters in one process, for GetServerInfo and metrics."""

    enabled: bool = False
    available: bool = True
    hits: int = 0
    misses: int = 0
    bypassed: int = 0
    outages: int = 0
    pending_invalidations: int = 0


@frozen
class RecordRef:
    """Which record: what a purge reports for each row it removed."""

    namespace: str
    collection: str
    id: str
