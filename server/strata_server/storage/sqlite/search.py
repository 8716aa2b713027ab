"""SearchService's per-kind searches on SQLite FTS5 (the `SearchIndex` adapter).

Records and entries use their existing indexes (records_fts, contentless, so a
record's snippet is made from its data by core/search_rules.py; and
transcript_entries_fts). Artifacts use artifact_search_fts (migration 0018) with
a column filter: name and labels for SEARCH_KIND_ARTIFACT, body for
SEARCH_KIND_ARTIFACT_TEXT, bm25 weighting only those columns. bm25 is lower for
better matches, so each rank is negated for the port (higher is better).
"""

from __future__ import annotations

import json
from typing import Any

from strata_server.core.search_rules import (
    KindHit,
    KindQuery,
    SearchKind,
    snippet,
    string_values,
)
from strata_server.storage.sqlite.connection import Connections
from strata_server.storage.sqlite.dialect import from_micros, to_micros
from strata_server.storage.sqlite.record_rows import match_expression, now_micros

_EARLIEST, _LATEST = -(2**62), 2**62
"""Time bounds standing for "none" (microseconds)."""

RECORDS = """
SELECT r.collection, r.id, r.data, r.update_time, bm25(records_fts) AS score
FROM records_fts JOIN records AS r ON r.rowid = records_fts.rowid
WHERE records_fts MATCH :match AND r.namespace = :namespace
  AND (r.expire_time IS NULL OR r.expire_time > :now)
  AND (:every_collection OR r.collection IN (SELECT value FROM json_each(:collections)))
  AND r.update_time >= :start AND r.update_time < :end
ORDER BY score, r.collection, r.id
LIMIT :limit
"""

ENTRIES = """
SELECT e.transcript_id, e.seq, e.create_time,
       snippet(transcript_entries_fts, 0, '**', '**', '…', 16),
       bm25(transcript_entries_fts) AS score, t.owner
FROM transcript_entries_fts
JOIN transcript_entries AS e ON e.rowid = transcript_entries_fts.rowid
JOIN transcripts AS t ON t.namespace = e.namespace AND t.id = e.transcript_id
WHERE transcript_entries_fts MATCH :match AND e.namespace = :namespace
  AND (:owner IS NULL OR t.owner = :owner)
  AND e.create_time >= :start AND e.create_time < :end
ORDER BY score, e.transcript_id, e.seq
LIMIT :limit
"""


def _artifacts(rank: str, text: str) -> str:
    return f"""
SELECT s.artifact_id, s.name, a.owner, a.create_time, {text} AS text, {rank} AS score
FROM artifact_search_fts
JOIN artifact_search AS s ON s.rowid = artifact_search_fts.rowid
JOIN artifacts AS a ON a.namespace = s.namespace AND a.id = s.artifact_id
WHERE artifact_search_fts MATCH :match AND s.namespace = :namespace
  AND (:owner IS NULL OR a.owner = :owner)
  AND a.create_time >= :start AND a.create_time < :end
ORDER BY score, s.artifact_id
LIMIT :limit
"""


ARTIFACTS = _artifacts("bm25(artifact_search_fts, 1.0, 1.0, 0.0)", "s.labels")
"""Name and labels; the snippet is made from them in Python."""
ARTIFACT_TEXTS = _artifacts(
    "bm25(artifact_search_fts, 0.0, 0.0, 1.0)",
    "snippet(artifact_search_fts, 2, '**', '**', '…', 16)",
)
SET_TEXT = (
    "UPDATE artifact_search SET body = ? WHERE namespace = ? AND artifact_id = ? RETURNING rowid"
)


class SqliteSearch:
    """`SearchIndex` over SQLite."""

    def __init__(self, db: Connections) -> None:
        self._db = db

    async def search_kind(self, namespace: str, query: KindQuery) -> list[KindHit]:
        request = query.request
        match = match_expression(request.text)
        if not match or query.limit <= 0:
            return []
        params: dict[str, Any] = {
            "namespace": namespace,
            "owner": request.owner,
            "start": to_micros(request.start_time) if request.start_time else _EARLIEST,
            "end": to_micros(request.end_time) if request.end_time else _LATEST,
            "limit": query.limit,
        }
        kind = query.kind
        if kind is SearchKind.RECORD:
            if request.owner is not None:
                return []  # records have no owner
            params |= {
                "match": match,
                "now": now_micros(),
                "every_collection": not request.collections,
                "collections": json.dumps(list(request.collections)),
            }
            rows = await self._db.fetchall(RECORDS, params)
            return [
                KindHit(
                    kind,
                    (collection, id),
                    -score,
                    snippet(string_values(json.loads(data)), request.text),
                    "",
                    from_micros(at),
                )
                for collection, id, data, at, score in rows
            ]
        if kind is SearchKind.TRANSCRIPT_ENTRY:
            rows = await self._db.fetchall(ENTRIES, params | {"match": match})
            return [
                KindHit(kind, (transcript_id, seq), -score, text or "", owner, from_micros(at))
                for transcript_id, seq, at, text, score, owner in rows
            ]
        if kind is SearchKind.ARTIFACT:
            sql, column = ARTIFACTS, "{name labels}"
        else:
            sql, column = ARTIFACT_TEXTS, "body"
        rows = await self._db.fetchall(sql, params | {"match": f"{column} : ({match})"})
        return [
            KindHit(
                kind,
                (id, name),
                -score,
                snippet([name, text], request.text) if kind is SearchKind.ARTIFACT else text or "",
                owner,
                from_micros(at),
            )
            for id, name, owner, at, text, score in rows
        ]

    async def set_artifact_text(self, namespace: str, artifact_id: str, text: str) -> bool:
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(SET_TEXT, (text, namespace, artifact_id))
        return bool(rows)
