"""core.change_cursors: which audit entries become WatchRecords changes, and with which record."""

from __future__ import annotations

from datetime import UTC, datetime

from strata_server.core.change_cursors import ChangeEntry, ids_to_read, to_changes
from strata_server.core.models import ChangeKind, Record

AT = datetime(2026, 1, 1, tzinfo=UTC)


def entry(n: int, action: str, id: str, version: int, deleted_since: bool = False) -> ChangeEntry:
    return ChangeEntry(f"s{n}", action, f"c/{id}", version, AT, deleted_since)


def record(id: str, version: int) -> Record:
    return Record("default", "c", id, {"v": version}, version, AT, AT, None)


ENTRIES = [
    entry(1, "create", "a", 1, deleted_since=True),
    entry(2, "update", "a", 2, deleted_since=True),
    entry(3, "delete", "a", 2),
    entry(4, "create", "a", 1),  # the same id, a new record
    entry(5, "create", "b", 1),  # expired since: not live, no delete yet
    entry(6, "delete", "z", 0),  # a delete of nothing
    entry(7, "pin", "a", 1),  # not a change
]


def test_only_records_not_deleted_since_are_read() -> None:
    assert ids_to_read("c", ENTRIES) == ["a", "b"]


def test_every_change_is_kept_and_a_gone_record_is_not_attached() -> None:
    changes = to_changes("c", ENTRIES, {"a": record("a", 1)}, filtered=False)
    assert [(c.kind, c.record_id, c.version, c.cursor) for c in changes] == [
        (ChangeKind.CREATED, "a", 1, "s1"),
        (ChangeKind.UPDATED, "a", 2, "s2"),
        (ChangeKind.DELETED, "a", 2, "s3"),
        (ChangeKind.CREATED, "a", 1, "s4"),
        (ChangeKind.CREATED, "b", 1, "s5"),
    ]
    assert [c.record for c in changes] == [None, None, None, record("a", 1), None]


def test_a_filter_keeps_only_existing_matching_records_and_every_delete() -> None:
    changes = to_changes("c", ENTRIES, {"a": record("a", 1)}, filtered=True)
    assert [c.cursor for c in changes] == ["s3", "s4"]
