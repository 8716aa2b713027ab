"""The SQLite adapter against real SQLite files built from the migration SQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

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
from strata_server.core.transcripts import AppendEntries, NewTranscript, new_entry
from strata_server.storage import migrations
from strata_server.storage.composite import Storage
from strata_server.storage.sqlite import open_sqlite
from strata_server.storage.sqlite.connection import Connections
from tests.support.wire import sent

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations" / "sqlite"
SCHEMA = (MIGRATIONS / "0001_records.sql").read_text()
ROLLBACK = (MIGRATIONS / "0001_records.rollback.sql").read_text()
NS = "default"
ALICE = Actor("alice")
PAST = datetime(2000, 1, 1, tzinfo=UTC)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "strata.db")


@pytest.fixture
async def db(db_path: str) -> AsyncIterator[Storage]:
    database = await open_sqlite(db_path, max_record_bytes=4096, readers=2, schema_sql=SCHEMA)
    yield database
    await database.close()


@contextlib.contextmanager
def raw(path: str) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(path)
    try:
        yield conn
    finally:
        conn.close()


async def create(
    db: Storage, id: str, data: dict[str, Any], *, collection: str = "tasks", **kw: Any
) -> Record:
    [result] = await db.records.commit(NS, [CreateRecord(collection, id, data, **kw)], actor=ALICE)
    assert isinstance(result, Record)
    return result


async def test_create_get_update_merge_delete(db: Storage) -> None:
    created = await create(db, "t1", {"title": "write tests", "meta": {"a": 1, "b": 2}})
    assert (created.version, created.create_time) == (1, created.update_time)
    assert await db.records.get_record(NS, "tasks", "t1") == created

    [merged] = await db.records.commit(
        NS,
        [UpdateRecord("tasks", "t1", {"meta": {"b": 3}}, paths=(("meta", "b"),))],
        actor=ALICE,
    )
    assert isinstance(merged, Record)
    assert merged.data == {"title": "write tests", "meta": {"a": 1, "b": 3}}
    assert merged.version == 2
    assert merged.create_time == created.create_time
    assert await db.records.get_record(NS, "tasks", "t1") == merged

    [deleted] = await db.records.commit(NS, [DeleteRecord("tasks", "t1")], actor=ALICE)
    assert deleted == Deleted("tasks", "t1", True)
    with pytest.raises(NotFound, match=r"record tasks/t1 does not exist"):
        await db.records.get_record(NS, "tasks", "t1")
    await create(db, "t2", {})
    with pytest.raises(AlreadyExists, match="tasks/t2 already exists"):
        await create(db, "t2", {})


async def test_batch_get_and_count(db: Storage) -> None:
    for i in range(5):
        await create(db, f"r{i}", {"n": i})
    await create(db, "other", {"n": 1}, collection="notes")
    got = await db.records.batch_get_records(NS, "tasks", ["r1", "r3", "missing", "r3"])
    assert sorted(r.id for r in got) == ["r1", "r3"]
    assert await db.records.batch_get_records(NS, "tasks", []) == []
    assert await db.records.count_records(NS, "tasks", None) == 5
    assert await db.records.count_records(NS, "tasks", parse_filter("data.n >= 3")) == 2
    assert await db.records.count_records("elsewhere", "tasks", None) == 0


async def test_version_conflict_carries_current_version(db: Storage) -> None:
    await create(db, "t1", {"v": 1})
    with pytest.raises(VersionConflict) as caught:
        await db.records.commit(
            NS, [UpdateRecord("tasks", "t1", {"v": 2}, expected_version=7)], actor=ALICE
        )
    assert caught.value.current_version == 1
    assert caught.value.metadata == {"current_version": "1", "write_index": "0"}
    with pytest.raises(VersionConflict):
        await db.records.commit(NS, [DeleteRecord("tasks", "t1", expected_version=2)], actor=ALICE)
    assert (await db.records.get_record(NS, "tasks", "t1")).data == {"v": 1}


async def test_expired_records_are_invisible(db: Storage) -> None:
    await create(db, "gone", {"word": "zebra"}, expire_time=PAST)
    await create(db, "kept", {"word": "zebra"}, expire_time=datetime.now(UTC) + timedelta(1))
    with pytest.raises(NotFound):
        await db.records.get_record(NS, "tasks", "gone")
    assert [r.id for r in await db.records.batch_get_records(NS, "tasks", ["gone", "kept"])] == [
        "kept"
    ]
    query = ListQuery("tasks", None, parse_order_by(""), limit=10)
    assert [r.id for r in (await db.records.list_records(NS, query)).items] == ["kept"]
    assert await db.records.count_records(NS, "tasks", None) == 1
    hits = await db.records.search_records(NS, SearchQuery("tasks", "zebra", limit=10))
    assert [hit.record.id for hit in hits.items] == ["kept"]
    with pytest.raises(NotFound):
        await db.records.commit(NS, [UpdateRecord("tasks", "gone", {})], actor=ALICE)


async def test_create_over_expired_record_replaces_it(db: Storage) -> None:
    await create(db, "t1", {"old": True}, expire_time=PAST)
    fresh = await create(db, "t1", {"new": True})
    assert (fresh.version, fresh.data, fresh.expire_time) == (1, {"new": True}, None)
    assert await db.records.get_record(NS, "tasks", "t1") == fresh


async def test_idempotent_commit_returns_first_result(db: Storage, db_path: str) -> None:
    key = Idempotency("req-1", "fp-a")
    writes: list[Write] = [
        CreateRecord("tasks", "t1", {"n": 1}),
        DeleteRecord("tasks", "x", allow_missing=True),
    ]
    first = await db.records.commit(NS, writes, actor=ALICE, idempotency=key)
    await db.records.commit(NS, [UpdateRecord("tasks", "t1", {"n": 2})], actor=ALICE)
    again = await db.records.commit(NS, writes, actor=ALICE, idempotency=key)
    assert again == first
    assert (await db.records.get_record(NS, "tasks", "t1")).data == {"n": 2}
    # The same request_id in another namespace is another request.
    assert await db.records.commit("other", writes, actor=ALICE, idempotency=key) != first

    with pytest.raises(InvalidArgument) as caught:
        await db.records.commit(NS, writes, actor=ALICE, idempotency=Idempotency("req-1", "fp-b"))
    assert caught.value.violations[0].field == "request_id"
    with raw(db_path) as conn:
        rows = conn.execute("SELECT count(*) FROM audit_log WHERE namespace = ?", (NS,))
        assert rows.fetchone() == (3,)  # two from the first commit, one update


async def test_failing_write_leaves_nothing_behind(db: Storage, db_path: str) -> None:
    await create(db, "exists", {})
    writes: list[Write] = [
        CreateRecord("tasks", "new", {"a": 1}),
        CreateRecord("tasks", "exists", {}),
    ]
    with pytest.raises(AlreadyExists) as caught:
        await db.records.commit(NS, writes, actor=ALICE, idempotency=Idempotency("r", "f"))
    assert caught.value.metadata["write_index"] == "1"
    with pytest.raises(NotFound):
        await db.records.get_record(NS, "tasks", "new")
    with raw(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM request_log").fetchone() == (0,)

    too_big = [CreateRecord("tasks", "a", {}), CreateRecord("tasks", "b", {"x": "y" * 5000})]
    with pytest.raises(TooLarge) as large:
        await db.records.commit(NS, too_big, actor=ALICE)
    assert large.value.metadata["write_index"] == "1"
    assert await db.records.count_records(NS, "tasks", None) == 1


async def test_writes_in_one_commit_see_each_other(db: Storage) -> None:
    results = await db.records.commit(
        NS,
        [
            CreateRecord("tasks", "t1", {"a": 1}),
            UpdateRecord("tasks", "t1", {"b": 2}, paths=(("b",),), expected_version=1),
            DeleteRecord("tasks", "t1"),
            CreateRecord("tasks", "t1", {"c": 3}),
        ],
        actor=ALICE,
    )
    assert [getattr(r, "version", None) for r in results] == [1, 2, None, 1]
    assert (await db.records.get_record(NS, "tasks", "t1")).data == {"c": 3}
    hits = await db.records.search_records(NS, SearchQuery("tasks", "3", limit=5))
    assert hits.items == []  # numbers are not indexed, only strings


async def test_audit_rows(db: Storage, db_path: str) -> None:
    await create(db, "t1", {"a": 1, "b": "x"})
    await db.records.commit(
        NS,
        [UpdateRecord("tasks", "t1", {"a": 2, "b": "x"})],
        actor=Actor("bob"),
        idempotency=Idempotency("req-9", "fp"),
    )
    await db.records.commit(NS, [DeleteRecord("tasks", "t1")], actor=ALICE)
    with raw(db_path) as conn:
        rows = conn.execute(
            "SELECT namespace, actor, action, entity, entity_id, version, changed_fields,"
            " request_id FROM audit_log ORDER BY seq"
        ).fetchall()
    assert [(*row[:6], json.loads(row[6]), row[7]) for row in rows] == [
        (NS, "alice", "create", "record", "tasks/t1", 1, ["data.a", "data.b"], None),
        (NS, "bob", "update", "record", "tasks/t1", 2, ["data.a"], "req-9"),
        (NS, "alice", "delete", "record", "tasks/t1", 2, ["data.a", "data.b"], None),
    ]


async def test_list_paging_with_filter_and_data_order_under_inserts(db: Storage) -> None:
    for i in range(20):
        await create(db, f"r{i:02}", {"kind": "a" if i % 4 else "b", "rank": i % 7})
    query = ListQuery(
        "tasks", parse_filter('data.kind = "a"'), parse_order_by("data.rank desc"), limit=4
    )
    seen: list[Record] = []
    after = None
    for page_number in range(20):
        page = await db.records.list_records(NS, replace(query, after=after))
        seen.extend(page.items)
        # Between pages: matching rows both ahead of and behind the cursor, plus noise.
        await create(db, f"n{page_number}-hi", {"kind": "a", "rank": 100})
        await create(db, f"n{page_number}-lo", {"kind": "a", "rank": -1})
        await create(db, f"n{page_number}-b", {"kind": "b", "rank": 3})
        if page.last_key is None:
            break
        after = page.last_key
    ids = [record.id for record in seen]
    assert len(ids) == len(set(ids)), "a row was served twice"
    assert {f"r{i:02}" for i in range(20) if i % 4} <= set(ids)
    assert all(record.data["kind"] == "a" for record in seen)
    keys = [(-record.data["rank"], record.id) for record in seen]
    assert keys == sorted(keys)
    assert "n0-hi" not in ids  # inserted behind the cursor
    assert "n0-lo" in ids  # inserted ahead of it


async def test_list_order_by_missing_field_and_time(db: Storage) -> None:
    await create(db, "with", {"p": 1})
    await create(db, "without", {})
    await create(db, "string", {"p": "s"})
    query = ListQuery("tasks", None, parse_order_by("data.p, create_time desc"), limit=1)
    ids, after = [], None
    while True:
        page = await db.records.list_records(NS, replace(query, after=after))
        ids += [r.id for r in page.items]
        if page.last_key is None:
            break
        after = page.last_key
    assert ids[0] == "without" and sorted(ids) == ["string", "with", "without"]


async def test_search_ranking_and_paging(db: Storage) -> None:
    await create(db, "a", {"title": "apple pie", "body": "apple apple apple pie"})
    await create(db, "b", {"title": "apple tart"})
    await create(db, "c", {"title": "banana bread", "tags": ["Apple"]})
    await create(db, "d", {"notes": {"deep": "pie with apples"}, "n": 1})
    await create(db, "e", {"title": "apple pie"}, collection="elsewhere")

    page = await db.records.search_records(NS, SearchQuery("tasks", "apple", limit=10))
    assert page.items[0].record.id == "a"
    assert {hit.record.id for hit in page.items} == {"a", "b", "c"}
    scores = [hit.score for hit in page.items]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    assert page.last_key is None

    both = await db.records.search_records(NS, SearchQuery("tasks", "PIE apple", limit=10))
    assert [hit.record.id for hit in both.items] == ["a"]

    paged, offset = [], 0
    while True:
        page = await db.records.search_records(
            NS, SearchQuery("tasks", "apple", limit=2, offset=offset)
        )
        paged += [hit.record.id for hit in page.items]
        if page.last_key is None:
            break
        (offset,) = page.last_key
    assert paged == [
        hit.record.id
        for hit in (
            await db.records.search_records(NS, SearchQuery("tasks", "apple", limit=10))
        ).items
    ]

    for hostile in ("apple OR banana", '"apple', "title:apple", "apple*", "NEAR(a b)", "-"):
        result = await db.records.search_records(NS, SearchQuery("tasks", hostile, limit=10))
        assert isinstance(result.items, list)
    assert (await db.records.search_records(NS, SearchQuery("tasks", "   ", limit=10))).items == ()

    await db.records.commit(NS, [UpdateRecord("tasks", "b", {"title": "pear"})], actor=ALICE)
    await db.records.commit(NS, [DeleteRecord("tasks", "c")], actor=ALICE)
    page = await db.records.search_records(NS, SearchQuery("tasks", "apple", limit=10))
    assert [hit.record.id for hit in page.items] == ["a"]


async def test_purge_expired(db: Storage, db_path: str) -> None:
    for i in range(3):
        await create(db, f"old{i}", {"i": i}, expire_time=PAST + timedelta(seconds=i))
    await create(db, "live", {}, expire_time=datetime.now(UTC) + timedelta(hours=1))
    assert await db.records.purge_expired(2) == [
        RecordRef(NS, "tasks", "old0"),
        RecordRef(NS, "tasks", "old1"),
    ]
    assert await db.records.purge_expired(10) == [RecordRef(NS, "tasks", "old2")]
    assert await db.records.purge_expired(10) == []
    assert await db.records.purge_expired(0) == []
    assert (await db.records.get_record(NS, "tasks", "live")).id == "live"
    with raw(db_path) as conn:
        rows = conn.execute(
            "SELECT actor, entity_id, version, changed_fields FROM audit_log"
            " WHERE action = 'expire' ORDER BY seq"
        ).fetchall()
        assert conn.execute("SELECT count(*) FROM records").fetchone() == (1,)
    assert rows == [("system", f"tasks/old{i}", 1, '["data.i"]') for i in range(3)]


async def test_concurrent_commits_are_serialized(db: Storage) -> None:
    await create(db, "counter", {"n": 0})

    async def bump() -> None:
        while True:
            current = await db.records.get_record(NS, "tasks", "counter")
            update = UpdateRecord(
                "tasks", "counter", {"n": current.data["n"] + 1}, expected_version=current.version
            )
            try:
                await db.records.commit(NS, [update], actor=ALICE)
                return
            except VersionConflict:
                continue

    await asyncio.gather(*(bump() for _ in range(10)))
    assert (await db.records.get_record(NS, "tasks", "counter")).data == {"n": 10}


async def test_memory_database_shares_data_between_connections() -> None:
    db = await open_sqlite(":memory:", max_record_bytes=1024, readers=3, schema_sql=SCHEMA)
    try:
        await asyncio.gather(*(create(db, f"m{i}", {"i": i}) for i in range(10)))
        got = await asyncio.gather(
            *(db.records.get_record(NS, "tasks", f"m{i}") for i in range(10))
        )
        assert [r.data["i"] for r in got] == list(range(10))
        facts = await db.facts()
        assert (facts.backend, facts.schema_version) == ("sqlite", "memory")
        assert "search" in facts.capabilities
        await db.ping()
    finally:
        await db.close()


async def test_schema_version_from_yoyo_and_rollback(db_path: str) -> None:
    from yoyo import get_backend, read_migrations

    backend = get_backend(f"sqlite:///{db_path}")
    migrations = read_migrations(str(MIGRATIONS))
    with backend.lock():
        backend.apply_migrations(backend.to_apply(migrations))
    db = await open_sqlite(db_path, max_record_bytes=1024)
    try:
        assert (await db.facts()).schema_version == migrations[-1].id
    finally:
        await db.close()
    with backend.lock():
        backend.rollback_migrations(backend.to_rollback(migrations))
    backend.connection.close()
    with raw(db_path) as conn:
        left = conn.execute(
            "SELECT name FROM sqlite_master WHERE name NOT LIKE '%yoyo%'"
            " AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
    assert left == []


async def test_driver_errors_become_domain_errors(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="cannot open"):
        await open_sqlite(str(tmp_path / "no" / "such" / "dir.db"), max_record_bytes=1)
    db = await open_sqlite(str(tmp_path / "empty.db"), max_record_bytes=1024)
    try:
        with pytest.raises(Unavailable, match="strata migrate"):
            await db.records.get_record(NS, "tasks", "x")
        with pytest.raises(Unavailable):
            await create(db, "x", {})
    finally:
        await db.close()
    with pytest.raises(Unavailable, match="closed"):
        await db.ping()


async def test_transcript_batches_are_stored_wire_forms_or_encoded_on_read(
    db_path: str,
) -> None:
    db = await open_sqlite(
        db_path, max_record_bytes=4096, readers=2, schema_sql=migrations.memory_schema()
    )
    try:
        await transcript_batches(db, db_path)
    finally:
        await db.close()


async def transcript_batches(db: Storage, db_path: str) -> None:
    await db.transcripts.create_transcript(NS, NewTranscript("t"), actor=ALICE, idempotency=None)
    for n in range(3):
        entries = [
            new_entry("user", f"question {n}", None, 4096),
            new_entry("tool", "", {"calls": [n, "x"], "ok": True}, 4096),
        ]
        await db.transcripts.append_entries(NS, AppendEntries("t", entries), actor=ALICE)

    stored = sent(await db.transcripts.read_batch(NS, "t", 1, 1 << 20))
    assert [(e.seq, e.role, e.content) for e in stored] == [
        (1, "user", "question 0"),
        (2, "tool", ""),
        (3, "user", "question 1"),
        (4, "tool", ""),
        (5, "user", "question 2"),
        (6, "tool", ""),
    ]
    assert dict(stored[3].data) == {"calls": [1, "x"], "ok": True}
    # Entries stored before migration 0009 have no wire form: encoded on read, the same.
    with raw(db_path) as conn:
        conn.execute("UPDATE transcript_entries SET wire = NULL WHERE seq IN (2, 5)")
        conn.commit()
    assert sent(await db.transcripts.read_batch(NS, "t", 1, 1 << 20)) == stored
    assert sent(await db.transcripts.read_batch(NS, "t", 5, 1 << 20)) == stored[4:]
    assert await db.transcripts.read_batch(NS, "t", 7, 1 << 20) is None


async def test_a_snapshot_cancelled_while_it_begins_leaves_its_reader_usable(
    db_path: str,
) -> None:
    """A caller cancelled while its snapshot's BEGIN is on the reader's thread (an
    export whose client went away) must not hand the reader back inside that
    transaction: the fuzz suite found every later export drawing it failing with
    INTERNAL, "cannot start a transaction within a transaction"."""
    connections = await Connections.open(db_path, readers=1, schema_sql=SCHEMA)
    try:

        async def export() -> None:
            async with connections.snapshot() as snap:
                await snap.fetchall("SELECT count(*) FROM records")

        for _ in range(5):
            task = asyncio.create_task(export())
            await asyncio.sleep(0)  # the task is now waiting for its BEGIN
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            async with connections.snapshot() as snap:
                assert await snap.fetchall("SELECT count(*) FROM records") == [(0,)]
    finally:
        await connections.close()
