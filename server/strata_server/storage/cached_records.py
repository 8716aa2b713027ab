"""`CachedRecordStore`: GetRecord and BatchGetRecords read through a cache; every
write invalidates the records it touched before the call returns.

It wraps any `RecordStore` (SQLite or PostgreSQL) and any `Cache` (in process or
Redis), so neither the gRPC layer nor the SQL adapters know the cache exists.

Why no stale read after an acknowledged write, on any replica sharing the cache:

- A read that misses places a lease on the key (`Cache.lookup`) *before* it reads
  the database, and may fill the key only while its own lease is still there
  (`Cache.fill`, atomic on the cache).
- A write invalidates its keys (`Cache.delete`) after its transaction commits and
  before it answers. The delete removes whatever the key holds, leases included.
- So a read whose database row predates a write either fills before that write's
  delete (and the delete removes it before the write is acknowledged) or finds its
  lease gone and fills nothing. Eviction only removes keys, so it can only cost a
  fill, never admit a stale one. Versions alone could not order this: a delete and
  a re-create start the record at version 1 again.
- A cached record is served only before its `expire_time` (its cache TTL is capped
  there and checked on every hit, with the same clock the database reads use), and
  the background purge invalidates the rows it removes.

When the cache cannot be reached, reads go to the database and writes keep their
invalidations for when it is back: storage/cache_outages.py says how, and what
that cannot cover.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from strata_server.core.codec import record_from_cache, record_to_cache
from strata_server.core.errors import NotFound, Unavailable
from strata_server.core.models import (
    CacheStats,
    Record,
    RecordRef,
    RecordWrite,
    WriteResult,
)
from strata_server.storage.cache_outages import RECORD_PREFIX, CacheOutages
from strata_server.storage.ports import Cache, CommitRequest, Fill, Lookup, RecordStore

LEASE_SECONDS = 10.0
"""How long a missing read may take to fill its key; a slower one fills nothing."""


def record_key(collection: str, id: str) -> str:
    """The cache key of a record within its namespace (neither part holds a '/')."""
    return f"{RECORD_PREFIX}{collection}/{id}"


class RecordCachePolicy:
    """How long a record of each collection may be served from the cache."""

    def __init__(self, default_ttl: float, per_collection: Mapping[str, float]) -> None:
        self._default = default_ttl
        self._per_collection = dict(per_collection)

    def ttl(self, collection: str) -> float:
        """Seconds a record of `collection` stays cached; 0 means never cached."""
        return self._per_collection.get(collection, self._default)

    @property
    def enabled(self) -> bool:
        """Whether any collection is cached at all."""
        return self._default > 0 or any(ttl > 0 for ttl in self._per_collection.values())


def _live(
    namespace: str, collection: str, id: str, value: bytes | None, now: datetime
) -> Record | None:
    """The record a cache value holds, unless there is none or it has expired."""
    if value is None:
        return None
    record = record_from_cache(namespace, collection, id, value)
    return record if record.expire_time is None or record.expire_time > now else None


class CachedRecordStore:
    """A `storage.ports.RecordStore` that reads through `cache` in front of `store`."""

    def __init__(self, store: RecordStore, cache: Cache, policy: RecordCachePolicy) -> None:
        self._store = store
        self._cache = cache
        self._policy = policy
        self._outages = CacheOutages(cache)
        self._hits = self._misses = self._bypassed = 0
        # Everything else is the store's own answer: lists, counts, searches and the
        # change feed are not cached, so they are the store's methods themselves.
        self.list_records = store.list_records
        self.count_records = store.count_records
        self.search_records = store.search_records
        self.changes_head = store.changes_head
        self.record_changes = store.record_changes
        self.changes_pending = store.changes_pending

    def stats(self) -> CacheStats:
        """This process's counters since it started."""
        return CacheStats(
            enabled=True,
            available=self._outages.available,
            hits=self._hits,
            misses=self._misses,
            bypassed=self._bypassed,
            outages=self._outages.outages,
            pending_invalidations=self._outages.pending,
        )

    # --- reads through the cache ----------------------------------------------------

    async def get_record(self, namespace: str, collection: str, id: str) -> Record:
        """The live record: from the cache when it holds it, else from the store.

        A plain read of the key first (`Cache.get`: on Redis a GET, no script), and
        only when that finds nothing the lookup that places a lease before the store
        is read. Hits, the path a cache is for, so cost one cheap command; a miss
        costs one more round trip to the cache before its database read. Measured
        by bench/cache.py against the lookup script alone (RESULTS.md, "cache")."""
        ttl = self._policy.ttl(collection)
        key = record_key(collection, id)
        if ttl > 0 and self._outages.available:
            try:
                cached = await self._cache.get(namespace, key)
            except Unavailable as error:
                self._outages.lost(error)
                cached = None
            hit = _live(namespace, collection, id, cached, datetime.now(UTC))
            if hit is not None:
                self._hits += 1
                return hit
        found = await self._lookup(namespace, collection, [id], ttl)
        if found is None:
            return await self._store.get_record(namespace, collection, id)
        [lookup] = found
        hit = _live(namespace, collection, id, lookup.value, datetime.now(UTC))
        if hit is not None:
            self._hits += 1
            return hit
        self._misses += 1
        try:
            record = await self._store.get_record(namespace, collection, id)
        except NotFound:
            if lookup.lease is not None:
                await self._fill(namespace, [Fill(key, lookup.lease, None, 0)])
            raise
        if lookup.lease is not None:
            await self._fill(namespace, [self._entry(key, lookup.lease, record, ttl)])
        return record

    async def batch_get_records(
        self, namespace: str, collection: str, ids: Sequence[str]
    ) -> list[Record]:
        """The live records among `ids`: cached ones from the cache, the rest from the
        store in one query (and then cached)."""
        ttl = self._policy.ttl(collection)
        found = await self._lookup(namespace, collection, ids, ttl) if ids else None
        if found is None:
            return await self._store.batch_get_records(namespace, collection, ids)
        now = datetime.now(UTC)
        records: list[Record] = []
        missing: list[str] = []
        leases: dict[str, str] = {}
        for id, lookup in zip(ids, found, strict=True):
            hit = _live(namespace, collection, id, lookup.value, now)
            if hit is not None:
                records.append(hit)
                continue
            missing.append(id)
            if lookup.lease is not None:
                leases[id] = lookup.lease
        self._hits += len(records)
        self._misses += len(missing)
        if not missing:
            return records
        fetched = await self._store.batch_get_records(namespace, collection, missing)
        fills = [
            self._entry(record_key(collection, r.id), leases.pop(r.id), r, ttl)
            for r in fetched
            if r.id in leases
        ]
        fills += [Fill(record_key(collection, id), lease, None, 0) for id, lease in leases.items()]
        if fills:
            await self._fill(namespace, fills)
        return records + fetched

    async def _lookup(
        self, namespace: str, collection: str, ids: Sequence[str], ttl: float
    ) -> list[Lookup] | None:
        """The cache's answer for `ids`, or None when the cache is not to be used."""
        if ttl <= 0:
            return None
        if not self._outages.available:
            self._bypassed += len(ids)
            return None
        try:
            return await self._cache.lookup(
                namespace, [record_key(collection, id) for id in ids], LEASE_SECONDS
            )
        except Unavailable as error:
            self._outages.lost(error)
            self._bypassed += len(ids)
            return None

    @staticmethod
    def _entry(key: str, lease: str, record: Record, ttl: float) -> Fill:
        if record.expire_time is not None:
            ttl = min(ttl, (record.expire_time - datetime.now(UTC)).total_seconds())
        if ttl <= 0:
            return Fill(key, lease, None, 0)
        return Fill(key, lease, record_to_cache(record), ttl)

    async def _fill(self, namespace: str, fills: Sequence[Fill]) -> None:
        if not self._outages.available:
            return  # the leases expire by themselves
        try:
            await self._cache.fill(namespace, fills)
        except Unavailable as error:
            self._outages.lost(error)

    # --- writes invalidate ----------------------------------------------------------

    async def commit(self, request: CommitRequest) -> list[WriteResult]:
        """The store's commit, then the invalidation of every record it may have
        touched, before returning. Also after a failure: a commit whose outcome is
        unknown (the connection broke at COMMIT) may have written."""
        keys = list(
            dict.fromkeys(
                record_key(write.collection, write.id)
                for write in request.writes
                if isinstance(write, RecordWrite)
            )
        )
        try:
            return await self._store.commit(request)
        finally:
            if keys:
                await self._outages.invalidate(request.namespace, keys)

    async def purge_expired(self, limit: int) -> list[RecordRef]:
        """The store's purge, then the invalidation of the records it removed."""
        purged = await self._store.purge_expired(limit)
        await self.forget(purged)
        return purged

    async def forget(self, refs: Sequence[RecordRef]) -> None:
        """Invalidate records deleted behind this wrapper's back (retention)."""
        by_namespace: dict[str, list[str]] = {}
        for ref in refs:
            by_namespace.setdefault(ref.namespace, []).append(record_key(ref.collection, ref.id))
        for namespace, keys in by_namespace.items():
            await self._outages.invalidate(namespace, keys)

    async def forget_namespace(self, namespace: str) -> None:
        """Invalidate every cached record of a namespace (an import wrote behind this
        wrapper's back, possibly over many records); kept for later in an outage."""
        await self._outages.invalidate_namespace(namespace)

    async def close(self) -> None:
        """Stop the outage probe; the store and the cache belong to whoever built them."""
        await self._outages.close()
