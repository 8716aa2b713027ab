"""Record changes for WatchRecords on SQLite, read from the audit log.

SQLite has one writer, so audit entries commit in `seq` order and a reader never
sees seq 6 before seq 5: the cursor is the seq, `s<seq>`. The scan walks the
audit log's rowid from the cursor (NOT INDEXED: the entity index would visit a
collection's whole history and sort it); whether a record was deleted since an entry
is looked up by the entity index. `core.change_cursors` turns the entries into changes.

A purge raises its namespace's horizon, a seq like a cursor, in its write
transaction (`raise_horizons`); core/change_cursors.py says why a read checks the
horizon after its scan and refuses a cursor a purge passed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from strata_server.core.change_cursors import DELETE_ACTIONS, within_row
from strata_server.core.errors import CursorExpired, InvalidArgument
from strata_server.core.filters import Filter
from strata_server.core.models import Record
from strata_server.storage.sqlite.connection import Connections, Row, Transaction
from strata_server.storage.sqlite.dialect import SQLITE, from_micros
from strata_server.storage.sqlite.record_rows import (
    LIVE,
    RECORD_COLUMNS,
    now_micros,
    record_from_row,
)
from strata_server.storage.sqlquery import compile_where

ROW_CURSOR = re.compile(r"s(\d{1,19})")
"""A cursor after a whole audit row; `<that>.<n>` stands inside a purge batch's row
(core/change_cursors.py)."""

HEAD = """
SELECT max(coalesce((SELECT max(seq) FROM audit_log), 0),
           coalesce((SELECT max(seq) FROM audit_horizons), 0))
"""
"""The newest seq the audit log has held: its newest entry, or a horizon when a purge
emptied it (AUTOINCREMENT never hands a purged seq out again)."""

HORIZON = "SELECT seq, time FROM audit_horizons WHERE namespace = ?"

RAISE_HORIZON = """
INSERT INTO audit_horizons (namespace, seq, time) VALUES (?, ?, ?)
ON CONFLICT (namespace) DO UPDATE
SET seq = max(seq, excluded.seq), time = max(time, excluded.time)
"""
"""Raise a namespace's horizon to a purge batch's newest seq and time (never lower it:
the batches of one run go oldest first, but a namespace's own policy and the server
default may purge in either order)."""

CHANGES = f"""
SELECT a.seq, a.action, a.entity_id, a.version, a.time, EXISTS (
    SELECT 1 FROM audit_log AS d INDEXED BY audit_log_record_deletes
    WHERE d.namespace = a.namespace AND d.entity = 'record' AND d.entity_id = a.entity_id
      AND d.seq > a.seq AND d.action IN ({", ".join(f"'{action}'" for action in DELETE_ACTIONS)})
  ) OR (a.entity_ids IS NULL AND EXISTS (
    SELECT 1 FROM records AS r
    WHERE r.namespace = a.namespace AND r.collection = ?6 AND r.id = substr(a.entity_id, ?7)
  ) AND EXISTS (
    SELECT 1 FROM audit_log AS b INDEXED BY audit_log_batches
    WHERE b.namespace = a.namespace AND b.entity_id = ?3 AND b.entity_ids IS NOT NULL
      AND b.seq > a.seq
      AND EXISTS (SELECT 1 FROM json_each(b.entity_ids) WHERE value = a.entity_id)
  )), a.entity_ids, a.entity_versions
FROM audit_log AS a NOT INDEXED
WHERE a.seq > ?1 AND a.namespace = ?2 AND a.entity = 'record'
  AND a.entity_id >= ?3 AND a.entity_id < ?4
ORDER BY a.seq
LIMIT ?5
"""
"""Audit entries of one collection's records after a cursor, each with whether a later
entry deleted its record (one seek in the partial index of deletes, migration 0010: the
planner would otherwise walk the record's history in the entity index), a later purge
batch's row of the collection (filed under its prefix, ?3) among them, and a batch
row's lists. A batch row is looked for only when the record exists now (created again
since the batch): for one that does not, the change carries no record either way,
and the lookup (audit_log_batches, migration 0024) reads the collection's batch rows
after the entry, each list whole."""


def parse_cursor(cursor: str) -> int:
    """The seq after which a cursor this adapter made reads on: for a cursor inside a
    purge batch's row, just before that row (the read skips the part of it sent
    already), so the row counts as unread for the horizon too."""
    row, within = within_row(cursor, ROW_CURSOR)
    match = ROW_CURSOR.fullmatch(row)
    if match is None or int(match[1]) >= 2**63 or (within and int(match[1]) == 0):
        raise InvalidArgument.field("from_cursor", "is not a cursor of this server")
    return int(match[1]) - (1 if within else 0)


async def raise_horizons(tx: Transaction, purged: Sequence[Row]) -> None:
    """Raise the horizon of each namespace among `purged` (the audit entries a purge
    batch deleted, as `namespace, seq, time`) in the batch's transaction."""
    newest: dict[str, tuple[int, int]] = {}
    for namespace, seq, time in purged:
        old_seq, old_time = newest.get(namespace, (0, 0))
        newest[namespace] = (max(old_seq, seq), max(old_time, time))
    await tx.executemany(RAISE_HORIZON, [(ns, *at) for ns, at in newest.items()])


async def check_horizon(db: Connections, namespace: str, cursor: str) -> None:
    """CursorExpired when `namespace`'s audit log was purged past `cursor` (a purged
    entry lies after it); a cursor at the horizon has seen every purged entry."""
    rows = await db.fetchall(HORIZON, (namespace,))
    if rows and parse_cursor(cursor) < rows[0][0]:
        seq, micros = rows[0]
        raise CursorExpired(cursor, f"s{seq}", from_micros(micros).isoformat())


async def matching(
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
