"""A record's columns and row on SQLite, the live-row condition, the clock in the
time columns' unit and the safe full-text query: shared by the modules the records
adapter imports in turn (commit, changes, transcripts)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from strata_server.core.models import Record
from strata_server.storage.sqlite.connection import Row
from strata_server.storage.sqlite.dialect import from_micros, to_micros

RECORD_COLUMNS = (
    "namespace, collection, id, data, version, create_time, update_time, expire_time, owner"
)
"""The columns `record_from_row` reads, in its order."""


LIVE = "(expire_time IS NULL OR expire_time > ?)"


def now_micros() -> int:
    """The current time as the integer microseconds the time columns hold."""
    return to_micros(datetime.now(UTC))


def record_from_row(row: Row) -> Record:
    """A Record from the first nine columns of a row selected with RECORD_COLUMNS."""
    expire_time = row[7]
    return Record(
        namespace=row[0],
        collection=row[1],
        id=row[2],
        data=json.loads(row[3]),
        version=row[4],
        create_time=from_micros(row[5]),
        update_time=from_micros(row[6]),
        expire_time=from_micros(expire_time) if expire_time is not None else None,
        owner=row[8] or "",
    )


def match_expression(text: str) -> str:
    """A safe FTS5 query for free text: every whitespace-separated term quoted as a
    string, so all terms must match and no FTS5 syntax (AND, NEAR, *, ^, col:) leaks."""
    return " ".join('"' + term.replace('"', '""') + '"' for term in text.split())
