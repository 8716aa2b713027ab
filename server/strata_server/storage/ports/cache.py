"""The cache port: bytes under keys with a TTL, and the race-free read-through pair."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from strata_server.core.values import frozen


@frozen
class Lookup:
    """What `Cache.lookup` found under one key: the cached `value` (a hit), or a miss
    with the `lease` this caller placed (it may fill the key), or a miss without one
    (another reader holds the lease; read on, but do not fill)."""

    value: bytes | None = None
    lease: str | None = None


@frozen
class Fill:
    """One conditional write for `Cache.fill`: `value` for `ttl` seconds under `key`,
    only if the key still holds `lease`; `value` None releases the lease instead."""

    key: str
    lease: str
    value: bytes | None
    ttl: float


class Cache(Protocol):
    """Bytes under string keys, one key space per namespace, each entry with a TTL.

    A cache may drop any entry at any time (eviction under its memory bound), so
    callers treat a miss as normal. `lookup` and `fill` are the race-free
    read-through pair: a miss places a lease on the key, every `delete` (and any
    eviction) removes it, and `fill` writes only over the caller's own lease. So a
    value read from the database before a write can never be cached after that
    write's invalidation. Adapters raise only `Unavailable` for backend failures.
    """

    async def get(self, namespace: str, key: str) -> bytes | None:
        """The value under `key`, or None."""
        ...

    async def set(self, namespace: str, key: str, value: bytes, ttl: float) -> None:
        """Store `value` under `key` for `ttl` seconds, replacing whatever is there."""
        ...

    async def delete(self, namespace: str, keys: Sequence[str]) -> int:
        """Remove `keys` (values and leases alike); how many held either."""
        ...

    async def lookup(
        self, namespace: str, keys: Sequence[str], lease_seconds: float
    ) -> list[Lookup]:
        """Each key's value, or for a key holding nothing a lease of `lease_seconds`
        placed for this caller (all with one fresh token), position for position."""
        ...

    async def fill(self, namespace: str, fills: Sequence[Fill]) -> None:
        """Apply each fill whose key still holds its lease; skip the others."""
        ...

    async def clear(self, namespace: str, prefix: str) -> None:
        """Remove every key of `namespace` that starts with `prefix`."""
        ...

    async def ping(self) -> None:
        """Return when the backend answers; raise Unavailable when it does not."""
        ...

    async def close(self) -> None:
        """Release connections; the object is unusable afterwards."""
        ...
