"""Storage against a real throwaway PostgreSQL 15 server (tests/support/pg.py).

One server per module, schema from migrations/postgres/0001_records.sql; every test
works in its own namespace, so tests do not see each other's rows.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from yoyo import get_backend, read_migrations

from strata_server.core.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    TooLarge,
    Unavailable,
    VersionConflict,
)
from strata_server.core.filters import parse_filter, parse_order_by
from strata_server.core.models import (
    EXPIRE_TIME_PATH,
    Actor,
    CreateRecord,
    Deleted,
    DeleteRecord,
    Idempotency,
    ListQuery,
    Record,
    RecordRef,
    SearchQuery,
    UpdateRecord,
    Write,
)
from strata_server.storage.composite import Storage
from strata_server.storage.postgres import indexes, open_postgres, queries
from strata_server.storage.postgres.dialect import PostgresDialect
from strata_server.storage.sqlquery import compile_list
from tests.support.pg import PgServer

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations" / "postgres"
ACTOR = Actor("tester")
MAX_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    server = PgServer()
    server.start()
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute((MIGRATIONS / "0001_records.sql").read_text())
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
async def db(pg: PgServer) -> AsyncIterator[Storage]:
    database = await open_postgres(pg.dsn, max_record_bytes=MAX_BYTES)
    yield database
    await database.close()


@pytest.fixture
def ns() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


async def create(db: Storage, ns: str, id: str, data: dict[str, Any], **kw: Any) -> Record:
    [record] = await db.records.commit(ns, [CreateRecord("c", id, data, **kw)], actor=ACTOR)
    assert isinstance(record, Record)
    return record


async def sql(pg: PgServer, query: str, *params: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(pg.dsn, autocommit=True) as conn:
        cursor = await conn.execute(query, params)
        return await cursor.fetchall() if cursor.description else []


async def test_create_get_update_merge_delete(db: Storage, ns: str) -> None:
    created = await create(db, ns, "a", {"title": "hello", "n": 1, "nested": {"x": 1}})
    assert created.version == 1 and created.create_time == created.update_time
    assert await db.records.get_record(ns, "c", "a") == created

    [merged] = await db.records.commit(
        ns,
        [UpdateRecord("c", "a", {"n": 2, "nested": {"y": 2}}, paths=(("n",), ("nested", "y")))],
        actor=ACTOR,
    )
    assert isinstance(merged, Record)
    assert merged.data == {"title": "hello", "n": 2, "nested": {"x": 1, "y": 2}}
    assert merged.version == 2 and merged.create_time == created.create_time
    assert await db.records.get_record(ns, "c", "a") == merged

    [replaced] = await db.records.commit(ns, [UpdateRecord("c", "a", {"only": True})], actor=ACTOR)
    assert isinstance(replaced, Record) and replaced.data == {"only": True}
    assert replaced.version == 3

    [deleted] = await db.records.commit(
        ns, [DeleteRecord("c", "a", expected_version=3)], actor=ACTOR
    )
    assert deleted == Deleted("c", "a", True)
    with pytest.raises(NotFound, match="record c/a does not exist"):
        await db.records.get_record(ns, "c", "a")
    [again] = await db.records.commit(ns, [DeleteRecord("c", "a", allow_missing=True)], actor=ACTOR)
    assert again == Deleted("c", "a", False)

    [upserted] = await db.records.commit(
        ns, [UpdateRecord("c", "a", {"v": 1}, allow_missing=True)], actor=ACTOR
    )
    assert isinstance(upserted, Record) and upserted.version == 1


async def test_errors_carry_write_index_and_details(db: Storage, ns: str) -> None:
    await create(db, ns, "a", {"n": 1})
    await db.records.commit(ns, [UpdateRecord("c", "a", {"n": 2})], actor=ACTOR)
    with pytest.raises(VersionConflict) as conflict:
        await db.records.commit(
            ns,
            [CreateRecord("c", "b", {}), UpdateRecord("c", "a", {"n": 3}, expected_version=1)],
            actor=ACTOR,
        )
    assert conflict.value.current_version == 2
    assert conflict.value.metadata == {"current_version": "2", "write_index": "1"}
    with pytest.raises(AlreadyExists) as exists:
        await create(db, ns, "a", {})
    assert exists.value.metadata["write_index"] == "0"
    with pytest.raises(TooLarge):
        await create(db, ns, "big", {"s": "x" * MAX_BYTES})
    with pytest.raises(InvalidArgument) as nul:
        await db.records.commit(
            ns,
            [CreateRecord("c", "ok", {}), CreateRecord("c", "nul", {"s": "a\x00b"})],
            actor=ACTOR,
        )
    assert nul.value.metadata["write_index"] == "1"
    assert nul.value.violations[0].field == "data"
    # A literal backslash followed by "u0000" is fine.
    await create(db, ns, "backslash", {"s": "\\u0000"})
    assert (await db.records.get_record(ns, "c", "backslash")).data == {"s": "\\u0000"}


async def test_failed_write_leaves_nothing(db: Storage, pg: PgServer, ns: str) -> None:
    with pytest.raises(NotFound) as missing:
        await db.records.commit(
            ns,
            [CreateRecord("c", "a", {"n": 1}), UpdateRecord("c", "missing", {"n": 2})],
            actor=ACTOR,
        )
    assert missing.value.metadata["write_index"] == "1"
    with pytest.raises(NotFound):
        await db.records.get_record(ns, "c", "a")
    assert await sql(pg, "SELECT * FROM audit_log WHERE namespace = %s", ns) == []


async def test_audit_rows_in_write_order(db: Storage, pg: PgServer, ns: str) -> None:
    await db.records.commit(
        ns,
        [
            CreateRecord("c", "b", {"x": 1, "y": 2}),
            CreateRecord("c", "a", {"x": 1}),
            UpdateRecord("c", "b", {"x": 5, "y": 2}),
            DeleteRecord("c", "a"),
        ],
        actor=ACTOR,
        idempotency=Idempotency("req-1", "fp"),
    )
    rows = await sql(
        pg,
        "SELECT actor, action, entity, entity_id, version, changed_fields, request_id "
        "FROM audit_log WHERE namespace = %s ORDER BY seq",
        ns,
    )
    assert rows == [
        ("tester", "create", "record", "c/b", 1, ["data.x", "data.y"], "req-1"),
        ("tester", "create", "record", "c/a", 1, ["data.x"], "req-1"),
        ("tester", "update", "record", "c/b", 2, ["data.x"], "req-1"),
        ("tester", "delete", "record", "c/a", 1, ["data.x"], "req-1"),
    ]
    assert (await db.records.get_record(ns, "c", "b")).data == {"x": 5, "y": 2}


async def test_concurrent_updates_one_winner_per_version(db: Storage, ns: str) -> None:
    await create(db, ns, "hot", {"count": 0})

    async def update_expecting_1() -> Any:
        try:
            return await db.records.commit(
                ns, [UpdateRecord("c", "hot", {"count": 1}, expected_version=1)], actor=ACTOR
            )
        except VersionConflict as error:
            return error

    outcomes = await asyncio.gather(*(update_expecting_1() for _ in range(50)))
    winners = [o for o in outcomes if not isinstance(o, VersionConflict)]
    assert len(winners) == 1
    assert all(o.current_version == 2 for o in outcomes if isinstance(o, VersionConflict))

    # Read-modify-write loops: no increment is lost, every version has one writer.
    async def increment() -> int:
        while True:
            current = await db.records.get_record(ns, "c", "hot")
            try:
                [result] = await db.records.commit(
                    ns,
                    [
                        UpdateRecord(
                            "c",
                            "hot",
                            {"count": current.data["count"] + 1},
                            expected_version=current.version,
                        )
                    ],
                    actor=ACTOR,
                )
            except VersionConflict:
                continue
            assert isinstance(result, Record)
            return result.version

    versions = await asyncio.gather(*(increment() for _ in range(50)))
    assert sorted(versions) == list(range(3, 53))
    final = await db.records.get_record(ns, "c", "hot")
    assert final.version == 52 and final.data == {"count": 51}


async def test_concurrent_creates_one_winner(db: Storage, ns: str) -> None:
    async def attempt(i: int) -> Any:
        try:
            return await create(db, ns, "same", {"by": i})
        except AlreadyExists as error:
            return error

    outcomes = await asyncio.gather(*(attempt(i) for i in range(30)))
    winners = [o for o in outcomes if isinstance(o, Record)]
    losers = [o for o in outcomes if isinstance(o, AlreadyExists)]
    assert len(winners) == 1 and len(losers) == 29
    assert all(error.metadata["write_index"] == "0" for error in losers)
    assert await db.records.get_record(ns, "c", "same") == winners[0]


async def test_idempotent_commit(db: Storage, pg: PgServer, ns: str) -> None:
    writes: list[Write] = [
        CreateRecord("c", "a", {"n": 1}),
        DeleteRecord("c", "zz", allow_missing=True),
    ]
    key = Idempotency("req-1", "fingerprint-1")
    first = await db.records.commit(ns, writes, actor=ACTOR, idempotency=key)
    again = await db.records.commit(ns, writes, actor=ACTOR, idempotency=key)
    assert again == first
    with pytest.raises(InvalidArgument) as reused:
        await db.records.commit(ns, writes, actor=ACTOR, idempotency=Idempotency("req-1", "other"))
    assert reused.value.violations[0].field == "request_id"

    # Concurrent retries of one new request: one execution, the same answer for all.
    key2 = Idempotency("req-2", "fingerprint-2")
    results = await asyncio.gather(
        *(
            db.records.commit(ns, [UpdateRecord("c", "a", {"n": 2})], actor=ACTOR, idempotency=key2)
            for _ in range(10)
        )
    )
    assert all(result == results[0] for result in results)
    assert (await db.records.get_record(ns, "c", "a")).version == 2
    audits = await sql(pg, "SELECT count(*) FROM audit_log WHERE namespace = %s", ns)
    assert audits == [(3,)]


async def test_list_pages_with_filter_and_order_while_inserting(db: Storage, ns: str) -> None:
    await db.records.commit(
        ns,
        [
            CreateRecord("c", f"r{i:02d}", {"kind": "a" if i % 2 else "b", "rank": i})
            for i in range(20)
        ],
        actor=ACTOR,
    )
    base = ListQuery(
        "c",
        parse_filter('data.kind = "a"'),
        parse_order_by("data.rank desc"),
        limit=3,
    )
    seen: list[str] = []
    page = await db.records.list_records(ns, base)
    extra = 100
    while True:
        seen.extend(record.id for record in page.items)
        if page.last_key is None:
            break
        # Rows inserted behind the cursor (higher rank) must not show up; rows ahead
        # (lower rank, still to come) must.
        extra += 1
        await create(db, ns, f"late{extra}", {"kind": "a", "rank": 1000 + extra})
        await create(db, ns, f"early{extra}", {"kind": "a", "rank": -extra})
        page = await db.records.list_records(
            ns, ListQuery(base.collection, base.filter, base.order, base.limit, page.last_key)
        )
    odd = [f"r{i:02d}" for i in range(19, 0, -2)]
    assert seen[: len(odd)] == odd
    early = seen[len(odd) :]
    assert early == sorted(early, key=lambda id: int(id.removeprefix("early")))
    assert all(id.startswith("early") for id in early) and early
    assert len(seen) == len(set(seen))
    assert await db.records.count_records(ns, "c", parse_filter('data.kind = "b"')) == 10
    assert await db.records.count_records(ns, "c", None) == 20 + 2 * (extra - 100)


async def test_batch_get(db: Storage, ns: str) -> None:
    a = await create(db, ns, "a", {})
    b = await create(db, ns, "b", {})
    await create(db, ns, "gone", {}, expire_time=datetime.now(UTC) - timedelta(seconds=1))
    got = await db.records.batch_get_records(ns, "c", ["b", "a", "nope", "gone"])
    assert sorted(got, key=lambda r: r.id) == [a, b]
    assert await db.records.batch_get_records(ns, "c", []) == []


async def test_search(db: Storage, ns: str) -> None:
    await create(db, ns, "fox", {"text": "The quick brown fox", "tags": ["animal"]})
    await create(db, ns, "dog", {"text": "A lazy dog", "note": "quick quick quick"})
    await create(db, ns, "num", {"text": "nothing", "quick": 1})
    page = await db.records.search_records(ns, SearchQuery("c", "quick", limit=10))
    assert [hit.record.id for hit in page.items] == ["dog", "fox"]
    assert page.items[0].score > page.items[1].score and page.last_key is None
    both = await db.records.search_records(ns, SearchQuery("c", "quick fox", limit=10))
    assert [hit.record.id for hit in both.items] == ["fox"]
    first = await db.records.search_records(ns, SearchQuery("c", "quick", limit=1))
    assert [hit.record.id for hit in first.items] == ["dog"] and first.last_key == (1,)
    second = await db.records.search_records(ns, SearchQuery("c", "quick", limit=1, offset=1))
    assert [hit.record.id for hit in second.items] == ["fox"] and second.last_key is None
    assert (await db.records.search_records(ns, SearchQuery("c", "animal", limit=5))).items
    with pytest.raises(InvalidArgument):
        await db.records.search_records(ns, SearchQuery("c", "nul\x00", limit=5))


async def test_expiry_and_purge(db: Storage, pg: PgServer, ns: str) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    future = datetime.now(UTC) + timedelta(hours=1)
    await create(db, ns, "old", {"a": 1, "b": 2}, expire_time=past)
    kept = await create(db, ns, "kept", {}, expire_time=future)
    with pytest.raises(NotFound):
        await db.records.get_record(ns, "c", "old")
    assert await db.records.count_records(ns, "c", None) == 1
    # A create over an expired row replaces it (version starts again at 1).
    await create(db, ns, "again", {}, expire_time=past)
    [revived] = await db.records.commit(ns, [CreateRecord("c", "again", {"v": 2})], actor=ACTOR)
    assert isinstance(revived, Record) and revived.version == 1
    # A merge can clear the expiry.
    [cleared] = await db.records.commit(
        ns, [UpdateRecord("c", "kept", {}, paths=(EXPIRE_TIME_PATH,))], actor=ACTOR
    )
    assert isinstance(cleared, Record) and cleared.expire_time is None
    assert kept.expire_time == future

    purged = []
    while batch := await db.records.purge_expired(100):
        purged += batch
    assert RecordRef(ns, "c", "old") in purged
    assert await sql(pg, "SELECT id FROM records WHERE namespace = %s ORDER BY id", ns) == [
        ("again",),
        ("kept",),
    ]
    audits = await sql(
        pg,
        "SELECT actor, entity_id, version, changed_fields FROM audit_log "
        "WHERE namespace = %s AND action = 'expire'",
        ns,
    )
    assert audits == [("system", "c/old", 1, ["data.a", "data.b"])]
    assert await db.records.purge_expired(0) == []


async def test_facts_and_migrations_up_down_up(pg: PgServer, db: Storage) -> None:
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


async def test_database_restart(pg: PgServer, ns: str) -> None:
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


async def test_declared_index_serves_equality_with_identical_answers(
    pg: PgServer, db: Storage, ns: str
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


async def test_declaring_an_index_a_racing_caller_just_declared(pg: PgServer, ns: str) -> None:
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


async def _blocked_on_a_lock(pg: PgServer, pid: int) -> None:
    """Return once backend `pid` waits for a lock."""
    query = "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'"
    for _ in range(1000):
        if await sql(pg, query, pid):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited for a lock")
