"""`MemoryCache`: the embedded shape's cache, a bounded in-process LRU with TTLs.

Built on cachetools' `TLRUCache` (least recently used out first, each entry with
its own expiry), bounded by the bytes it holds rather than the number of entries,
so one large value cannot blow the process's memory. Everything runs on the event
loop thread, so `lookup` and `fill` are atomic as they are on Redis (where a Lua
script makes them so): no await splits a check from its write.

Only coherent within one process: `app.py` uses it where one process serves the
data (SQLite, no --workers), never for PostgreSQL replicas.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from cachetools import TLRUCache

from strata_server.storage.ports import Fill, Lookup

if TYPE_CHECKING:
    from strata_server.storage.ports import Cache

ENTRY_OVERHEAD = 200
"""Bytes counted per entry beyond its value: the key, the tuple and the LRU's own
bookkeeping, roughly, so many tiny entries are bounded too."""


class _Entry(NamedTuple):
    """A value, or a lease (`lease` set, `value` empty), and how long it lives."""

    value: bytes
    lease: str | None
    ttl: float


def _expires(_key: object, entry: _Entry, now: float) -> float:
    return now + entry.ttl


def _size(entry: _Entry) -> int:
    return len(entry.value) + ENTRY_OVERHEAD


class MemoryCache:
    """The `storage.ports.Cache` port in process, bounded to `max_bytes`."""

    def __init__(self, max_bytes: int, *, timer: Callable[[], float] = time.monotonic) -> None:
        self._entries: TLRUCache[tuple[str, str], _Entry] = TLRUCache(
            maxsize=max_bytes, ttu=_expires, timer=timer, getsizeof=_size
        )

    def _put(self, key: tuple[str, str], entry: _Entry) -> None:
        try:
            self._entries[key] = entry
        except ValueError:  # larger than the whole cache: dropped, as an eviction would
            self._entries.pop(key, None)

    async def get(self, namespace: str, key: str) -> bytes | None:
        """The value under `key`, or None."""
        entry = self._entries.get((namespace, key))
        return entry.value if entry is not None and entry.lease is None else None

    async def set(self, namespace: str, key: str, value: bytes, ttl: float) -> None:
        """Store `value` under `key` for `ttl` seconds."""
        self._put((namespace, key), _Entry(value, None, ttl))

    async def delete(self, namespace: str, keys: Sequence[str]) -> int:
        """Remove `keys`, values and leases alike; how many held either."""
        removed = 0
        for key in keys:
            entry = self._entries.pop((namespace, key), None)
            removed += entry is not None
        return removed

    async def lookup(
        self, namespace: str, keys: Sequence[str], lease_seconds: float
    ) -> list[Lookup]:
        """Values, or leases placed for this caller on keys that hold nothing."""
        token = secrets.token_hex(8)
        found: list[Lookup] = []
        for key in keys:
            entry = self._entries.get((namespace, key))
            if entry is None:
                self._put((namespace, key), _Entry(b"", token, lease_seconds))
                found.append(Lookup(lease=token))
            elif entry.lease is None:
                found.append(Lookup(value=entry.value))
            else:
                found.append(Lookup())
        return found

    async def fill(self, namespace: str, fills: Sequence[Fill]) -> None:
        """Write each fill whose key still holds its lease."""
        for fill in fills:
            key = (namespace, fill.key)
            entry = self._entries.get(key)
            if entry is None or entry.lease != fill.lease:
                continue  # invalidated, evicted or expired since the lookup
            if fill.value is None or fill.ttl <= 0:
                self._entries.pop(key, None)
            else:
                self._put(key, _Entry(fill.value, None, fill.ttl))

    async def clear(self, namespace: str, prefix: str) -> None:
        """Remove every key of `namespace` starting with `prefix`."""
        for key in [k for k in self._entries if k[0] == namespace and k[1].startswith(prefix)]:
            self._entries.pop(key, None)

    async def ping(self) -> None:
        """Always answers: it is this process."""

    async def close(self) -> None:
        """Drop every entry."""
        self._entries.clear()


if TYPE_CHECKING:

    def _satisfies_port(cache: MemoryCache) -> Cache:
        """mypy proves here that MemoryCache implements the Cache port."""
        return cache
