"""The transcript statements on SQLite (transcripts.py runs them)."""

from __future__ import annotations

EXPORTED_COLUMNS = (
    "namespace, id, owner, title, labels, next_seq, size_bytes, create_time, update_time,"
    " seal_time, parent_collection, parent_id"
)
"""A transcript's columns as an export writes them (and an import, which makes every
transcript hot): every one but its tier."""
TRANSCRIPT_COLUMNS = EXPORTED_COLUMNS + ", archive_time"
"""The columns `transcript_from_row` reads, in its order."""

INSERT_TRANSCRIPT = f"""
INSERT INTO transcripts ({TRANSCRIPT_COLUMNS}) VALUES (?, ?, ?, ?, ?, 1, 0, ?, ?, NULL, ?, ?, NULL)
ON CONFLICT DO NOTHING
RETURNING id
"""

SELECT_TRANSCRIPT = f"SELECT {TRANSCRIPT_COLUMNS} FROM transcripts WHERE namespace = ? AND id = ?"

STATES_CHUNK = 500
"""Ids per SELECT_STATES statement: under SQLite's bound-parameter limit."""


def select_states(count: int) -> str:
    """Next seq and sealed of `count` transcripts of one namespace, by primary key."""
    marks = ", ".join("?" * count)
    return (
        "SELECT id, next_seq, seal_time IS NOT NULL FROM transcripts"
        f" WHERE namespace = ? AND id IN ({marks})"
    )


SELECT_APPEND_STATE = """
SELECT next_seq, size_bytes, seal_time FROM transcripts WHERE namespace = ? AND id = ?
"""

INSERT_ENTRY = """
INSERT INTO transcript_entries
    (namespace, transcript_id, seq, start_offset, size, role, content, create_time, wire_head,
     wire_tail)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

STORED_WIRE = "CAST(wire_head || CAST(content AS BLOB) || wire_tail AS BLOB)"
"""An entry's stored wire form, its content (stored once, as text) between the bytes
before and after it (storage/entry_wire.stored_parts, migration 0021); NULL for
entries appended before migration 0009, which have neither."""

INDEX_ENTRIES = """
INSERT INTO transcript_entries_fts (rowid, content)
SELECT rowid, content FROM transcript_entries
WHERE namespace = ? AND transcript_id = ? AND seq >= ? AND seq < ?
"""
"""Index one append's entries for search (the full-text index is maintained here,
not by per-row triggers, which made appends five times slower)."""

UNINDEX_ENTRIES = """
INSERT INTO transcript_entries_fts (transcript_entries_fts, rowid, content)
SELECT 'delete', rowid, content FROM transcript_entries
WHERE namespace = ? AND transcript_id = ?
"""
"""Remove a transcript's entries from the full-text index (before deleting them)."""

ADVANCE = """
UPDATE transcripts SET next_seq = ?, size_bytes = ?, update_time = ?
WHERE namespace = ? AND id = ?
"""

SEAL = "UPDATE transcripts SET seal_time = ?, update_time = ? WHERE namespace = ? AND id = ?"

DELETE_ENTRIES = "DELETE FROM transcript_entries WHERE namespace = ? AND transcript_id = ?"
DELETE_TRANSCRIPT = "DELETE FROM transcripts WHERE namespace = ? AND id = ? RETURNING next_seq"

READ_ENTRIES = f"""
SELECT seq, role, content, data, create_time, size, {STORED_WIRE} FROM transcript_entries
WHERE namespace = ?1 AND transcript_id = ?2
  AND start_offset >= (
      SELECT start_offset FROM transcript_entries
      WHERE namespace = ?1 AND transcript_id = ?2 AND seq = ?3)
  AND start_offset < (
      SELECT start_offset FROM transcript_entries
      WHERE namespace = ?1 AND transcript_id = ?2 AND seq = ?3) + ?4
ORDER BY start_offset
LIMIT ?5
"""
"""The entries starting within ?4 bytes of entry ?3's start (so entry ?3 itself
always, when it exists), in seq order: one range of the offset index."""


def _list_sql(owner: bool, parent: bool, after: bool) -> str:
    where = "namespace = ?" + (" AND owner = ?" if owner else "")
    where += " AND parent_collection = ? AND parent_id = ?" if parent else ""
    keyset = " AND (create_time, id) < (?, ?)" if after else ""
    return (
        f"SELECT {TRANSCRIPT_COLUMNS} FROM transcripts WHERE {where}{keyset} "
        "ORDER BY create_time DESC, id DESC LIMIT ?"
    )


LIST_TRANSCRIPTS = {
    (owner, parent, after): _list_sql(owner, parent, after)
    for owner in (False, True)
    for parent in (False, True)
    for after in (False, True)
}
"""ListTranscripts by (owner filter given, parent filter given, page key given)."""


def _search(table: str, scope: str) -> str:
    return f"""
SELECT e.transcript_id, e.seq, e.role, e.create_time,
       snippet({table}_fts, 0, '**', '**', '…', 16) AS snippet,
       bm25({table}_fts) AS score
FROM {table}_fts
JOIN {table} AS e ON e.rowid = {table}_fts.rowid
WHERE {table}_fts MATCH :match AND e.namespace = :namespace{scope}"""


def _search_both(scope: str) -> str:
    return f"""
SELECT * FROM ({_search("transcript_entries", scope)}
UNION ALL{_search("archived_entries", scope)})
ORDER BY score, transcript_id, seq
LIMIT :limit OFFSET :offset
"""


SEARCH_ALL = _search_both("")
SEARCH_ONE = _search_both(" AND e.transcript_id = :id")
"""Search hot entries and archived transcripts' entries (their search rows)."""

READ_LIMIT_FLOOR = 64
"""Fewest rows a batch query asks for (its LIMIT is max_bytes / ENTRY_OVERHEAD + 1,
never more rows than could fit; this only matters for tiny max_bytes)."""
