"""Which audit entries of a collection's records become WatchRecords changes, and
with which record.

The feed promises every change after a cursor, in commit order, with no gap. An
entry carries no copy of the record, so a change is sent with the record as it is
when the change is read; a record deleted since (or removed when it expired) has no
such state, and its create or update is sent without a record, its delete following
later in the feed. A record deleted and created again under the same id is a new
record: the changes of the old one carry no record either, rather than the new
one's. A filter applies to the record as read: with one, creates and updates are
sent only for records that exist and match; deletes are always sent.

Retention purges the audit log's oldest entries, and with them the changes a cursor
before them would resume from. Each purge batch raises its namespace's horizon in
`audit_horizons` (migration 0017) in the same transaction, and a read checks the
horizon after its scan: a purge that took entries the scan should have seen had
committed before it, so the check sees its horizon, and the cursor is refused
(CursorExpired) rather than resumed past the gap. Both engines' adapters
(storage/*/changes.py) keep this rule.

Expiry and record retention write one audit row per purge batch and collection, which
lists the records it removed (migration 0024). The feed expands it into one delete
per listed record, in the list's order. A cursor must then be able to stand between
two of them, or a client that resumes after part of a batch would lose or repeat the
rest: each delete but a row's last carries the row's cursor with the count of listed
records sent so far (`<row cursor>.<n>`), and the last the row's own cursor. A
mid-row cursor reads from the row itself and skips its first n records
(`within_row`, `expand`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime

from strata_server.core.models import CHANGE_KINDS, ChangeKind, Record, RecordChange
from strata_server.core.values import frozen

DELETE_ACTIONS: tuple[str, ...] = tuple(
    action for action, kind in CHANGE_KINDS.items() if kind is ChangeKind.DELETED
)
"""The audit actions after which a record no longer exists (the partial index of
deletes, last made by migration 0014, lists the same ones, in this order)."""


@frozen
class ChangeEntry:
    """One audit entry of a record, as an adapter reads it for the feed.

    `deleted_since` says whether a later entry of the feed deleted the record."""

    cursor: str
    action: str
    entity_id: str
    version: int
    time: datetime
    deleted_since: bool


_WITHIN = re.compile(r"(.+)\.([1-9][0-9]{0,8})")


def within_row(cursor: str, row_cursor: re.Pattern[str]) -> tuple[str, int]:
    """A cursor split into the cursor of a row (matching `row_cursor`) and the count of
    that row's listed records already sent (0: the whole row was, or it lists none)."""
    if row_cursor.fullmatch(cursor) is None:
        match = _WITHIN.fullmatch(cursor)
        if match is not None and row_cursor.fullmatch(match[1]) is not None:
            return match[1], int(match[2])
    return cursor, 0


@frozen
class AuditRow:
    """One audit row of a record as an adapter reads it for the feed: its entry, and
    for a purge batch's row the records it lists (`ids`, with their `versions`)."""

    entry: ChangeEntry
    ids: Sequence[str] = ()
    versions: Sequence[int] = ()


def expand(
    rows: Sequence[AuditRow], skip: tuple[str, int], limit: int
) -> tuple[list[ChangeEntry], str]:
    """The feed's entries of `rows`, in order, and the cursor to read on from: a row's
    entry, or for a purge batch's row one delete per listed record. `skip` (a row's
    cursor, n) leaves out that row's first n listed records, which a client resuming
    mid-row has been sent already. At most `limit` entries (at least one): a batch
    row is cut where the limit falls, and the cursor then stands inside it, so one
    read's memory stays bounded by `limit`."""
    limit = max(limit, 1)
    entries: list[ChangeEntry] = []
    for row in rows:
        entry = row.entry
        if not row.ids:
            if len(entries) >= limit:
                return entries, entries[-1].cursor
            entries.append(entry)
            continue
        last = len(row.ids)
        first = skip[1] if entry.cursor == skip[0] else 0
        end = min(last, first + max(limit - len(entries), 0))
        entries += [
            ChangeEntry(
                entry.cursor if n == last else f"{entry.cursor}.{n}",
                entry.action,
                row.ids[n - 1],
                row.versions[n - 1],
                entry.time,
                False,
            )
            for n in range(first + 1, end + 1)
        ]
        if end < last and entries:
            return entries, entries[-1].cursor
    return entries, rows[-1].entry.cursor


def ids_to_read(collection: str, entries: Sequence[ChangeEntry]) -> list[str]:
    """The ids of the records whose current state the changes may carry: those
    created or updated and not deleted since."""
    prefix = len(collection) + 1
    return [
        entry.entity_id[prefix:]
        for entry in entries
        if _kind(entry) in (ChangeKind.CREATED, ChangeKind.UPDATED) and not entry.deleted_since
    ]


def to_changes(
    collection: str,
    entries: Sequence[ChangeEntry],
    live: Mapping[str, Record],
    *,
    filtered: bool,
) -> list[RecordChange]:
    """The changes among `entries`, given `live`: the records of `ids_to_read` that
    exist now (and match the filter, when `filtered`), by id."""
    prefix = len(collection) + 1
    changes = []
    for entry in entries:
        kind = _kind(entry)
        if kind is None:
            continue  # not a change
        record_id = entry.entity_id[prefix:]
        record = None
        if kind is ChangeKind.DELETED:
            if entry.version == 0:
                continue  # a delete of nothing
        else:
            record = None if entry.deleted_since else live.get(record_id)
            if record is None and filtered:
                continue  # a record gone, or not matching: it matches no filter
        changes.append(
            RecordChange(
                kind, collection, record_id, entry.version, entry.time, record, entry.cursor
            )
        )
    return changes


def _kind(entry: ChangeEntry) -> ChangeKind | None:
    return CHANGE_KINDS.get(entry.action)
