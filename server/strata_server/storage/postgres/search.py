"""SearchService's per-kind searches on PostgreSQL full text (the `SearchIndex`
adapter).

Records and entries use their existing tsvector columns (0001, 0003); artifacts use
artifact_search's meta_search (name and labels) and body_search (text content)
from migration 0018. Every query matches with plainto_tsquery('simple', ...), as
SearchRecords and SearchTranscripts do, ranks with ts_rank, and makes snippets
(ts_headline, the costly part) only for the rows it returns. A record's snippet is
made from its data by core/search_rules.py, as on SQLite.
"""

from __future__ import annotations

import json
from typing import Any, LiteralString

from strata_server.core.search_rules import (
    KindHit,
    KindQuery,
    SearchKind,
    snippet,
    string_values,
)
from strata_server.storage.postgres.pool import Conn, Runner, borrowing
from strata_server.storage.postgres.record_rows import now

_QUERY: LiteralString = "plainto_tsquery('simple', %(query)s::text)"
_TIMES: LiteralString = (
    " AND (%(start)s::timestamptz IS NULL OR {column} >= %(start)s::timestamptz)"
    " AND (%(end)s::timestamptz IS NULL OR {column} < %(end)s::timestamptz)"
)
_HEADLINE: LiteralString = (
    "'StartSel=**, StopSel=**, MaxWords=24, MinWords=8, MaxFragments=2, FragmentDelimiter=\" … \"'"
)

RECORDS: LiteralString = (
    "SELECT r.collection, r.id, r.data, r.update_time, ts_rank(r.search, q) AS score"
    f" FROM records AS r, {_QUERY} AS q"
    " WHERE r.namespace = %(namespace)s::text AND r.search @@ q"
    " AND (r.expire_time IS NULL OR r.expire_time > %(now)s::timestamptz)"
    " AND (%(every_collection)s::bool OR r.collection = ANY(%(collections)s::text[]))"
    + _TIMES.format(column="r.update_time")
    + " ORDER BY score DESC, r.collection, r.id LIMIT %(limit)s"
)

ENTRIES: LiteralString = (
    "WITH hits AS ("
    " SELECT e.transcript_id, e.seq, e.create_time, e.content, t.owner,"
    " ts_rank(e.search, q) AS score"
    f" FROM transcript_entries AS e, {_QUERY} AS q, transcripts AS t"
    " WHERE e.namespace = %(namespace)s::text AND e.search @@ q"
    " AND t.namespace = e.namespace AND t.id = e.transcript_id"
    " AND (%(owner)s::text IS NULL OR t.owner = %(owner)s::text)"
    + _TIMES.format(column="e.create_time")
    + " ORDER BY score DESC, e.transcript_id, e.seq LIMIT %(limit)s)"
    " SELECT transcript_id, seq, create_time,"
    f" ts_headline('simple', content, {_QUERY}, {_HEADLINE}), score, owner"
    " FROM hits ORDER BY score DESC, transcript_id, seq"
)


def _artifacts(vector: LiteralString, text: LiteralString) -> LiteralString:
    return (
        "WITH hits AS ("
        " SELECT s.artifact_id, s.name, s.labels, s.body, a.owner, a.create_time,"
        f" ts_rank(s.{vector}, q) AS score"
        f" FROM artifact_search AS s, {_QUERY} AS q, artifacts AS a"
        f" WHERE s.namespace = %(namespace)s::text AND s.{vector} @@ q"
        " AND a.namespace = s.namespace AND a.id = s.artifact_id"
        " AND (%(owner)s::text IS NULL OR a.owner = %(owner)s::text)"
        + _TIMES.format(column="a.create_time")
        + " ORDER BY score DESC, s.artifact_id LIMIT %(limit)s)"
        f" SELECT artifact_id, name, owner, create_time, {text}, score"
        " FROM hits ORDER BY score DESC, artifact_id"
    )


ARTIFACTS = _artifacts("meta_search", "labels")
"""Name and labels; the snippet is made from them in Python."""
ARTIFACT_TEXTS = _artifacts("body_search", f"ts_headline('simple', body, {_QUERY}, {_HEADLINE})")
SET_TEXT: LiteralString = (
    "UPDATE artifact_search SET body = %s WHERE namespace = %s AND artifact_id = %s"
)


class PostgresSearch:
    """`SearchIndex` over PostgreSQL."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    @borrowing()
    async def search_kind(self, conn: Conn, namespace: str, query: KindQuery) -> list[KindHit]:
        request = query.request
        if query.limit <= 0 or not request.text.strip():
            return []
        kind = query.kind
        if kind is SearchKind.RECORD and request.owner is not None:
            return []  # records have no owner
        params: dict[str, Any] = {
            "namespace": namespace,
            "query": request.text,
            "owner": request.owner,
            "start": request.start_time,
            "end": request.end_time,
            "limit": query.limit,
            "now": now(),
            "every_collection": not request.collections,
            "collections": list(request.collections),
        }
        sql = {
            SearchKind.RECORD: RECORDS,
            SearchKind.TRANSCRIPT_ENTRY: ENTRIES,
            SearchKind.ARTIFACT: ARTIFACTS,
            SearchKind.ARTIFACT_TEXT: ARTIFACT_TEXTS,
        }[kind]
        cursor = await conn.execute(sql, params, prepare=True)
        rows = await cursor.fetchall()
        if kind is SearchKind.RECORD:
            return [
                KindHit(
                    kind,
                    (collection, id),
                    float(score),
                    snippet(string_values(_json(data)), request.text),
                    "",
                    at,
                )
                for collection, id, data, at, score in rows
            ]
        if kind is SearchKind.TRANSCRIPT_ENTRY:
            return [
                KindHit(kind, (transcript_id, seq), float(score), text or "", owner, at)
                for transcript_id, seq, at, text, score, owner in rows
            ]
        return [
            KindHit(
                kind,
                (id, name),
                float(score),
                snippet([name, text], request.text) if kind is SearchKind.ARTIFACT else text or "",
                owner,
                at,
            )
            for id, name, owner, at, text, score in rows
        ]

    @borrowing(transaction=True, writes=True)
    async def set_artifact_text(
        self, conn: Conn, namespace: str, artifact_id: str, text: str
    ) -> bool:
        cursor = await conn.execute(SET_TEXT, (text, namespace, artifact_id), prepare=True)
        return cursor.rowcount > 0


def _json(data: Any) -> Any:
    return json.loads(data) if isinstance(data, str | bytes) else data
