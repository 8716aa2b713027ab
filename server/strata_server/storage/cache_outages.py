"""`CacheOutages`: whether the record cache answers from this replica, and the
invalidations owed to it while it does not.

When the cache cannot be reached (logged once per outage, counted in the record
store's `stats`), reads go to the database; every write still tries its
invalidation (another replica may be using a restarted cache already), and keeps
it in memory when that fails. A probe retries the cache every PROBE_SECONDS and,
once it answers, applies the kept invalidations before any read uses the cache
again. What this cannot cover: a partition in which one replica cannot reach Redis
while others can and Redis keeps its data; there the others may serve a record
older than that replica's write until its probe gets through (or the entry's TTL
ends). docs/caching.md says so.

Kept apart from the read-through paths of storage/cached_records.py, which consult
it (`available`, `lost`) and hand it every write's invalidation.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from strata_server.core.errors import Unavailable
from strata_server.storage.ports import Cache

log = structlog.get_logger("strata.cache")

PROBE_SECONDS = 0.5
"""How often an unreachable cache is tried again."""
MAX_PENDING = 100_000
"""Most invalidations kept per outage; past it, every record entry of the namespaces
concerned is cleared when the cache returns."""

RECORD_PREFIX = "r:"
"""The prefix of every record key (cached_records.record_key)."""


class CacheOutages:
    """The outage bookkeeping of one `CachedRecordStore`: availability, the kept
    invalidations and the probe that applies them."""

    def __init__(self, cache: Cache) -> None:
        self._cache = cache
        self._available = True
        self._pending: dict[str, set[str]] = {}
        self._pending_count = 0
        self._clear: set[str] = set()  # namespaces whose record entries must all go
        self._probe: asyncio.Task[None] | None = None
        self._outages = 0

    @property
    def available(self) -> bool:
        """Whether reads may use the cache: no outage, or its kept invalidations applied."""
        return self._available

    @property
    def outages(self) -> int:
        """Outages since this process started."""
        return self._outages

    @property
    def pending(self) -> int:
        """Invalidations kept until the cache answers again."""
        return self._pending_count

    def lost(self, error: Unavailable) -> None:
        """The cache did not answer: the first time, reads stop using it and the
        probe starts."""
        if not self._available:
            return
        self._available = False
        self._outages += 1
        log.warning(
            "cache unreachable: record reads go to the database until it is back",
            error=error.message,
        )
        self._probe = asyncio.create_task(self._recover(), name="strata-cache-probe")

    async def invalidate(self, namespace: str, keys: list[str]) -> None:
        """Delete `keys` from the cache, or keep them for when it answers again."""
        # Tried even while this replica counts the cache as down: another replica may
        # already be reading and filling through a cache that came back (a restart)
        # before this one's probe noticed, and a kept invalidation would let it fill
        # a row older than this write. A delete that fails ran while the cache was
        # unreachable from here, so before any lease a restarted cache now holds.
        try:
            await self._cache.delete(namespace, keys)
            return
        except Unavailable as error:
            self.lost(error)
        self._keep(namespace, keys)

    async def invalidate_namespace(self, namespace: str) -> None:
        """Clear every record entry of a namespace, or keep that for later."""
        try:  # tried in an outage too, as in invalidate
            await self._cache.clear(namespace, RECORD_PREFIX)
            return
        except Unavailable as error:
            self.lost(error)
        self._clear.add(namespace)
        self._pending_count -= len(self._pending.pop(namespace, ()))

    def _keep(self, namespace: str, keys: list[str]) -> None:
        if namespace in self._clear:
            return
        if self._pending_count + len(keys) > MAX_PENDING:
            self._clear.add(namespace)
            self._pending_count -= len(self._pending.pop(namespace, ()))
            return
        pending = self._pending.setdefault(namespace, set())
        before = len(pending)
        pending.update(keys)
        self._pending_count += len(pending) - before

    async def _recover(self) -> None:
        while True:
            await asyncio.sleep(PROBE_SECONDS)
            try:
                await self._cache.ping()
                await self._apply_kept()
            except Unavailable:
                continue
            # No await since the last kept invalidation was applied: none is lost.
            self._available = True
            log.info("cache reachable again: record reads use it", outages=self._outages)
            return

    async def _apply_kept(self) -> None:
        # Each batch leaves the kept sets before its await: a write kept meanwhile
        # (perhaps of the same key, committed after this delete ran) stays kept.
        while self._clear:
            namespace = self._clear.pop()
            try:
                await self._cache.clear(namespace, RECORD_PREFIX)
            except Unavailable:
                self._clear.add(namespace)
                raise
        while self._pending:
            namespace, keys = next(iter(self._pending.items()))
            batch = [keys.pop() for _ in range(min(1000, len(keys)))]
            if not keys:
                del self._pending[namespace]
            self._pending_count -= len(batch)
            try:
                await self._cache.delete(namespace, batch)
            except Unavailable:
                self._keep(namespace, batch)
                raise

    async def close(self) -> None:
        """Stop the probe."""
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
