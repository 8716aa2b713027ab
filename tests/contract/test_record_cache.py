"""The read-through record cache as a client sees it, on both shapes (in-process
cache for SQLite, Redis for PostgreSQL): reads after every kind of write return
the write, expired records vanish on time, and hits are counted."""

from __future__ import annotations

import time

import grpc

from strata.v1 import admin_pb2
from tests.conftest import UNCACHED_COLLECTION, Stubs
from tests.contract.helpers import (
    batch_get,
    commit,
    create,
    create_write,
    delete,
    delete_write,
    expect_error,
    from_now,
    get,
    unique,
    update,
    update_write,
)

NOT_FOUND = (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")


def stats(stubs: Stubs) -> admin_pb2.CacheStats:
    """The server's record cache counters."""
    return stubs.admin.GetServerInfo(admin_pb2.GetServerInfoRequest()).cache_stats


def test_a_second_read_is_a_hit_and_equal_to_the_first(stubs: Stubs, collection: str) -> None:
    created = create(stubs, collection, "r1", {"a": [1, 2.5, "x", None, {"b": True}]})
    before = stats(stubs)
    first = get(stubs, collection, "r1")
    second = get(stubs, collection, "r1")
    after = stats(stubs)
    assert first == second == created
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 1)


def test_reads_see_every_write_at_once(stubs: Stubs, collection: str) -> None:
    create(stubs, collection, "r1", {"n": 1})
    get(stubs, collection, "r1")  # cached
    update(stubs, collection, "r1", {"n": 2})
    assert get(stubs, collection, "r1").version == 2
    update(stubs, collection, "r1", {"m": 3}, mask=["data.m"])
    assert (got := get(stubs, collection, "r1")).version == 3
    assert dict(got.data) == {"n": 2, "m": 3}
    assert [r.version for r in batch_get(stubs, collection, ["r1"]).records] == [3]
    delete(stubs, collection, "r1")
    expect_error(lambda: get(stubs, collection, "r1"), *NOT_FOUND)
    assert list(batch_get(stubs, collection, ["r1"]).missing_ids) == ["r1"]
    create(stubs, collection, "r1", {"reborn": True})  # versions start over at 1
    got = get(stubs, collection, "r1")
    assert (got.version, dict(got.data)) == (1, {"reborn": True})


def test_commit_invalidates_every_record_it_writes(stubs: Stubs, collection: str) -> None:
    for record_id in ("a", "b", "c"):
        create(stubs, collection, record_id, {"v": 0})
    batch_get(stubs, collection, ["a", "b", "c"])  # all cached
    commit(
        stubs,
        [
            update_write(collection, "a", {"v": 1}),
            delete_write(collection, "b"),
            create_write(collection, "d", {"v": 1}),
            update_write(collection, "c", {"v": 1}, allow_missing=True),
        ],
    )
    found = {r.id: r.version for r in batch_get(stubs, collection, "abcd").records}
    assert found == {"a": 2, "c": 2, "d": 1}
    expect_error(lambda: get(stubs, collection, "b"), *NOT_FOUND)


def test_upsert_of_a_missing_record_after_a_cached_miss(stubs: Stubs, collection: str) -> None:
    expect_error(lambda: get(stubs, collection, "later"), *NOT_FOUND)
    update(stubs, collection, "later", {"x": 1}, allow_missing=True)
    assert get(stubs, collection, "later").version == 1


def test_an_expired_record_is_not_served_from_the_cache(stubs: Stubs, collection: str) -> None:
    create(stubs, collection, "brief", {"x": 1}, expire_time=from_now(1.0))
    create(stubs, collection, "stays", {"x": 2})
    assert get(stubs, collection, "brief").id == "brief"
    batch_get(stubs, collection, ["brief", "stays"])  # both cached
    time.sleep(1.2)
    expect_error(lambda: get(stubs, collection, "brief"), *NOT_FOUND)
    response = batch_get(stubs, collection, ["brief", "stays"])
    assert [r.id for r in response.records] == ["stays"]
    assert list(response.missing_ids) == ["brief"]


def test_an_extended_expire_time_is_read_back(stubs: Stubs, collection: str) -> None:
    create(stubs, collection, "r", {}, expire_time=from_now(1.0))
    get(stubs, collection, "r")
    update(stubs, collection, "r", {}, expire_time=from_now(3600))
    time.sleep(1.2)
    assert get(stubs, collection, "r").HasField("expire_time")


def test_an_uncached_collection_is_read_from_the_database(stubs: Stubs) -> None:
    record_id = unique("u")
    create(stubs, UNCACHED_COLLECTION, record_id, {"x": 1})
    before = stats(stubs)
    for _ in range(3):
        assert get(stubs, UNCACHED_COLLECTION, record_id).version == 1
        batch_get(stubs, UNCACHED_COLLECTION, [record_id])
    after = stats(stubs)
    assert (after.hits, after.misses) == (before.hits, before.misses)


def test_namespaces_do_not_share_cached_records(stubs: Stubs, collection: str) -> None:
    create(stubs, collection, "r", {"ns": "default"})
    create(stubs, collection, "r", {"ns": "other"}, namespace="other")
    get(stubs, collection, "r")
    assert dict(get(stubs, collection, "r", namespace="other").data) == {"ns": "other"}
    update(stubs, collection, "r", {"ns": "other2"}, namespace="other")
    assert dict(get(stubs, collection, "r").data) == {"ns": "default"}
    assert dict(get(stubs, collection, "r", namespace="other").data) == {"ns": "other2"}
