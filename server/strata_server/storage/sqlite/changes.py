"""Record changes for WatchRecords on SQLite, read from the audit log.

SQLite has one writer, so audit entries commit in `seq` order and a reader never
sees seq 6 before seq 5: the cursor is the seq, `s<seq>`. The scan walks the
audit log's rowid from the cursor (NOT INDEXED: the entity index would visit a
collection's whole history and sort it).
"""

from __future__ import annotations

import json
import re

from strata_server.core.errors import InvalidArgument
from strata_server.core.filters import Filter
from strata_server.core.models import (
    CHANGE_KINDS,
    ChangeBatch,
    ChangeKind,
    Record,
    RecordChange,
)
from strata_server.storage.sqlite.connection import Connections
from strata_server.storage.sqlite.dialect import SQLITE, from_micros
from strata_server.storage.sqlite.records import LIVE, RECORD_COLUMNS, now_micros, record_from_row
from strata_server.storage.sqlquery import compile_where

_CURSOR = re.compile(r"s(\d{1,19})")

HEAD = "SELECT coalesce(max(seq), 0) FROM audit_log"

CHANGES = """
SELECT seq, action, entity_id, version, time FROM audit_log NOT INDEXED
WHERE seq > ? AND namespace = ? AND entity = 'record' AND entity_id >= ? AND entity_id < ?
ORDER BY seq
LIMIT ?
"""


def parse_cursor(cursor: str) -> int:
    """The seq of a cursor this adapter made."""
    match = _CURSOR.fullmatch(cursor)
    if match is None or int(match[1]) >= 2**63:
        raise InvalidArgument.field("from_cursor", "is not a cursor of this server")
    return int(match[1])


async def head(db: Connections) -> str:
    rows = await db.fetchall(HEAD, ())
    return f"s{rows[0][0]}"


async def record_changes(
    db: Connections,
    namespace: str,
    collection: str,
    after: str,
    filter: Filter | None,
    limit: int,
) -> ChangeBatch:
    seq = parse_cursor(after)
    rows = await db.fetchall(CHANGES, (seq, namespace, f"{collection}/", f"{collection}0", limit))
    if not rows:
        return ChangeBatch((), after)
    prefix = len(collection) + 1
    ids = [row[2][prefix:] for row in rows if CHANGE_KINDS.get(row[1]) is not ChangeKind.DELETED]
    live = await _matching(db, namespace, collection, ids, filter)
    changes = []
    for row_seq, action, entity_id, version, time in rows:
        kind = CHANGE_KINDS.get(action)
        record_id = entity_id[prefix:]
        record = live.get(record_id)
        if kind is None or (record is None if kind is not ChangeKind.DELETED else version == 0):
            continue  # not a change; a record gone or not matching; a delete of nothing
        changes.append(
            RecordChange(
                kind,
                collection,
                record_id,
                version,
                from_micros(time),
                record if kind is not ChangeKind.DELETED else None,
                f"s{row_seq}",
            )
        )
    return ChangeBatch(changes, f"s{rows[-1][0]}")


async def _matching(
    db: Connections, namespace: str, collection: str, ids: list[str], filter: Filter | None
) -> dict[str, Record]:
    """The live records among `ids` that match `filter`, by id."""
    if not ids:
        return {}
    where, params = compile_where(SQLITE, filter)
    rows = await db.fetchall(
        f"SELECT {RECORD_COLUMNS} FROM records WHERE namespace = ? AND collection = ? "
        f"AND id IN (SELECT value FROM json_each(?)) AND {LIVE} AND ({where})",
        [namespace, collection, json.dumps(sorted(set(ids))), now_micros(), *params],
    )
    return {row[2]: record_from_row(row) for row in rows}
