"""Record changes for WatchRecords on PostgreSQL, read from the audit log.

The order is commit order, with no gap. `audit_log.seq` comes from a sequence, taken
when a row is inserted, so a transaction that inserted seq 5 may commit after one
that inserted seq 6: reading by seq alone could pass over 5 for good. Each entry also
holds its transaction's id (`xact`, migration 0005), and a read takes only entries
whose transaction is older than every transaction still running
(`pg_snapshot_xmin(pg_current_snapshot())`): those transactions have all ended, so
no entry can appear later below the read position. Entries are ordered by
(xact, seq), and a cursor is that pair, `p<xact>.<seq>`. The price is that one
long-running write transaction anywhere in the cluster holds the feed back until it
ends. Whether a record was deleted after an entry is looked up by the entity index;
`core.change_cursors` turns the entries into changes.

A purge raises its namespace's horizon, an (xact, seq) pair like a cursor, in the
statement that deletes (`RAISE_HORIZONS`); core/change_cursors.py says why a read
checks the horizon after its scan and refuses a cursor a purge passed.
"""

from __future__ import annotations

import re

from strata_server.core.change_cursors import DELETE_ACTIONS, within_row
from strata_server.core.errors import CursorExpired, InvalidArgument
from strata_server.core.filters import Filter
from strata_server.core.models import Record
from strata_server.storage.postgres import queries
from strata_server.storage.postgres.dialect import PostgresDialect
from strata_server.storage.postgres.pool import Conn
from strata_server.storage.postgres.record_rows import now, record_from_row
from strata_server.storage.sqlquery import compile_where

ROW_CURSOR = re.compile(r"p(\d{1,20})\.(\d{1,19})")
"""A cursor after a whole audit row; `<that>.<n>` stands inside a purge batch's row
(core/change_cursors.py)."""

HEAD = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text"

CHANGES = f"""
SELECT a.xact::text AS xact_text, a.seq, a.action, a.entity_id, a.version, a.time, EXISTS (
    SELECT 1 FROM audit_log AS d
    WHERE d.namespace = a.namespace AND d.entity = 'record' AND d.entity_id = a.entity_id
      AND (d.xact, d.seq) > (a.xact, a.seq)
      AND d.action IN ({", ".join(f"'{action}'" for action in DELETE_ACTIONS)})
  ) OR (a.entity_ids IS NULL AND EXISTS (
    SELECT 1 FROM records AS r
    WHERE r.namespace = a.namespace AND r.collection = %(collection)s
      AND r.id = substr(a.entity_id, %(id_at)s)
  ) AND EXISTS (
    SELECT 1 FROM audit_log AS b
    WHERE b.namespace = a.namespace AND b.entity_id = %(prefix)s AND b.entity_ids IS NOT NULL
      AND (b.xact, b.seq) > (a.xact, a.seq) AND a.entity_id = ANY(b.entity_ids)
  )), a.entity_ids, a.entity_versions
FROM audit_log AS a
WHERE a.namespace = %(namespace)s AND a.entity = 'record'
  AND a.entity_id >= %(prefix)s AND a.entity_id < %(after_prefix)s
  AND (a.xact, a.seq) > (%(xact)s::text::xid8, %(seq)s::bigint)
  AND a.xact < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY a.xact, a.seq
LIMIT %(limit)s
"""
"""Settled audit entries of one collection's records after a cursor (entity ids are
`<collection>/<id>`, so the collection is a range of them under the "C" collation),
each with whether a later entry deleted its record (committed or not yet settled: the
records table shows such a delete already), a later purge batch's row of the
collection among them, and a batch row's lists. A batch row is looked for only when
the record exists now (created again since the batch): for a record that does not,
the change carries no record either way, and the lookup (audit_log_batches,
migration 0024) reads the collection's batch rows after the entry, each list whole.
The xid goes out as text under another name: ORDER BY a bare `xact` would take the
output column, and order 999 after 1000."""


PENDING = """
SELECT EXISTS (
    SELECT 1 FROM audit_log
    WHERE namespace = %s AND xact >= pg_snapshot_xmin(pg_current_snapshot())
      AND entity = 'record' AND entity_id >= %s AND entity_id < %s
)
"""
"""Whether committed audit entries of one collection are not settled yet (their
transaction is not older than every running one, so CHANGES leaves them out): the
newest end of the (namespace, xact, seq) index, a few rows at most."""


HORIZON = "SELECT xact::text, seq, time FROM audit_horizons WHERE namespace = %s"

RAISE_HORIZONS = """, horizon AS (
    INSERT INTO audit_horizons AS h (namespace, xact, seq, time)
    SELECT DISTINCT ON (namespace) namespace, xact, seq, max(time) OVER (PARTITION BY namespace)
    FROM gone
    ORDER BY namespace, xact DESC, seq DESC
    ON CONFLICT (namespace) DO UPDATE SET
        xact = CASE WHEN (excluded.xact, excluded.seq) > (h.xact, h.seq)
                    THEN excluded.xact ELSE h.xact END,
        seq = CASE WHEN (excluded.xact, excluded.seq) > (h.xact, h.seq)
                   THEN excluded.seq ELSE h.seq END,
        time = greatest(h.time, excluded.time)
)"""
"""CTE `horizon` after a purge of the audit log whose `gone` returns namespace, xact,
seq and time: raise each namespace's horizon to the newest (xact, seq) and time the
batch deleted, never lowering it (a namespace's own policy and the server default
may purge in either order)."""


def cursor_of(xact: str | int, seq: int) -> str:
    return f"p{xact}.{seq}"


def parse_cursor(cursor: str) -> tuple[int, int]:
    """The (xact, seq) after which a cursor this adapter made reads on: for a cursor
    inside a purge batch's row, just before that row (the read skips the part of it
    sent already), so the row counts as unread for the horizon too."""
    row, within = within_row(cursor, ROW_CURSOR)
    match = ROW_CURSOR.fullmatch(row)
    if match is None or int(match[1]) >= 2**64 or (within and int(match[2]) == 0):
        raise InvalidArgument.field("from_cursor", "is not a cursor of this server")
    return int(match[1]), int(match[2]) - (1 if within else 0)


async def check_horizon(conn: Conn, namespace: str, cursor: str) -> None:
    """CursorExpired when `namespace`'s audit log was purged past `cursor` (a purged
    entry lies after it); a cursor at the horizon has seen every purged entry."""
    result = await conn.execute(HORIZON, (namespace,), prepare=True)
    row = await result.fetchone()
    if row is not None and parse_cursor(cursor) < (int(row[0]), row[1]):
        raise CursorExpired(cursor, cursor_of(row[0], row[1]), row[2].isoformat())


async def matching(
    conn: Conn,
    namespace: str,
    collection: str,
    ids: list[str],
    filter: Filter | None,
    dialect: PostgresDialect,
) -> dict[str, Record]:
    """The live records among `ids` that match `filter`, by id."""
    if not ids:
        return {}
    where, params = compile_where(dialect, filter)
    cursor = await conn.execute(
        queries.matching_records(where),
        [namespace, collection, list(set(ids)), now(), *params],
        binary=True,
    )
    return {row[1]: record_from_row(namespace, row) for row in await cursor.fetchall()}
