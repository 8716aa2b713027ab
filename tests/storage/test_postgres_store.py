"""The PostgreSQL adapters' own paths (tests/ports holds what both engines share):
NUL characters, facts without yoyo and migrations up, down, up, an unreachable or
restarted server, declared indexes.

One database of the session's server per module, schema from
migrations/postgres/0001_records.sql and 0014_record_owners.sql; every test works in
its own namespace, so tests do not see each other's rows.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from yoyo import get_backend, read_migrations

from strata_server.core.errors import (
    InvalidArgument,
    Unavailable,
)
from strata_server.core.filters import parse_filter, parse_order_by
from strata_server.core.models import (
    Actor,
    CreateRecord,
    ListQuery,
    Record,
    SearchQuery,
)
from strata_server.storage.composite import Storage
from strata_server.storage.ports import CommitRequest
from strata_server.storage.postgres import indexes, open_postgres, queries
from strata_server.storage.postgres.dialect import PostgresDialect
from strata_server.storage.sqlquery import compile_list
from tests.storage.conftest import Database, database_with
from tests.support.pg import PgServer

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations" / "postgres"
ACTOR = Actor("tester")
MAX_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def pg(pg: Database) -> Database:
    return database_with(pg, "0001_records.sql", "0014_record_owners.sql")


@pytest.fixture(scope="module")
async def db(pg: Database) -> AsyncIterator[Storage]:
    database = await open_postgres(pg.dsn, max_record_bytes=MAX_BYTES)
    yield database
    await database.close()


@pytest.fixture
def ns() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


async def create(db: Storage, ns: str, id: str, data: dict[str, Any], **kw: Any) -> Record:
    [record] = await db.records.commit(
        CommitRequest(ns, [CreateRecord("c", id, data, **kw)], ACTOR)
    )
    assert isinstance(record, Record)
    return record


async def sql(pg: Database, query: str, *params: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(pg.dsn, autocommit=True) as conn:
        cursor = await conn.execute(query, params)
        return await cursor.fetchall() if cursor.description else []


async def test_nul_characters_are_invalid_arguments(db: Storage, ns: str) -> None:
    """PostgreSQL cannot store U+0000 in jsonb or text (SQLite can): a write or a
    search carrying one is InvalidArgument naming the field, not a driver error."""
    with pytest.raises(InvalidArgument) as nul:
        await db.records.commit(
            CommitRequest(
                ns, [CreateRecord("c", "ok", {}), CreateRecord("c", "nul", {"s": "a\x00b"})], ACTOR
            )
        )
    assert nul.value.metadata["write_index"] == "1"
    assert nul.value.violations[0].field == "data"
    with pytest.raises(InvalidArgument):
        await db.records.search_records(ns, SearchQuery("c", "nul\x00", limit=5))


async def test_facts_and_migrations_up_down_up(pg: Database, db: Storage) -> None:
    await db.ping()
    facts = await db.facts()
    assert facts.backend == "postgres" and facts.schema_version == "unknown"
    assert "idempotency" in facts.capabilities

    url = pg.create_database(f"mig_{uuid.uuid4().hex[:8]}")
    backend = get_backend(url.replace("postgresql://", "postgresql+psycopg://"))
    migrations = read_migrations(str(MIGRATIONS))
    with backend.lock():
        backend.apply_migrations(backend.to_apply(migrations))
        backend.rollback_migrations(backend.to_rollback(migrations))
        backend.apply_migrations(backend.to_apply(migrations))
    backend.connection.close()
    migrated = await open_postgres(url, max_record_bytes=MAX_BYTES, min_size=1)
    try:
        assert (await migrated.facts()).schema_version == migrations[-1].id
        await create(migrated, "default", "a", {"ok": True})
    finally:
        await migrated.close()


async def test_open_unreachable_is_unavailable() -> None:
    with pytest.raises(Unavailable):
        await open_postgres(
            "postgresql://postgres@127.0.0.1:1/postgres", max_record_bytes=1, pool_timeout=0.5
        )


async def test_database_restart(tmp_path: Path, ns: str) -> None:
    """A server of its own: this test stops and starts it."""
    pg = PgServer(tmp_path)
    pg.start()
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute((MIGRATIONS / "0001_records.sql").read_text())
        conn.execute((MIGRATIONS / "0014_record_owners.sql").read_text())
    db = await open_postgres(pg.dsn, max_record_bytes=MAX_BYTES, pool_timeout=0.5)
    try:
        record = await create(db, ns, "a", {"n": 1})
        pg.stop()
        with pytest.raises(Unavailable):
            await db.records.get_record(ns, "c", "a")
        with pytest.raises(Unavailable):
            await create(db, ns, "b", {})
        with pytest.raises(Unavailable):
            await db.ping()
        pg.start()
        deadline = asyncio.get_running_loop().time() + 15
        while True:
            try:
                assert await db.records.get_record(ns, "c", "a") == record
                break
            except Unavailable:
                if asyncio.get_running_loop().time() > deadline:
                    raise
        await create(db, ns, "b", {})
    finally:
        pg.start()
        await db.close()
        pg.cleanup()


async def test_declared_index_serves_equality_with_identical_answers(
    pg: Database, db: Storage, ns: str
) -> None:
    kinds = {"a": "x", "b": "y", "c": None, "d": 5, "e": "x"}
    for id, kind in kinds.items():
        await create(db, ns, id, {"kind": kind})
    await create(db, ns, "f", {})
    filters = [
        'data.kind = "x"',
        'NOT data.kind = "x"',
        "data.kind = 5",
        'data.kind = "x" OR id = "f"',
    ]

    async def answers(database: Storage) -> list[list[str]]:
        pages = []
        for text in filters:
            query = ListQuery("c", parse_filter(text), parse_order_by(""), 100)
            pages.append([r.id for r in (await database.records.list_records(ns, query)).items])
        return pages

    without = await answers(db)
    assert without[0] == ["a", "e"] and without[1] == ["b", "c", "d", "f"]
    await sql(
        pg,
        "CREATE INDEX IF NOT EXISTS records_kind ON records "
        "(namespace, collection, (data->'kind'), id)",
    )
    try:
        # A newly opened adapter reads the catalog on first use and sees the index.
        indexed = await open_postgres(pg.dsn, max_record_bytes=MAX_BYTES)
        try:
            assert await answers(indexed) == without
        finally:
            await indexed.close()
        async with await psycopg.AsyncConnection.connect(pg.dsn, autocommit=True) as conn:
            await conn.execute("SET enable_seqscan = off")  # the table is tiny here
            query = ListQuery("c", parse_filter('data.kind = "x"'), parse_order_by(""), 10)
            compiled = compile_list(PostgresDialect(frozenset({("kind",)})), query)
            text = queries.list_records(compiled.key_columns, compiled.where, compiled.order_by)
            cursor = await conn.execute(
                f"EXPLAIN {text}", [ns, "c", datetime.now(UTC), *compiled.params, 11]
            )
            plan = await cursor.fetchall()
        assert "records_kind" in " ".join(str(row[0]) for row in plan)
    finally:
        await sql(pg, "DROP INDEX records_kind")


async def test_declaring_an_index_a_racing_caller_just_declared(pg: Database, ns: str) -> None:
    """A declaration blocked on another's uncommitted declaration of the same index
    returns that one once it commits (its first statement saw neither row: the fuzz
    suite met it as INTERNAL from concurrent CreateIndex calls)."""
    if await sql(pg, "SELECT to_regclass('record_indexes') IS NULL") == [(True,)]:
        await sql(pg, (MIGRATIONS / "0006_record_indexes.sql").read_text())
    path = ("status",)
    async with (
        await psycopg.AsyncConnection.connect(pg.dsn) as first,
        await psycopg.AsyncConnection.connect(pg.dsn) as second,
    ):
        created = await indexes.declare(first, ns, "c", path, actor=ACTOR)  # not committed
        racing = asyncio.create_task(indexes.declare(second, ns, "c", path, actor=ACTOR))
        await _blocked_on_a_lock(pg, second.info.backend_pid)
        await first.commit()
        assert await racing == created
        await second.commit()
    assert await sql(pg, "SELECT count(*) FROM record_indexes WHERE namespace = %s", ns) == [(1,)]


async def _blocked_on_a_lock(pg: Database, pid: int) -> None:
    """Return once backend `pid` waits for a lock."""
    query = "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'"
    for _ in range(1000):
        if await sql(pg, query, pid):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited for a lock")
