"""Record reads: get, batch get, list, count and full-text search.

Each runs as one statement on an autocommit connection (one round trip, no
BEGIN/COMMIT) and fetches binary results: jsonb arrives as the JSON text, parsed once
into the record's data, and timestamptz as integers, read as UTC datetimes (the pool
sets the session TimeZone to UTC). Only live rows are visible.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

from strata_server.core import change_cursors as feed
from strata_server.core.errors import Conflict, NotFound
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
from strata_server.storage.postgres import changes, commit, queries
from strata_server.storage.postgres.dialect import POSTGRES
from strata_server.storage.postgres.indexes import IndexedPaths
from strata_server.storage.postgres.pool import Conn, Runner, borrowing
from strata_server.storage.postgres.record_rows import (
    now,
    record_from_row,
)
from strata_server.storage.sqlquery import compile_list, compile_where

COMMIT_ATTEMPTS = 4
"""How often a commit that lost a race to a concurrent transaction is tried."""


class PostgresRecords:
    """`RecordStore` over PostgreSQL."""

    def __init__(
        self, runner: Runner, indexed: IndexedPaths, quotas: QuotaStore, *, max_record_bytes: int
    ) -> None:
        self.runner = runner
        self._indexed = indexed
        self._quotas = quotas
        self._max_record_bytes = max_record_bytes

    @borrowing()
    async def get_record(self, conn: Conn, namespace: str, collection: str, id: str) -> Record:
        cursor = await conn.execute(
            queries.GET_RECORD, (namespace, collection, id, now()), prepare=True, binary=True
        )
        row = await cursor.fetchone()
        if row is None:
            raise NotFound(f"record {collection}/{id} does not exist")
        return record_from_row(namespace, row)

    @borrowing()
    async def batch_get_records(
        self, conn: Conn, namespace: str, collection: str, ids: Sequence[str]
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

    @borrowing()
    async def list_records(self, conn: Conn, namespace: str, query: ListQuery) -> Page[Record]:
        sql = compile_list(await self._indexed.dialect(conn), query)
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

    @borrowing()
    async def count_records(
        self, conn: Conn, namespace: str, collection: str, filter: Filter | None
    ) -> int:
        where, params = compile_where(await self._indexed.dialect(conn), filter)
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

    @borrowing()
    async def search_records(
        self, conn: Conn, namespace: str, query: SearchQuery
    ) -> Page[SearchHit]:
        cursor = await conn.execute(
            queries.SEARCH_RECORDS,
            (query.text, namespace, query.collection, now(), query.offset, query.limit + 1),
            prepare=True,
            binary=True,
        )
        rows = await cursor.fetchall()
        hits = [SearchHit(record_from_row(namespace, row), float(row[8])) for row in rows]
        if len(hits) > query.limit:
            return Page(hits[: query.limit], (query.offset + query.limit,))
        return Page(hits)

    @borrowing()
    async def changes_head(self, conn: Conn, namespace: str) -> str:
        """The cursor below which every transaction has ended (changes.py)."""
        cursor = await conn.execute(changes.HEAD, prepare=True)
        row = await cursor.fetchone()
        assert row is not None
        return changes.cursor_of(row[0], 0)

    @borrowing()
    async def record_changes(
        self,
        conn: Conn,
        namespace: str,
        collection: str,
        after: str,
        filter: Filter | None,
        limit: int,
    ) -> ChangeBatch:
        """Settled changes after `after`, in (xact, seq) order; CursorExpired past the
        audit log's horizon (changes.py)."""
        dialect = await self._indexed.dialect(conn)
        xact, seq = changes.parse_cursor(after)
        prefix = f"{collection}/"
        params = {
            "namespace": namespace,
            "collection": collection,
            "prefix": prefix,
            "after_prefix": f"{collection}0",
            "id_at": len(prefix) + 1,
            "xact": str(xact),
            "seq": seq,
            "limit": limit,
        }
        cursor = await conn.execute(changes.CHANGES, params, prepare=True)
        rows = [
            feed.AuditRow(
                feed.ChangeEntry(
                    changes.cursor_of(xact_text, row_seq), action, entity_id, version, at, gone
                ),
                POSTGRES.array_value(ids),
                POSTGRES.array_value(versions),
            )
            for xact_text, row_seq, action, entity_id, version, at, gone, ids, versions in (
                await cursor.fetchall()
            )
        ]
        await changes.check_horizon(conn, namespace, after)
        if not rows:
            return ChangeBatch((), after)
        entries, read_on = feed.expand(rows, feed.within_row(after, changes.ROW_CURSOR), limit)
        live = await changes.matching(
            conn, namespace, collection, feed.ids_to_read(collection, entries), filter, dialect
        )
        found = feed.to_changes(collection, entries, live, filtered=filter is not None)
        return ChangeBatch(found, read_on)

    @borrowing()
    async def changes_pending(self, conn: Conn, namespace: str, collection: str) -> bool:
        """Whether committed changes wait for an older transaction to end (changes.py)."""
        cursor = await conn.execute(
            changes.PENDING, (namespace, f"{collection}/", f"{collection}0"), prepare=True
        )
        row = await cursor.fetchone()
        return bool(row and row[0])

    async def commit(self, request: CommitRequest) -> list[WriteResult]:
        """A Conflict (a concurrent transaction created a key this one meant to insert,
        or a serialization failure) rolled everything back, so the commit is retried
        here a few times: the next attempt sees the other transaction's rows and
        decides again (an upsert becomes an update, a create AlreadyExists). Creates
        of new keys first try the optimistic path (commit.optimistic)."""
        attempts = self._commit(request)
        return await explained(request.namespace, self._quotas.list_quotas, attempts)

    async def _commit(self, request: CommitRequest) -> list[WriteResult]:
        assume_new = commit.optimistic(request.writes)
        for attempt in range(1, COMMIT_ATTEMPTS + 1):

            async def work(conn: Conn, new: bool = assume_new) -> list[WriteResult]:
                return await commit.commit(
                    conn, request, max_record_bytes=self._max_record_bytes, assume_new=new
                )

            single = commit.alone(request, assume_new)
            try:
                return await self.runner.run(work, transaction=not single, writes=single)
            except commit.ExistingRows:
                assume_new = False  # rolled back; decide again against the stored rows
                continue
            except Conflict:
                if attempt == COMMIT_ATTEMPTS:
                    raise
                await asyncio.sleep(random.uniform(0, 0.002 * attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    @borrowing()
    async def purge_expired(self, conn: Conn, limit: int) -> list[RecordRef]:
        return await commit.purge_expired(conn, limit)
