"""SearchService's per-kind searches on SQLite FTS5 (the `SearchIndex` adapter).

Records and entries use their existing indexes (records_fts, transcript_entries_fts,
and archived_entries_fts for archived transcripts: migration 0020);
artifacts use artifact_search_fts (migration 0018) with a column filter: name and
labels for SEARCH_KIND_ARTIFACT, body for SEARCH_KIND_ARTIFACT_TEXT, bm25 weighting
only those columns. bm25 is lower for better matches, so each rank is negated for
the port (higher is better). Snippets are made by the service from `hit_texts`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from strata_server.core.search_rules import KindHit, KindQuery, SearchKind, Target, string_values
from strata_server.storage.sqlite.connection import Connections
from strata_server.storage.sqlite.dialect import from_micros, to_micros
from strata_server.storage.sqlite.record_rows import match_expression, now_micros

_EARLIEST, _LATEST = -(2**62), 2**62
"""Time bounds standing for "none" (microseconds)."""


def _scope(owner: str, time: str) -> str:
    """The request's owner and time window, which every kind's search applies alike
    (as postgres/search.py's `_times`), to the kind's owner and time columns."""
    return f"  AND (:owner IS NULL OR {owner} = :owner)\n  AND {time} >= :start AND {time} < :end"


RECORDS = f"""
SELECT r.collection, r.id, r.update_time, coalesce(r.owner, ''), bm25(records_fts) AS score
FROM records_fts JOIN records AS r ON r.rowid = records_fts.rowid
WHERE records_fts MATCH :match AND r.namespace = :namespace
  AND (r.expire_time IS NULL OR r.expire_time > :now)
  AND (:every_collection OR r.collection IN (SELECT value FROM json_each(:collections)))
{_scope("r.owner", "r.update_time")}
ORDER BY score, r.collection, r.id
LIMIT :limit
"""


def _entries(table: str) -> str:
    return f"""
SELECT e.transcript_id, e.seq, e.create_time, t.owner, bm25({table}_fts) AS score
FROM {table}_fts
JOIN {table} AS e ON e.rowid = {table}_fts.rowid
JOIN transcripts AS t ON t.namespace = e.namespace AND t.id = e.transcript_id
WHERE {table}_fts MATCH :match AND e.namespace = :namespace
{_scope("t.owner", "e.create_time")}"""


ENTRIES = f"""
SELECT * FROM ({_entries("transcript_entries")}
UNION ALL{_entries("archived_entries")})
ORDER BY score, transcript_id, seq
LIMIT :limit
"""
"""Hot entries and archived transcripts' entries (their search rows, migration 0020)."""


def _artifacts(weights: str) -> str:
    return f"""
SELECT s.artifact_id, s.name, a.create_time, a.owner,
       bm25(artifact_search_fts, {weights}) AS score
FROM artifact_search_fts
JOIN artifact_search AS s ON s.rowid = artifact_search_fts.rowid
JOIN artifacts AS a ON a.namespace = s.namespace AND a.id = s.artifact_id
WHERE artifact_search_fts MATCH :match AND s.namespace = :namespace
{_scope("a.owner", "a.create_time")}
ORDER BY score, s.artifact_id
LIMIT :limit
"""


SEARCHES = {
    SearchKind.RECORD: RECORDS,
    SearchKind.TRANSCRIPT_ENTRY: ENTRIES,
    SearchKind.ARTIFACT: _artifacts("1.0, 1.0, 0.0"),
    SearchKind.ARTIFACT_TEXT: _artifacts("0.0, 0.0, 1.0"),
}
COLUMN_FILTERS = {SearchKind.ARTIFACT: "{name labels}", SearchKind.ARTIFACT_TEXT: "body"}

_PAIRS = "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?)"
TEXTS = {
    SearchKind.RECORD: "SELECT collection, id, data FROM records "
    f"WHERE namespace = ? AND (collection, id) IN ({_PAIRS})",
    SearchKind.TRANSCRIPT_ENTRY: "SELECT transcript_id, seq, content FROM transcript_entries "
    "WHERE namespace = ?1 AND (transcript_id, seq) IN (SELECT json_extract(value, '$[0]'), "
    "json_extract(value, '$[1]') FROM json_each(?2)) "
    "UNION ALL SELECT transcript_id, seq, content FROM archived_entries "
    "WHERE namespace = ?1 AND (transcript_id, seq) IN (SELECT json_extract(value, '$[0]'), "
    "json_extract(value, '$[1]') FROM json_each(?2))",
    SearchKind.ARTIFACT: "SELECT artifact_id, name, labels FROM artifact_search "
    f"WHERE namespace = ? AND (artifact_id, name) IN ({_PAIRS})",
    SearchKind.ARTIFACT_TEXT: "SELECT artifact_id, name, coalesce(body, '') FROM artifact_search "
    f"WHERE namespace = ? AND (artifact_id, name) IN ({_PAIRS})",
}
INDEXED = (
    "SELECT artifact_id FROM artifact_search WHERE namespace = ? AND body IS NOT NULL"
    " AND artifact_id IN (SELECT value FROM json_each(?))"
)
SET_TEXT = (
    "UPDATE artifact_search SET body = ? WHERE namespace = ? AND artifact_id = ? RETURNING rowid"
)


class SqliteSearch:
    """`SearchIndex` over SQLite."""

    def __init__(self, db: Connections) -> None:
        self._db = db

    async def search_kind(self, namespace: str, query: KindQuery) -> list[KindHit]:
        request, kind = query.request, query.kind
        match = match_expression(request.text)
        if not match or query.limit <= 0:
            return []
        column = COLUMN_FILTERS.get(kind)
        params: dict[str, Any] = {
            "match": f"{column} : ({match})" if column else match,
            "namespace": namespace,
            "owner": request.owner,
            "start": to_micros(request.start_time) if request.start_time else _EARLIEST,
            "end": to_micros(request.end_time) if request.end_time else _LATEST,
            "limit": query.limit,
        }
        if kind is SearchKind.RECORD:
            params |= {
                "now": now_micros(),
                "every_collection": not request.collections,
                "collections": json.dumps(list(request.collections)),
            }
        rows = await self._db.fetchall(SEARCHES[kind], params)
        return [
            KindHit(kind, (first, second), -score, owner, from_micros(at))
            for first, second, at, owner, score in rows
        ]

    async def hit_texts(
        self, namespace: str, kind: SearchKind, targets: Sequence[Target]
    ) -> dict[Target, list[str]]:
        if not targets:
            return {}
        rows = await self._db.fetchall(TEXTS[kind], (namespace, json.dumps(targets)))
        if kind is SearchKind.RECORD:
            return {(c, id): string_values(json.loads(data)) for c, id, data in rows}
        if kind is SearchKind.ARTIFACT:
            return {(id, name): [name, labels] for id, name, labels in rows}
        return {(first, second): [text] for first, second, text in rows}

    async def set_artifact_text(self, namespace: str, artifact_id: str, text: str) -> bool:
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(SET_TEXT, (text, namespace, artifact_id))
        return bool(rows)

    async def indexed_artifacts(self, namespace: str, ids: Sequence[str]) -> set[str]:
        rows = await self._db.fetchall(INDEXED, (namespace, json.dumps(list(ids))))
        return {row[0] for row in rows}
