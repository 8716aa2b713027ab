"""Record reads: get, batch get, list, count and full-text search.

Each operation has one fixed SQL text (so sqlite3's statement cache reuses the
prepared statement), except list and count, whose WHERE/ORDER BY come from the shared
compiler `storage.sqlquery`. Only live rows are visible:
`expire_time IS NULL OR expire_time > now`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from strata_server.core import change_cursors as feed
from strata_server.core.errors import NotFound
from strata_server.core.filters import Filter
from strata_server.core.models import (
    ChangeBatch,
    ListQuery,
    Page,
    Record,
    RecordRef,
    SearchHit,
    SearchQuery,
    WriteResult,
)
from strata_server.core.quota_rules import explained
from strata_server.storage.ports import CommitRequest, QuotaStore
from strata_server.storage.sqlite import changes, commit
from strata_server.storage.sqlite.connection import Connections
from strata_server.storage.sqlite.dialect import SQLITE, from_micros
from strata_server.storage.sqlite.record_rows import (
    LIVE,
    RECORD_COLUMNS,
    match_expression,
    now_micros,
    record_from_row,
)
from strata_server.storage.sqlquery import compile_list, compile_where

GET_RECORD = f"""
SELECT {RECORD_COLUMNS} FROM records
WHERE namespace = ? AND collection = ? AND id = ? AND {LIVE}
"""

BATCH_GET_RECORDS = f"""
SELECT {RECORD_COLUMNS} FROM records
WHERE namespace = ? AND collection = ? AND id IN (SELECT value FROM json_each(?)) AND {LIVE}
"""

SEARCH_RECORDS = """
SELECT r.namespace, r.collection, r.id, r.data, r.version, r.create_time, r.update_time,
       r.expire_time, r.owner, bm25(records_fts) AS score
FROM records_fts JOIN records AS r ON r.rowid = records_fts.rowid
WHERE records_fts MATCH ? AND r.namespace = ? AND r.collection = ?
  AND (r.expire_time IS NULL OR r.expire_time > ?)
ORDER BY score, r.rowid
LIMIT ? OFFSET ?
"""


def list_statement(namespace: str, query: ListQuery) -> tuple[str, list[object], int]:
    """The SELECT of ListRecords, its parameters and how many page-key columns end
    each row (also EXPLAINed by the tests that show declared indexes in its plan)."""
    sql = compile_list(SQLITE, query)
    text = (
        f"SELECT {RECORD_COLUMNS}, {sql.key_columns} FROM records "
        f"WHERE namespace = ? AND collection = ? AND {LIVE} AND {sql.where} "
        f"ORDER BY {sql.order_by} LIMIT ?"
    )
    params = [namespace, query.collection, now_micros(), *sql.params, query.limit + 1]
    return text, params, sql.key_count


class SqliteRecords:
    """`RecordStore` over SQLite."""

    def __init__(self, db: Connections, quotas: QuotaStore, *, max_record_bytes: int) -> None:
        self._db = db
        self._quotas = quotas
        self._max_record_bytes = max_record_bytes

    async def get_record(self, namespace: str, collection: str, id: str) -> Record:
        rows = await self._db.fetchall(GET_RECORD, (namespace, collection, id, now_micros()))
        if not rows:
            raise NotFound(f"record {collection}/{id} does not exist")
        return record_from_row(rows[0])

    async def batch_get_records(
        self, namespace: str, collection: str, ids: Sequence[str]
    ) -> list[Record]:
        if not ids:
            return []
        params = (namespace, collection, json.dumps(list(ids)), now_micros())
        return [record_from_row(row) for row in await self._db.fetchall(BATCH_GET_RECORDS, params)]

    async def list_records(self, namespace: str, query: ListQuery) -> Page[Record]:
        if query.limit <= 0:
            return Page(())
        text, params, key_count = list_statement(namespace, query)
        rows = await self._db.fetchall(text, params)
        served = rows[: query.limit]
        last_key = tuple(served[-1][-key_count:]) if len(rows) > query.limit else None
        return Page([record_from_row(row) for row in served], last_key)

    async def count_records(self, namespace: str, collection: str, filter: Filter | None) -> int:
        where, where_params = compile_where(SQLITE, filter)
        text = (
            "SELECT count(*) FROM records "
            f"WHERE namespace = ? AND collection = ? AND {LIVE} AND {where}"
        )
        rows = await self._db.fetchall(text, [namespace, collection, now_micros(), *where_params])
        return int(rows[0][0])

    async def search_records(self, namespace: str, query: SearchQuery) -> Page[SearchHit]:
        match = match_expression(query.text)
        if not match or query.limit <= 0:
            return Page(())
        params = (match, namespace, query.collection, now_micros(), query.limit + 1, query.offset)
        rows = await self._db.fetchall(SEARCH_RECORDS, params)
        hits = [SearchHit(record_from_row(row), -row[9]) for row in rows[: query.limit]]
        more = len(rows) > query.limit
        return Page(hits, (query.offset + query.limit,) if more else None)

    async def changes_head(self, namespace: str) -> str:
        """The cursor of the newest audit entry (changes.py)."""
        rows = await self._db.fetchall(changes.HEAD, ())
        return f"s{rows[0][0]}"

    async def record_changes(
        self, namespace: str, collection: str, after: str, filter: Filter | None, limit: int
    ) -> ChangeBatch:
        """Changes after `after`, in commit (= seq) order; CursorExpired past the
        audit log's horizon (changes.py)."""
        seq = changes.parse_cursor(after)
        found_rows = await self._db.fetchall(
            changes.CHANGES,
            (
                seq,
                namespace,
                f"{collection}/",
                f"{collection}0",
                limit,
                collection,
                len(collection) + 2,
            ),
        )
        await changes.check_horizon(self._db, namespace, after)
        if not found_rows:
            return ChangeBatch((), after)
        rows = [
            feed.AuditRow(
                feed.ChangeEntry(
                    f"s{row_seq}", action, entity_id, version, from_micros(at), bool(gone)
                ),
                SQLITE.array_value(ids),
                SQLITE.array_value(versions),
            )
            for row_seq, action, entity_id, version, at, gone, ids, versions in found_rows
        ]
        entries, read_on = feed.expand(rows, feed.within_row(after, changes.ROW_CURSOR), limit)
        live = await changes.matching(
            self._db, namespace, collection, feed.ids_to_read(collection, entries), filter
        )
        found = feed.to_changes(collection, entries, live, filtered=filter is not None)
        return ChangeBatch(found, read_on)

    async def changes_pending(self, namespace: str, collection: str) -> bool:
        """Never: writes commit one at a time, in seq order, so a committed change
        can be read at once."""
        return False

    async def commit(self, request: CommitRequest) -> list[WriteResult]:
        """One write transaction (the one writer serializes them)."""
        work = commit.commit(self._db, request, max_record_bytes=self._max_record_bytes)
        return await explained(request.namespace, self._quotas.list_quotas, work)

    async def purge_expired(self, limit: int) -> list[RecordRef]:
        return await commit.purge_expired(self._db, limit)
