"""Both cache adapters (in-process and a real Redis) against the Cache port's rules,
and the read-through record store on a real SQLite file over each of them.

The lease rules are what keep a slow read from caching a record older than a write
that was already acknowledged, so they are exercised step by step here: the
interleavings the replica tests can only hit by chance.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from strata_server.core.codec import record_to_cache
from strata_server.core.errors import NotFound, Unavailable
from strata_server.core.models import Actor, CreateRecord, DeleteRecord, UpdateRecord
from strata_server.storage import migrations
from strata_server.storage.cached_records import (
    CachedRecordStore,
    RecordCachePolicy,
    record_key,
)
from strata_server.storage.memory.cache import MemoryCache
from strata_server.storage.ports import Cache, CommitRequest, Fill
from strata_server.storage.redis import client as redis_client
from strata_server.storage.redis.cache import RedisCache
from strata_server.storage.sqlite import open_sqlite
from tests.contract.helpers import unique
from tests.support.ports import free_port
from tests.support.redis import RedisServer

ACTOR = Actor("test")
LEASE = 5.0


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    """Each adapter: a fresh in-process cache, or one on the session's Redis."""
    if request.param == "memory":
        yield MemoryCache(8 * 1024 * 1024)
        return
    client = redis_client.connect(request.getfixturevalue("redis").url)
    cache = RedisCache(client)
    yield cache
    await cache.close()
    await redis_client.close(client)


@pytest.fixture
def ns() -> str:
    """A namespace no other test uses (the Redis is shared by the session)."""
    return unique("ns")


async def test_get_set_delete_and_ttl(cache: Cache, ns: str) -> None:
    assert await cache.get(ns, "k:a") is None
    await cache.set(ns, "k:a", b"\x00one", 60)
    await cache.set(ns, "k:b", b"two", 0.2)
    assert await cache.get(ns, "k:a") == b"\x00one"
    assert await cache.get(ns, "k:b") == b"two"
    assert await cache.get("other", "k:a") is None
    await asyncio.sleep(0.4)
    assert await cache.get(ns, "k:b") is None
    assert await cache.delete(ns, ["k:a", "k:b", "k:never"]) == 1
    assert await cache.get(ns, "k:a") is None


async def test_a_miss_leases_the_key_and_only_that_lease_fills(cache: Cache, ns: str) -> None:
    [first] = await cache.lookup(ns, ["r:c/1"], LEASE)
    assert first.value is None and first.lease is not None
    # A second reader meanwhile misses too, without a lease: it must not fill.
    [second] = await cache.lookup(ns, ["r:c/1"], LEASE)
    assert second.value is None and second.lease is None
    await cache.fill(ns, [Fill("r:c/1", "somebody else", b"forged", 60)])
    assert (await cache.lookup(ns, ["r:c/1"], LEASE))[0].value is None
    await cache.fill(ns, [Fill("r:c/1", first.lease, b"v1", 60)])
    [hit] = await cache.lookup(ns, ["r:c/1"], LEASE)
    assert hit.value == b"v1"
    # A lease is not a value to a plain get.
    await cache.lookup(ns, ["r:c/2"], LEASE)
    assert await cache.get(ns, "r:c/2") is None


async def test_an_invalidation_between_lookup_and_fill_wins(cache: Cache, ns: str) -> None:
    """The race that matters: read the old row, a write commits and invalidates, then
    the slow read tries to cache the old row. It must write nothing."""
    [slow] = await cache.lookup(ns, ["r:c/1"], LEASE)
    assert await cache.delete(ns, ["r:c/1"]) == 1  # the write's invalidation
    await cache.fill(ns, [Fill("r:c/1", slow.lease or "", b"old", 60)])
    [after] = await cache.lookup(ns, ["r:c/1"], LEASE)
    assert after.value is None and after.lease is not None  # a fresh reader's lease
    await cache.fill(ns, [Fill("r:c/1", slow.lease or "", b"old", 60)])  # still refused
    await cache.fill(ns, [Fill("r:c/1", after.lease or "", b"new", 60)])
    assert (await cache.lookup(ns, ["r:c/1"], LEASE))[0].value == b"new"


async def test_a_lost_lease_fills_nothing(cache: Cache, ns: str) -> None:
    """An expired (or evicted) lease leaves nothing to fill over."""
    [found] = await cache.lookup(ns, ["r:c/1"], 0.1)
    await asyncio.sleep(0.3)
    await cache.fill(ns, [Fill("r:c/1", found.lease or "", b"late", 60)])
    assert await cache.get(ns, "r:c/1") is None


async def test_batch_lookup_fill_and_release(cache: Cache, ns: str) -> None:
    keys = ["r:c/a", "r:c/b", "r:c/c"]
    await cache.set(ns, "r:c/b", b"cached", 60)
    found = await cache.lookup(ns, keys, LEASE)
    assert [f.value for f in found] == [None, b"cached", None]
    lease = found[0].lease or ""
    assert found[2].lease == lease
    await cache.fill(ns, [Fill("r:c/a", lease, b"A", 60), Fill("r:c/c", lease, None, 0)])
    again = await cache.lookup(ns, keys, LEASE)
    assert again[0].value == b"A" and again[1].value == b"cached"
    assert again[2].lease is not None  # released, so leased afresh


async def test_fill_ttl_expires(cache: Cache, ns: str) -> None:
    [found] = await cache.lookup(ns, ["r:c/1"], LEASE)
    await cache.fill(ns, [Fill("r:c/1", found.lease or "", b"v", 0.2)])
    assert (await cache.lookup(ns, ["r:c/1"], LEASE))[0].value == b"v"
    await asyncio.sleep(0.4)
    assert (await cache.lookup(ns, ["r:c/1"], LEASE))[0].value is None


async def test_clear_removes_a_prefix_of_one_namespace(cache: Cache, ns: str) -> None:
    for i in range(1500):  # more than one SCAN/UNLINK batch
        await cache.set(ns, f"r:c/{i}", b"v", 60)
    await cache.set(ns, "k:user", b"kept", 60)
    await cache.set("elsewhere", "r:c/1", b"kept", 60)
    await cache.clear(ns, "r:")
    assert await cache.get(ns, "r:c/7") is None
    assert await cache.get(ns, "k:user") == b"kept"
    assert await cache.get("elsewhere", "r:c/1") == b"kept"


async def test_memory_cache_is_bounded_by_bytes() -> None:
    cache = MemoryCache(1024 * 1024)
    for i in range(4096):
        await cache.set("ns", f"k:{i}", b"x" * 1024, 60)
    assert await cache.get("ns", "k:0") is None  # the least recently used went first
    assert await cache.get("ns", "k:4095") == b"x" * 1024
    await cache.set("ns", "k:huge", b"x" * 2 * 1024 * 1024, 60)  # bigger than it all
    assert await cache.get("ns", "k:huge") is None


async def test_redis_keys_carry_the_namespace_hash_tag(redis: RedisServer) -> None:
    client = redis_client.connect(redis.url)
    try:
        await RedisCache(client).set("tenant-1", "k:x", b"v", 60)
        assert await client.get("strata:{tenant-1}:k:x") == b"vv"
        assert RedisCache.key("tenant-1", "r:c/1") == "strata:{tenant-1}:r:c/1"
    finally:
        await redis_client.close(client)


async def test_redis_unreachable_is_unavailable() -> None:
    port = free_port()  # nobody listens on it
    client = redis_client.connect(f"redis://127.0.0.1:{port}/0", timeout=0.5)
    cache = RedisCache(client)
    try:
        for call in (
            cache.get("ns", "k:a"),
            cache.set("ns", "k:a", b"v", 1),
            cache.delete("ns", ["k:a"]),
            cache.lookup("ns", ["r:c/1"], 1),
            cache.ping(),
        ):
            with pytest.raises(Unavailable, match="cannot be reached"):
                await call
    finally:
        await redis_client.close(client)


# --- the read-through record store on a real SQLite file ---------------------------


@pytest.fixture
async def store(tmp_path: Path, cache: Cache) -> AsyncIterator[tuple[CachedRecordStore, Cache]]:
    database = await open_sqlite(
        str(tmp_path / "strata.db"),
        max_record_bytes=4096,
        schema_sql=migrations.memory_schema(),
    )
    cached = CachedRecordStore(database.records, cache, RecordCachePolicy(60, {"plain": 0}))
    yield cached, cache
    await cached.close()
    await database.close()


async def test_reads_fill_and_writes_invalidate(
    store: tuple[CachedRecordStore, Cache], ns: str
) -> None:
    records, cache = store
    await records.commit(CommitRequest(ns, [CreateRecord("c", "1", {"n": 1})], ACTOR))
    assert (await records.get_record(ns, "c", "1")).version == 1  # miss, fills
    assert (await cache.lookup(ns, [record_key("c", "1")], LEASE))[0].value is not None
    assert (await records.get_record(ns, "c", "1")).data == {"n": 1}  # hit
    assert records.stats().hits == 1 and records.stats().misses == 1
    await records.commit(CommitRequest(ns, [UpdateRecord("c", "1", {"n": 2})], ACTOR))
    assert (await cache.lookup(ns, [record_key("c", "1")], LEASE))[0].value is None
    assert (await records.get_record(ns, "c", "1")).data == {"n": 2}
    await records.commit(CommitRequest(ns, [DeleteRecord("c", "1")], ACTOR))
    with pytest.raises(NotFound):
        await records.get_record(ns, "c", "1")
    await records.commit(CommitRequest(ns, [CreateRecord("c", "1", {"n": "again"})], ACTOR))
    record = await records.get_record(ns, "c", "1")
    assert (record.version, record.data) == (1, {"n": "again"})


async def test_a_failed_write_still_invalidates(
    store: tuple[CachedRecordStore, Cache], ns: str
) -> None:
    records, cache = store
    await records.commit(CommitRequest(ns, [CreateRecord("c", "1", {})], ACTOR))
    await records.get_record(ns, "c", "1")
    with pytest.raises(NotFound):
        await records.commit(
            CommitRequest(
                ns, [UpdateRecord("c", "1", {"x": 1}), DeleteRecord("c", "missing")], ACTOR
            )
        )
    assert (await cache.lookup(ns, [record_key("c", "1")], LEASE))[0].value is None


async def test_a_slow_read_never_caches_over_a_newer_write(
    store: tuple[CachedRecordStore, Cache], ns: str
) -> None:
    records, cache = store
    await records.commit(CommitRequest(ns, [CreateRecord("c", "1", {"n": 1})], ACTOR))
    # A reader leases the key and reads version 1 ...
    [slow] = await cache.lookup(ns, [record_key("c", "1")], LEASE)
    old = await records.get_record(ns, "c", "1")  # (another reader: no lease, no fill)
    # ... then a write commits and invalidates ...
    await records.commit(CommitRequest(ns, [UpdateRecord("c", "1", {"n": 2})], ACTOR))
    # ... and the slow reader tries to fill version 1.
    await cache.fill(ns, [Fill(record_key("c", "1"), slow.lease or "", b"stale", 60)])
    assert old.version == 1
    assert (await records.get_record(ns, "c", "1")).version == 2
    assert (await records.get_record(ns, "c", "1")).version == 2


async def test_batch_get_mixes_hits_and_misses(
    store: tuple[CachedRecordStore, Cache], ns: str
) -> None:
    records, _ = store
    writes = [CreateRecord("c", str(i), {"i": i}) for i in range(5)]
    await records.commit(CommitRequest(ns, writes, ACTOR))
    await records.get_record(ns, "c", "1")
    found = await records.batch_get_records(ns, "c", ["0", "1", "2", "nope"])
    assert sorted(r.id for r in found) == ["0", "1", "2"]
    assert records.stats().hits == 1
    again = await records.batch_get_records(ns, "c", ["0", "1", "2", "nope"])
    assert sorted(r.id for r in again) == ["0", "1", "2"]
    assert records.stats().hits == 4


async def test_expire_time_caps_the_entry_and_purge_invalidates(
    store: tuple[CachedRecordStore, Cache], ns: str
) -> None:
    records, cache = store
    soon = datetime.now(UTC) + timedelta(seconds=0.5)
    await records.commit(CommitRequest(ns, [CreateRecord("c", "e", {}, expire_time=soon)], ACTOR))
    assert (await records.get_record(ns, "c", "e")).expire_time == soon
    await asyncio.sleep(0.6)
    with pytest.raises(NotFound):
        await records.get_record(ns, "c", "e")
    assert await records.batch_get_records(ns, "c", ["e"]) == []
    # A purge removes the row, and with it any entry a lagging clock kept.
    await cache.set(ns, record_key("c", "e"), b"[1,0,0,null,{}]", 60)
    purged = await records.purge_expired(100)
    assert [ref.id for ref in purged if ref.namespace == ns] == ["e"]
    assert (await cache.lookup(ns, [record_key("c", "e")], LEASE))[0].value is None


async def test_a_collection_with_ttl_zero_is_never_cached(
    store: tuple[CachedRecordStore, Cache], ns: str
) -> None:
    records, cache = store
    await records.commit(CommitRequest(ns, [CreateRecord("plain", "1", {})], ACTOR))
    await records.get_record(ns, "plain", "1")
    await records.batch_get_records(ns, "plain", ["1"])
    assert await cache.get(ns, record_key("plain", "1")) is None
    assert records.stats().hits == records.stats().misses == 0


async def test_redis_memory_warning(redis: RedisServer) -> None:
    client = redis_client.connect(redis.url)
    before = await client.config_get("maxmemory*")
    try:
        await client.config_set("maxmemory", 0)
        assert "no maxmemory" in (await redis_client.memory_warning(client) or "")
        await client.config_set("maxmemory", 256 * 1024 * 1024)
        await client.config_set("maxmemory-policy", "noeviction")
        assert "refuses writes" in (await redis_client.memory_warning(client) or "")
        await client.config_set("maxmemory-policy", "allkeys-lru")
        assert await redis_client.memory_warning(client) is None
    finally:
        await client.config_set("maxmemory", before["maxmemory"])
        await client.config_set("maxmemory-policy", before["maxmemory-policy"])
        await redis_client.close(client)


async def test_a_write_in_an_outage_still_invalidates_a_restarted_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ns: str
) -> None:
    """Two replicas on one database and one Redis. Redis dies and restarts empty; the
    writer's probe has not noticed yet (it counts the cache as down) while the reader
    already uses the restarted cache. The reader's lease, placed before the write
    commits, must not let it fill the row the write replaced."""
    monkeypatch.setattr("strata_server.storage.cache_outages.PROBE_SECONDS", 3600.0)
    server = RedisServer(tmp_path / "redis")
    server.start()
    database = await open_sqlite(
        str(tmp_path / "strata.db"), max_record_bytes=4096, schema_sql=migrations.memory_schema()
    )
    clients = [redis_client.connect(server.url, timeout=0.5) for _ in range(2)]
    caches = [RedisCache(client) for client in clients]
    writer, reader = (
        CachedRecordStore(database.records, c, RecordCachePolicy(60, {})) for c in caches
    )
    try:
        await writer.commit(CommitRequest(ns, [CreateRecord("c", "1", {"n": 1})], ACTOR))
        server.kill()
        await writer.commit(CommitRequest(ns, [UpdateRecord("c", "1", {"n": 2})], ACTOR))
        assert not writer.stats().available  # the failed invalidation is kept
        server.start()
        key = record_key("c", "1")
        [lease] = await caches[1].lookup(ns, [key], LEASE)  # the reader's miss ...
        old = await database.records.get_record(ns, "c", "1")  # ... reads version 2 ...
        await writer.commit(CommitRequest(ns, [UpdateRecord("c", "1", {"n": 3})], ACTOR))
        assert not writer.stats().available  # still down for the writer's probe
        # ... and fills it after the writer acknowledged version 3.
        await caches[1].fill(ns, [Fill(key, lease.lease or "", record_to_cache(old), 60)])
        assert old.data == {"n": 2}
        assert (await reader.get_record(ns, "c", "1")).data == {"n": 3}
    finally:
        for store in (writer, reader):
            await store.close()
        for cache, client in zip(caches, clients, strict=True):
            await cache.close()
            await redis_client.close(client)
        await database.close()
        server.stop()
