"""Transcript rows on SQLite as the adapter reads them: a transcript's row, a
batch's entry rows, and a ListTranscripts page key."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from strata_server.core.parent_refs import ParentRef
from strata_server.core.transcript_rules import Entry, Transcript
from strata_server.storage.sqlite.connection import Row
from strata_server.storage.sqlite.dialect import from_micros, to_micros
from strata_server.storage.sqlquery import bad_token


def transcript_from_row(row: Row) -> Transcript:
    """A Transcript from a row selected with TRANSCRIPT_COLUMNS (or EXPORTED_COLUMNS,
    which leave out the tier: a hot transcript's)."""
    return Transcript(
        namespace=row[0],
        id=row[1],
        owner=row[2],
        title=row[3],
        labels=json.loads(row[4]),
        next_seq=row[5],
        size_bytes=row[6],
        create_time=from_micros(row[7]),
        update_time=from_micros(row[8]),
        seal_time=from_micros(row[9]) if row[9] is not None else None,
        parent=ParentRef(row[10], row[11]) if row[11] is not None else None,
        archive_time=from_micros(row[12]) if len(row) > 12 and row[12] is not None else None,
    )


def entry_from_row(row: Row) -> Entry:
    """An Entry from a row of READ_ENTRIES (its wire column left out)."""
    seq, role, content, data, create_time, size = row[:6]
    return (
        seq,
        role,
        content,
        json.loads(data) if data is not None else None,
        from_micros(create_time),
        size,
    )


def list_key(after: tuple[Any, ...]) -> tuple[int, str]:
    """A ListTranscripts page key (create_time, id) as the keyset query takes it;
    a malformed one is a bad page token."""
    if (
        len(after) != 2
        or not isinstance(after[0], datetime)
        or after[0].tzinfo is None
        or not isinstance(after[1], str)
    ):
        raise bad_token()
    return to_micros(after[0]), after[1]
