"""core.change_cursors: which audit entries become WatchRecords changes, and with which record."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from strata_server.core.change_cursors import (
    AuditRow,
    ChangeEntry,
    expand,
    ids_to_read,
    to_changes,
    within_row,
)
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


ROWS = [
    AuditRow(entry(1, "create", "a", 1)),
    AuditRow(entry(2, "expire", "", 0), ("c/a", "c/b", "c/c"), (1, 4, 2)),  # a batch row
    AuditRow(entry(3, "create", "d", 1)),
]
ROW_CURSOR = re.compile(r"s(\d+)")


def expanded(after: str, limit: int) -> tuple[list[tuple[str, str, int]], str]:
    """`expand` of the rows an adapter reads after `after` (from the row itself when
    the cursor stands inside it)."""
    row, _ = within_row(after, ROW_CURSOR)
    read = [r for r in ROWS if r.entry.cursor >= row] if row != after else ROWS
    entries, read_on = expand(read, within_row(after, ROW_CURSOR), limit)
    return [(e.cursor, e.entity_id, e.version) for e in entries], read_on


def test_a_batch_row_expands_to_one_delete_per_listed_record() -> None:
    assert expanded("s0", 10) == (
        [
            ("s1", "c/a", 1),
            ("s2.1", "c/a", 1),
            ("s2.2", "c/b", 4),
            ("s2", "c/c", 2),
            ("s3", "c/d", 1),
        ],
        "s3",
    )


def test_a_read_resumes_inside_a_batch_row_and_is_cut_at_its_limit() -> None:
    # From inside the row: the rest of it only (the read starts at the row itself).
    assert expanded("s2.1", 10) == ([("s2.2", "c/b", 4), ("s2", "c/c", 2), ("s3", "c/d", 1)], "s3")
    # A limit cuts the row, and the cursor to read on from stands inside it.
    assert expanded("s0", 2) == ([("s1", "c/a", 1), ("s2.1", "c/a", 1)], "s2.1")
    assert expanded("s2.1", 1) == ([("s2.2", "c/b", 4)], "s2.2")
    assert expanded("s2.2", 1) == ([("s2", "c/c", 2)], "s2")
    assert expanded("s0", 1) == ([("s1", "c/a", 1)], "s1")
    assert within_row("s2.x", ROW_CURSOR) == ("s2.x", 0)
    assert within_row("s2.0", ROW_CURSOR) == ("s2.0", 0)
