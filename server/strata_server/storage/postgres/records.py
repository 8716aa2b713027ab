"""Record reads: get, batch get, list, count and full-text search.

Each runs as one statement on an autocommit connection (one round trip, no
BEGIN/COMMIT) and fetches binary results: jsonb arrives as the JSON text, parsed once
into the record's data, and timestamptz as integers, read as UTC datetimes (the pool
sets the session TimeZone to UTC). Only live rows are visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from strata_server.core.errors import NotFound
from strata_server.core.filters import Filter
from strata_server.core.models import ListQuery, Page, Record, SearchHit, SearchQuery
from strata_server.storage.postgres import queries
from strata_server.storage.postgres.dialect import PostgresDialect
from strata_server.storage.postgres.pool import Conn
from strata_server.storage.sqlquery import compile_list, compile_where


def now() -> datetime:
    """The current time at the microsecond precision timestamptz stores."""
    return datetime.now(UTC)


def record_from_row(namespace: str, row: Sequence[Any]) -> Record:
    """A Record from the first columns of a row selected with `queries.RECORD_COLUMNS`."""
    return Record(namespace, row[0], row[1], row[2], row[3], row[4], row[5], row[6])


async def get_record(conn: Conn, namespace: str, collection: str, id: str) -> Record:
    cursor = await conn.execute(
        queries.GET_RECORD, (namespace, collection, id, now()), prepare=True, binary=True
    )
    row = await cursor.fetchone()
    if row is None:
        raise NotFound(f"record {collection}/{id} does not exist")
    return record_from_row(namespace, row)


async def batch_get_records(
    conn: Conn, namespace: str, collection: str, ids: Sequence[str]
) -> list[Record]:
    if not ids:
        return []
    cursor = await conn.execute(
        queries.BATCH_GET_RECORDS,
        (namespace, collection, list(ids), now()),
        prepare=True,
        binary=True,
    )
    return [record_from_row(namespace, row) for row in await cursor.fetchall()]


async def list_records(
    conn: Conn, namespace: str, query: ListQuery, dialect: PostgresDialect
) -> Page[Record]:
    sql = compile_list(dialect, query)
    cursor = await conn.execute(
        queries.list_records(sql.key_columns, sql.where, sql.order_by),
        [namespace, query.collection, now(), *sql.params, query.limit + 1],
        # Never prepared: a generic plan cannot see which filter values are rare, and
        # measured 10-12 ms where the custom plan took 2.5 ms (bench/records.py).
        prepare=False,
        binary=True,
    )
    rows = await cursor.fetchall()
    items = [record_from_row(namespace, row) for row in rows[: query.limit]]
    last_key = None
    if len(rows) > query.limit and items:
        last_key = tuple(rows[query.limit - 1][-sql.key_count :])
    return Page(items, last_key)


async def count_records(
    conn: Conn, namespace: str, collection: str, filter: Filter | None, dialect: PostgresDialect
) -> int:
    where, params = compile_where(dialect, filter)
    cursor = await conn.execute(
        queries.count_records(where),
        [namespace, collection, now(), *params],
        prepare=False,  # as list_records: custom plans for caller-chosen filters
        binary=True,
    )
    row = await cursor.fetchone()
    assert row is not None  # count(*) always returns a row
    count: int = row[0]
    return count


async def search_records(conn: Conn, namespace: str, query: SearchQuery) -> Page[SearchHit]:
    cursor = await conn.execute(
        queries.SEARCH_RECORDS,
        (query.text, namespace, query.collection, now(), query.offset, query.limit + 1),
        prepare=True,
        binary=True,
    )
    rows = await cursor.fetchall()
    hits = [SearchHit(record_from_row(namespace, row), float(row[7])) for row in rows]
    if len(hits) > query.limit:
        return Page(hits[: query.limit], (query.offset + query.limit,))
    return Page(hits)
