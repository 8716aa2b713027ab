"""Record reads: get, batch get, list, count and full-text search.

Each operation has one fixed SQL text (so sqlite3's statement cache reuses the
prepared statement), except list and count, whose WHERE/ORDER BY come from the shared
compiler `storage.sqlquery`. Only live rows are visible:
`expire_time IS NULL OR expire_time > now`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from strata_server.core.errors import NotFound
from strata_server.core.filters import Filter
from strata_server.core.models import ListQuery, Page, Record, SearchHit, SearchQuery
from strata_server.storage.sqlite.connection import Connections, Row
from strata_server.storage.sqlite.dialect import SQLITE, from_micros, to_micros
from strata_server.storage.sqlquery import compile_list, compile_where

RECORD_COLUMNS = "namespace, collection, id, data, version, create_time, update_time, expire_time"
"""The columns `record_from_row` reads, in its order."""

LIVE = "(expire_time IS NULL OR expire_time > ?)"

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
       r.expire_time, bm25(records_fts) AS score
FROM records_fts JOIN records AS r ON r.rowid = records_fts.rowid
WHERE records_fts MATCH ? AND r.namespace = ? AND r.collection = ?
  AND (r.expire_time IS NULL OR r.expire_time > ?)
ORDER BY score, r.rowid
LIMIT ? OFFSET ?
"""


def now_micros() -> int:
    """The current time as the integer microseconds the time columns hold."""
    return to_micros(datetime.now(UTC))


def record_from_row(row: Row) -> Record:
    """A Record from the first eight columns of a row selected with RECORD_COLUMNS."""
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
    )


def match_expression(text: str) -> str:
    """A safe FTS5 query for free text: every whitespace-separated term quoted as a
    string, so all terms must match and no FTS5 syntax (AND, NEAR, *, ^, col:) leaks."""
    return " ".join('"' + term.replace('"', '""') + '"' for term in text.split())


async def get_record(db: Connections, namespace: str, collection: str, id: str) -> Record:
    rows = await db.fetchall(GET_RECORD, (namespace, collection, id, now_micros()))
    if not rows:
        raise NotFound(f"record {collection}/{id} does not exist")
    return record_from_row(rows[0])


async def batch_get_records(
    db: Connections, namespace: str, collection: str, ids: Sequence[str]
) -> list[Record]:
    if not ids:
        return []
    params = (namespace, collection, json.dumps(list(ids)), now_micros())
    return [record_from_row(row) for row in await db.fetchall(BATCH_GET_RECORDS, params)]


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


async def list_records(db: Connections, namespace: str, query: ListQuery) -> Page[Record]:
    if query.limit <= 0:
        return Page(())
    text, params, key_count = list_statement(namespace, query)
    rows = await db.fetchall(text, params)
    served = rows[: query.limit]
    last_key = tuple(served[-1][-key_count:]) if len(rows) > query.limit else None
    return Page([record_from_row(row) for row in served], last_key)


async def count_records(
    db: Connections, namespace: str, collection: str, filter: Filter | None
) -> int:
    where, where_params = compile_where(SQLITE, filter)
    text = (
        "SELECT count(*) FROM records "
        f"WHERE namespace = ? AND collection = ? AND {LIVE} AND {where}"
    )
    rows = await db.fetchall(text, [namespace, collection, now_micros(), *where_params])
    return int(rows[0][0])


async def search_records(db: Connections, namespace: str, query: SearchQuery) -> Page[SearchHit]:
    match = match_expression(query.text)
    if not match or query.limit <= 0:
        return Page(())
    params = (match, namespace, query.collection, now_micros(), query.limit + 1, query.offset)
    rows = await db.fetchall(SEARCH_RECORDS, params)
    hits = [SearchHit(record_from_row(row), -row[8]) for row in rows[: query.limit]]
    more = len(rows) > query.limit
    return Page(hits, (query.offset + query.limit,) if more else None)
