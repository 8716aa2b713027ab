"""The RecordStore port: reads, the one transactional write path, expiry, search."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from strata_server.core.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    TooLarge,
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
from strata_server.storage.ports import CommitRequest
from tests.ports.conftest import ACTOR, MAX_RECORD_BYTES
from tests.ports.helpers import audit, create

PAST = datetime(2000, 1, 1, tzinfo=UTC)


async def test_create_get_update_merge_delete(storage: Storage, ns: str) -> None:
    created = await create(storage, ns, "a", {"title": "hello", "n": 1, "nested": {"x": 1}})
    assert created.version == 1 and created.create_time == created.update_time
    assert await storage.records.get_record(ns, "c", "a") == created

    [merged] = await storage.records.commit(
        CommitRequest(
            ns,
            [UpdateRecord("c", "a", {"n": 2, "nested": {"y": 2}}, paths=(("n",), ("nested", "y")))],
            ACTOR,
        )
    )
    assert isinstance(merged, Record)
    assert merged.data == {"title": "hello", "n": 2, "nested": {"x": 1, "y": 2}}
    assert merged.version == 2 and merged.create_time == created.create_time
    assert await storage.records.get_record(ns, "c", "a") == merged

    [replaced] = await storage.records.commit(
        CommitRequest(ns, [UpdateRecord("c", "a", {"only": True})], ACTOR)
    )
    assert isinstance(replaced, Record) and replaced.data == {"only": True}
    assert replaced.version == 3

    [deleted] = await storage.records.commit(
        CommitRequest(ns, [DeleteRecord("c", "a", expected_version=3)], ACTOR)
    )
    assert deleted == Deleted("c", "a", True)
    with pytest.raises(NotFound, match="record c/a does not exist"):
        await storage.records.get_record(ns, "c", "a")
    [again] = await storage.records.commit(
        CommitRequest(ns, [DeleteRecord("c", "a", allow_missing=True)], ACTOR)
    )
    assert again == Deleted("c", "a", False)
    [upserted] = await storage.records.commit(
        CommitRequest(ns, [UpdateRecord("c", "a", {"v": 1}, allow_missing=True)], ACTOR)
    )
    assert isinstance(upserted, Record) and upserted.version == 1
    with pytest.raises(AlreadyExists, match="c/a already exists"):
        await create(storage, ns, "a", {})


async def test_errors_carry_write_index_and_details(storage: Storage, ns: str) -> None:
    await create(storage, ns, "a", {"n": 1})
    await storage.records.commit(CommitRequest(ns, [UpdateRecord("c", "a", {"n": 2})], ACTOR))
    with pytest.raises(VersionConflict) as conflict:
        await storage.records.commit(
            CommitRequest(
                ns,
                [CreateRecord("c", "b", {}), UpdateRecord("c", "a", {"n": 3}, expected_version=1)],
                ACTOR,
            )
        )
    assert conflict.value.current_version == 2
    assert conflict.value.metadata == {"current_version": "2", "write_index": "1"}
    with pytest.raises(VersionConflict):
        await storage.records.commit(
            CommitRequest(ns, [DeleteRecord("c", "a", expected_version=1)], ACTOR)
        )
    with pytest.raises(AlreadyExists) as exists:
        await create(storage, ns, "a", {})
    assert exists.value.metadata["write_index"] == "0"
    too_big = [CreateRecord("c", "x", {}), CreateRecord("c", "big", {"s": "x" * MAX_RECORD_BYTES})]
    with pytest.raises(TooLarge) as large:
        await storage.records.commit(CommitRequest(ns, too_big, ACTOR))
    assert large.value.metadata["write_index"] == "1"
    assert (await storage.records.get_record(ns, "c", "a")).data == {"n": 2}
    # A literal backslash followed by "u0000" is fine.
    await create(storage, ns, "backslash", {"s": "\\u0000"})
    assert (await storage.records.get_record(ns, "c", "backslash")).data == {"s": "\\u0000"}


async def test_a_failed_write_leaves_nothing(storage: Storage, ns: str) -> None:
    await create(storage, ns, "exists", {})
    writes: list[Write] = [CreateRecord("c", "new", {"a": 1}), CreateRecord("c", "exists", {})]
    with pytest.raises(AlreadyExists) as caught:
        await storage.records.commit(CommitRequest(ns, writes, ACTOR, Idempotency("r", "f")))
    assert caught.value.metadata["write_index"] == "1"
    with pytest.raises(NotFound) as missing:
        await storage.records.commit(
            CommitRequest(
                ns,
                [CreateRecord("c", "new", {"n": 1}), UpdateRecord("c", "missing", {"n": 2})],
                ACTOR,
            )
        )
    assert missing.value.metadata["write_index"] == "1"
    with pytest.raises(NotFound):
        await storage.records.get_record(ns, "c", "new")
    assert [entry.entity_id for entry in await audit(storage, ns)] == ["c/exists"]
    # The failed request_id was not kept: it runs again.
    [created] = await storage.records.commit(
        CommitRequest(ns, [CreateRecord("c", "new", {})], ACTOR, Idempotency("r", "g"))
    )
    assert isinstance(created, Record)


async def test_writes_in_one_commit_see_each_other(storage: Storage, ns: str) -> None:
    results = await storage.records.commit(
        CommitRequest(
            ns,
            [
                CreateRecord("c", "t1", {"a": 1}),
                UpdateRecord("c", "t1", {"b": 2}, paths=(("b",),), expected_version=1),
                DeleteRecord("c", "t1"),
                CreateRecord("c", "t1", {"c": 3}),
            ],
            ACTOR,
        )
    )
    assert [getattr(r, "version", None) for r in results] == [1, 2, None, 1]
    assert (await storage.records.get_record(ns, "c", "t1")).data == {"c": 3}


async def test_audit_entries_in_write_order(storage: Storage, ns: str) -> None:
    await storage.records.commit(
        CommitRequest(
            ns,
            [
                CreateRecord("c", "b", {"x": 1, "y": 2}),
                CreateRecord("c", "a", {"x": 1}),
                UpdateRecord("c", "b", {"x": 5, "y": 2}),
            ],
            ACTOR,
            Idempotency("req-1", "fp"),
        )
    )
    await storage.records.commit(CommitRequest(ns, [DeleteRecord("c", "a")], Actor("bob")))
    rows = [
        (e.actor, e.action, e.entity, e.entity_id, e.version, e.changed_fields, e.request_id)
        for e in await audit(storage, ns)
    ]
    assert rows == [
        ("tester", "create", "record", "c/b", 1, ("data.x", "data.y"), "req-1"),
        ("tester", "create", "record", "c/a", 1, ("data.x",), "req-1"),
        ("tester", "update", "record", "c/b", 2, ("data.x",), "req-1"),
        ("bob", "delete", "record", "c/a", 1, ("data.x",), None),
    ]


async def test_idempotent_commit_returns_the_first_result(storage: Storage, ns: str) -> None:
    writes: list[Write] = [
        CreateRecord("c", "a", {"n": 1}),
        DeleteRecord("c", "zz", allow_missing=True),
    ]
    key = Idempotency("req-1", "fingerprint-1")
    first = await storage.records.commit(CommitRequest(ns, writes, ACTOR, key))
    await storage.records.commit(CommitRequest(ns, [UpdateRecord("c", "a", {"n": 2})], ACTOR))
    assert await storage.records.commit(CommitRequest(ns, writes, ACTOR, key)) == first
    assert (await storage.records.get_record(ns, "c", "a")).data == {"n": 2}
    # The same request_id in another namespace is another request.
    assert await storage.records.commit(CommitRequest(f"{ns}x", writes, ACTOR, key)) != first
    with pytest.raises(InvalidArgument) as reused:
        await storage.records.commit(
            CommitRequest(ns, writes, ACTOR, Idempotency("req-1", "other"))
        )
    assert reused.value.violations[0].field == "request_id"

    # Concurrent retries of one new request: one execution, the same answer for all.
    key2 = Idempotency("req-2", "fingerprint-2")
    update = [UpdateRecord("c", "a", {"n": 3})]
    results = await asyncio.gather(
        *(storage.records.commit(CommitRequest(ns, update, ACTOR, key2)) for _ in range(10))
    )
    assert all(result == results[0] for result in results)
    assert (await storage.records.get_record(ns, "c", "a")).version == 3
    assert len(await audit(storage, ns)) == 4  # two from the first commit, two updates


async def test_concurrent_updates_one_winner_per_version(storage: Storage, ns: str) -> None:
    await create(storage, ns, "hot", {"count": 0})

    async def update_expecting_1() -> Any:
        try:
            return await storage.records.commit(
                CommitRequest(
                    ns, [UpdateRecord("c", "hot", {"count": 1}, expected_version=1)], ACTOR
                )
            )
        except VersionConflict as error:
            return error

    outcomes = await asyncio.gather(*(update_expecting_1() for _ in range(20)))
    winners = [o for o in outcomes if not isinstance(o, VersionConflict)]
    assert len(winners) == 1
    assert all(o.current_version == 2 for o in outcomes if isinstance(o, VersionConflict))

    # Read-modify-write loops: no increment is lost, every version has one writer.
    async def increment() -> int:
        while True:
            current = await storage.records.get_record(ns, "c", "hot")
            count = current.data["count"] + 1
            update = UpdateRecord("c", "hot", {"count": count}, expected_version=current.version)
            try:
                [result] = await storage.records.commit(CommitRequest(ns, [update], ACTOR))
            except VersionConflict:
                continue
            assert isinstance(result, Record)
            return result.version

    versions = await asyncio.gather(*(increment() for _ in range(20)))
    assert sorted(versions) == list(range(3, 23))
    final = await storage.records.get_record(ns, "c", "hot")
    assert final.version == 22 and final.data == {"count": 21}


async def test_concurrent_creates_one_winner(storage: Storage, ns: str) -> None:
    async def attempt(i: int) -> Any:
        try:
            return await create(storage, ns, "same", {"by": i})
        except AlreadyExists as error:
            return error

    outcomes = await asyncio.gather(*(attempt(i) for i in range(20)))
    winners = [o for o in outcomes if isinstance(o, Record)]
    losers = [o for o in outcomes if isinstance(o, AlreadyExists)]
    assert len(winners) == 1 and len(losers) == 19
    assert all(error.metadata["write_index"] == "0" for error in losers)
    assert await storage.records.get_record(ns, "c", "same") == winners[0]


async def test_batch_get_and_count(storage: Storage, ns: str) -> None:
    for i in range(5):
        await create(storage, ns, f"r{i}", {"n": i})
    await create(storage, ns, "other", {"n": 1}, collection="notes")
    await create(storage, ns, "gone", {}, expire_time=PAST)
    got = await storage.records.batch_get_records(ns, "c", ["r1", "r3", "missing", "r3", "gone"])
    assert sorted(r.id for r in got) == ["r1", "r3"]
    assert await storage.records.batch_get_records(ns, "c", []) == []
    assert await storage.records.count_records(ns, "c", None) == 5
    assert await storage.records.count_records(ns, "c", parse_filter("data.n >= 3")) == 2
    assert await storage.records.count_records(f"{ns}x", "c", None) == 0


async def test_expired_records_are_invisible_and_purged(storage: Storage, ns: str) -> None:
    future = datetime.now(UTC) + timedelta(hours=1)
    for i in range(3):
        await create(storage, ns, f"old{i}", {"i": i}, expire_time=PAST + timedelta(seconds=i))
    await create(storage, ns, "gone", {"word": "zebra", "b": 2}, expire_time=PAST)
    kept = await create(storage, ns, "kept", {"word": "zebra"}, expire_time=future)
    with pytest.raises(NotFound):
        await storage.records.get_record(ns, "c", "gone")
    query = ListQuery("c", None, parse_order_by(""), limit=10)
    assert [r.id for r in (await storage.records.list_records(ns, query)).items] == ["kept"]
    assert await storage.records.count_records(ns, "c", None) == 1
    hits = await storage.records.search_records(ns, SearchQuery("c", "zebra", limit=10))
    assert [hit.record.id for hit in hits.items] == ["kept"]
    with pytest.raises(NotFound):
        await storage.records.commit(CommitRequest(ns, [UpdateRecord("c", "gone", {})], ACTOR))

    # A create over an expired record replaces it (its version starts again at 1).
    [revived] = await storage.records.commit(
        CommitRequest(ns, [CreateRecord("c", "gone", {"v": 2})], ACTOR)
    )
    assert isinstance(revived, Record) and (revived.version, revived.expire_time) == (1, None)
    # A merge can clear the expiry.
    [cleared] = await storage.records.commit(
        CommitRequest(ns, [UpdateRecord("c", "kept", {}, paths=(EXPIRE_TIME_PATH,))], ACTOR)
    )
    assert isinstance(cleared, Record) and cleared.expire_time is None
    assert kept.expire_time == future

    assert await storage.records.purge_expired(2) == [
        RecordRef(ns, "c", "old0"),
        RecordRef(ns, "c", "old1"),
    ]
    assert await storage.records.purge_expired(10) == [RecordRef(ns, "c", "old2")]
    assert await storage.records.purge_expired(10) == []
    assert await storage.records.purge_expired(0) == []
    expired = [
        (e.actor, e.entity_id, e.version, e.changed_fields)
        for e in await audit(storage, ns, action="expire")
    ]
    assert expired == [("system", f"c/old{i}", 1, ("data.i",)) for i in range(3)]
    assert await storage.records.count_records(ns, "c", None) == 2


async def test_list_pages_with_filter_and_data_order_while_inserting(
    storage: Storage, ns: str
) -> None:
    for i in range(20):
        await create(storage, ns, f"r{i:02}", {"kind": "a" if i % 4 else "b", "rank": i % 7})
    query = ListQuery(
        "c", parse_filter('data.kind = "a"'), parse_order_by("data.rank desc"), limit=4
    )
    seen: list[Record] = []
    after = None
    for page_number in range(20):
        page = await storage.records.list_records(ns, replace(query, after=after))
        seen.extend(page.items)
        # Between pages: matching rows both ahead of and behind the cursor, plus noise.
        await create(storage, ns, f"n{page_number}-hi", {"kind": "a", "rank": 100})
        await create(storage, ns, f"n{page_number}-lo", {"kind": "a", "rank": -1})
        await create(storage, ns, f"n{page_number}-b", {"kind": "b", "rank": 3})
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


async def test_list_orders_a_missing_field_first_and_by_time(storage: Storage, ns: str) -> None:
    await create(storage, ns, "with", {"p": 1})
    await create(storage, ns, "without", {})
    await create(storage, ns, "string", {"p": "s"})
    query = ListQuery("c", None, parse_order_by("data.p, create_time desc"), limit=1)
    ids, after = [], None
    while True:
        page = await storage.records.list_records(ns, replace(query, after=after))
        ids += [r.id for r in page.items]
        if page.last_key is None:
            break
        after = page.last_key
    assert ids[0] == "without" and sorted(ids) == ["string", "with", "without"]


async def test_search_ranks_every_word_and_pages(storage: Storage, ns: str) -> None:
    await create(storage, ns, "a", {"title": "apple pie", "body": "apple apple apple pie"})
    await create(storage, ns, "b", {"title": "apple tart"})
    await create(storage, ns, "c", {"title": "banana bread", "tags": ["Apple"]})
    await create(storage, ns, "num", {"text": "nothing", "apple": 1})
    await create(storage, ns, "e", {"title": "apple pie"}, collection="elsewhere")

    page = await storage.records.search_records(ns, SearchQuery("c", "apple", limit=10))
    assert page.items[0].record.id == "a"
    assert {hit.record.id for hit in page.items} == {"a", "b", "c"}
    scores = [hit.score for hit in page.items]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    assert page.last_key is None
    both = await storage.records.search_records(ns, SearchQuery("c", "PIE apple", limit=10))
    assert [hit.record.id for hit in both.items] == ["a"]

    paged, offset = [], 0
    while True:
        page = await storage.records.search_records(
            ns, SearchQuery("c", "apple", limit=2, offset=offset)
        )
        paged += [hit.record.id for hit in page.items]
        if page.last_key is None:
            break
        (offset,) = page.last_key
    everything = await storage.records.search_records(ns, SearchQuery("c", "apple", limit=10))
    assert paged == [hit.record.id for hit in everything.items]

    for hostile in ("apple OR banana", '"apple', "title:apple", "apple*", "NEAR(a b)", "-"):
        result = await storage.records.search_records(ns, SearchQuery("c", hostile, limit=10))
        assert isinstance(result.items, list | tuple)
    blank = await storage.records.search_records(ns, SearchQuery("c", "   ", limit=10))
    assert list(blank.items) == []

    await storage.records.commit(
        CommitRequest(ns, [UpdateRecord("c", "b", {"title": "pear"})], ACTOR)
    )
    await storage.records.commit(CommitRequest(ns, [DeleteRecord("c", "c")], ACTOR))
    page = await storage.records.search_records(ns, SearchQuery("c", "apple", limit=10))
    assert [hit.record.id for hit in page.items] == ["a"]


async def test_changes_after_the_head_in_commit_order(storage: Storage, ns: str) -> None:
    head = await storage.records.changes_head(ns)
    await create(storage, ns, "a", {"k": "x"})
    await create(storage, ns, "b", {"k": "y"})
    await storage.records.commit(CommitRequest(ns, [UpdateRecord("c", "a", {"k": "z"})], ACTOR))
    await storage.records.commit(CommitRequest(ns, [DeleteRecord("c", "b")], ACTOR))
    await create(storage, ns, "other", {}, collection="notes")
    batch = await storage.records.record_changes(ns, "c", head, None, 10)
    seen = [(change.record_id, change.version) for change in batch.changes]
    assert seen == [("a", 1), ("b", 1), ("a", 2), ("b", 1)]
    assert batch.changes[-1].record is None  # the delete
    again = await storage.records.record_changes(ns, "c", batch.cursor, None, 10)
    assert list(again.changes) == [] and again.cursor == batch.cursor
    with pytest.raises(InvalidArgument) as bad:
        await storage.records.record_changes(ns, "c", "not a cursor", None, 10)
    assert bad.value.violations[0].field == "from_cursor"
