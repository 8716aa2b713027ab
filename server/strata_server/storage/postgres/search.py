"""SearchService's per-kind searches on PostgreSQL full text (the `SearchIndex`
adapter).

Records and entries use their existing tsvector columns (0001, 0003; archived
transcripts' entries, archived_entries' from 0020); artifacts use
artifact_search's meta_search (name and labels) and body_search (text content)
from migration 0018. Every query matches with plainto_tsquery('simple', ...), as
SearchRecords and SearchTranscripts do, and ranks with ts_rank. Snippets are made
by the service from `hit_texts`, for the page's hits only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, LiteralString

from strata_server.core.search_rules import KindHit, KindQuery, SearchKind, Target, string_values
from strata_server.storage.postgres.pool import Conn, Runner, borrowing
from strata_server.storage.postgres.record_rows import now

_QUERY: LiteralString = "plainto_tsquery('simple', %(query)s::text)"


def _times(column: LiteralString) -> LiteralString:
    return (
        f" AND (%(start)s::timestamptz IS NULL OR {column} >= %(start)s::timestamptz)"
        f" AND (%(end)s::timestamptz IS NULL OR {column} < %(end)s::timestamptz)"
    )


RECORDS: LiteralString = (
    "SELECT r.collection, r.id, r.update_time, coalesce(r.owner, ''),"
    " ts_rank(r.search, q) AS score"
    f" FROM records AS r, {_QUERY} AS q"
    " WHERE r.namespace = %(namespace)s::text AND r.search @@ q"
    " AND (%(owner)s::text IS NULL OR r.owner = %(owner)s::text)"
    " AND (r.expire_time IS NULL OR r.expire_time > %(now)s::timestamptz)"
    " AND (%(every_collection)s::bool OR r.collection = ANY(%(collections)s::text[]))"
    + _times("r.update_time")
    + " ORDER BY score DESC, r.collection, r.id LIMIT %(limit)s"
)


def _entries(table: LiteralString) -> LiteralString:
    return (
        "SELECT e.transcript_id, e.seq, e.create_time, t.owner, ts_rank(e.search, q) AS score"
        f" FROM {table} AS e, {_QUERY} AS q, transcripts AS t"
        " WHERE e.namespace = %(namespace)s::text AND e.search @@ q"
        " AND t.namespace = e.namespace AND t.id = e.transcript_id"
        " AND (%(owner)s::text IS NULL OR t.owner = %(owner)s::text)" + _times("e.create_time")
    )


ENTRIES: LiteralString = (
    _entries("transcript_entries")
    + " UNION ALL "
    + _entries("archived_entries")
    + " ORDER BY score DESC, transcript_id, seq LIMIT %(limit)s"
)
"""Hot entries and archived transcripts' entries (their search rows, migration 0020)."""


def _artifacts(vector: LiteralString) -> LiteralString:
    return (
        f"SELECT s.artifact_id, s.name, a.create_time, a.owner, ts_rank(s.{vector}, q) AS score"
        f" FROM artifact_search AS s, {_QUERY} AS q, artifacts AS a"
        f" WHERE s.namespace = %(namespace)s::text AND s.{vector} @@ q"
        " AND a.namespace = s.namespace AND a.id = s.artifact_id"
        " AND (%(owner)s::text IS NULL OR a.owner = %(owner)s::text)"
        + _times("a.create_time")
        + " ORDER BY score DESC, s.artifact_id LIMIT %(limit)s"
    )


SEARCHES = {
    SearchKind.RECORD: RECORDS,
    SearchKind.TRANSCRIPT_ENTRY: ENTRIES,
    SearchKind.ARTIFACT: _artifacts("meta_search"),
    SearchKind.ARTIFACT_TEXT: _artifacts("body_search"),
}

_PAIRS: LiteralString = "SELECT * FROM unnest(%s::text[], %s::text[])"
TEXTS: dict[SearchKind, LiteralString] = {
    SearchKind.RECORD: "SELECT collection, id, data FROM records "
    f"WHERE namespace = %s AND (collection, id) IN ({_PAIRS})",
    SearchKind.TRANSCRIPT_ENTRY: "SELECT transcript_id, seq, content FROM transcript_entries "
    "WHERE namespace = %(ns)s AND (transcript_id, seq) IN "
    "(SELECT * FROM unnest(%(ids)s::text[], %(seqs)s::bigint[]))"
    " UNION ALL SELECT transcript_id, seq, content FROM archived_entries "
    "WHERE namespace = %(ns)s AND (transcript_id, seq) IN "
    "(SELECT * FROM unnest(%(ids)s::text[], %(seqs)s::bigint[]))",
    SearchKind.ARTIFACT: "SELECT artifact_id, name, labels FROM artifact_search "
    f"WHERE namespace = %s AND (artifact_id, name) IN ({_PAIRS})",
    SearchKind.ARTIFACT_TEXT: "SELECT artifact_id, name, coalesce(body, '') FROM artifact_search "
    f"WHERE namespace = %s AND (artifact_id, name) IN ({_PAIRS})",
}
INDEXED: LiteralString = (
    "SELECT artifact_id FROM artifact_search WHERE namespace = %s AND body IS NOT NULL"
    " AND artifact_id = ANY(%s)"
)
SET_TEXT: LiteralString = (
    "UPDATE artifact_search SET body = %s WHERE namespace = %s AND artifact_id = %s"
)


class PostgresSearch:
    """`SearchIndex` over PostgreSQL."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    @borrowing()
    async def search_kind(self, conn: Conn, namespace: str, query: KindQuery) -> list[KindHit]:
        request, kind = query.request, query.kind
        if query.limit <= 0 or not request.text.strip():
            return []
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
        cursor = await conn.execute(SEARCHES[kind], params, prepare=True)
        return [
            KindHit(kind, (first, second), float(score), owner, at)
            for first, second, at, owner, score in await cursor.fetchall()
        ]

    @borrowing()
    async def hit_texts(
        self, conn: Conn, namespace: str, kind: SearchKind, targets: Sequence[Target]
    ) -> dict[Target, list[str]]:
        if not targets:
            return {}
        firsts = [target[0] for target in targets]
        seconds = [target[1] for target in targets]
        params: Any = (namespace, firsts, seconds)
        if kind is SearchKind.TRANSCRIPT_ENTRY:
            params = {"ns": namespace, "ids": firsts, "seqs": seconds}
        cursor = await conn.execute(TEXTS[kind], params, prepare=True)
        rows = await cursor.fetchall()
        if kind is SearchKind.RECORD:
            return {(c, id): string_values(_json(data)) for c, id, data in rows}
        if kind is SearchKind.ARTIFACT:
            return {(id, name): [name, labels] for id, name, labels in rows}
        return {(first, second): [text] for first, second, text in rows}

    @borrowing(transaction=True, writes=True)
    async def set_artifact_text(
        self, conn: Conn, namespace: str, artifact_id: str, text: str
    ) -> bool:
        cursor = await conn.execute(SET_TEXT, (text, namespace, artifact_id), prepare=True)
        return cursor.rowcount > 0

    @borrowing()
    async def indexed_artifacts(self, conn: Conn, namespace: str, ids: Sequence[str]) -> set[str]:
        cursor = await conn.execute(INDEXED, (namespace, list(ids)), prepare=True)
        return {row[0] for row in await cursor.fetchall()}


def _json(data: Any) -> Any:
    return json.loads(data) if isinstance(data, str | bytes) else data
