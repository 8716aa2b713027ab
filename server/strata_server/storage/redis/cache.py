"""`RedisCache`: the production shape's cache, shared by every replica.

Keys are `strata:{<namespace>}:<key>`. The braces are a Redis Cluster hash tag:
every key of a namespace lands in one slot, so the multi-key commands and Lua
scripts below (a BatchGetRecords lookup, a Commit's invalidations) are legal on a
cluster, while namespaces still spread over its nodes. A caller's own braces in a
key are harmless: only the first `{...}` of a key is its tag.

Each stored string starts with one byte that says what it is: `v` and the value,
or `l` and the token of a read-through lease (see `storage.ports.Cache`). The
lease dance is two Lua scripts, each atomic on the server: LOOKUP returns values
and leases empty keys for the caller; FILL writes a value only over the caller's
own lease. DEL (every invalidation) and eviction both remove leases, so a fill
that raced a write, or a fill after Redis forgot the key, writes nothing. Safety
therefore never depends on Redis keeping a key: set `maxmemory` with an LRU
eviction policy and let it evict.

GET, the one command of a cache hit, is pipelined on a connection of its own
(`storage.redis_wire`); every other command uses the client's pool. Driver errors
become `Unavailable` here.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from strata_server.core.errors import Unavailable
from strata_server.storage.ports import Fill, Lookup
from strata_server.storage.redis import client as redis_client
from strata_server.storage.redis.wire import Endpoint, PipelinedGets

if TYPE_CHECKING:
    from strata_server.storage.ports import Cache

T = TypeVar("T")

VALUE, LEASE = b"v", b"l"

LOOKUP = """
local out = {}
for i, key in ipairs(KEYS) do
  local held = redis.call('GET', key)
  if held then
    out[i] = held
  else
    redis.call('SET', key, 'l' .. ARGV[2], 'PX', ARGV[1])
    out[i] = false
  end
end
return out
"""
"""KEYS: the keys; ARGV[1]: lease milliseconds, ARGV[2]: the caller's token. Returns
what each key held, nil where this caller's lease now is."""

FILL = """
local lease = 'l' .. ARGV[1]
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == lease then
    local ttl = ARGV[2 * i + 1]
    if ttl == '0' then
      redis.call('DEL', key)
    else
      redis.call('SET', key, 'v' .. ARGV[2 * i], 'PX', ttl)
    end
  end
end
return 0
"""
"""KEYS: the keys; ARGV[1]: the lease token, then per key its value and TTL in
milliseconds ('0': release the lease). Writes only over the caller's own lease."""


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class RedisCache:
    """The `storage.ports.Cache` port over one Redis (or a Redis Cluster-compatible
    layout), through a client whose pool `storage.redis_client` configured."""

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._gets = PipelinedGets(Endpoint.of(client))
        self._lookup = client.register_script(LOOKUP)
        self._fill = client.register_script(FILL)

    @staticmethod
    def key(namespace: str, key: str) -> str:
        """The Redis key of `key` in `namespace` (hash-tagged by namespace)."""
        return f"strata:{{{namespace}}}:{key}"

    async def _call(self, work: Callable[[], Awaitable[T]]) -> T:
        try:
            return await work()
        except ResponseError as error:
            if str(error).startswith("OOM"):
                raise Unavailable(
                    "the cache (Redis) is out of memory: give it maxmemory-policy allkeys-lru"
                ) from error
            raise Unavailable(f"the cache (Redis) refused a command: {error}") from error
        except redis_client.UNREACHABLE as error:
            detail = " ".join(str(error).split()) or type(error).__name__
            raise Unavailable(f"the cache (Redis) cannot be reached: {detail}") from error

    async def get(self, namespace: str, key: str) -> bytes | None:
        """The value under `key`, or None (also when a lease holds it)."""
        name = self.key(namespace, key)
        held: Any = await self._call(lambda: self._gets.get(name))
        return bytes(held[1:]) if isinstance(held, bytes) and held[:1] == VALUE else None

    async def set(self, namespace: str, key: str, value: bytes, ttl: float) -> None:
        """Store `value` under `key` for `ttl` seconds."""
        await self._call(
            lambda: self._client.set(self.key(namespace, key), VALUE + value, px=_ms(ttl))
        )

    async def delete(self, namespace: str, keys: Sequence[str]) -> int:
        """Remove `keys` in one DEL; how many held a value or a lease."""
        if not keys:
            return 0
        names = [self.key(namespace, key) for key in keys]
        removed: int = await self._call(lambda: self._client.delete(*names))
        return removed

    async def lookup(
        self, namespace: str, keys: Sequence[str], lease_seconds: float
    ) -> list[Lookup]:
        """Values, or leases placed for this caller on keys that hold nothing."""
        if not keys:
            return []
        token = secrets.token_hex(8)
        names = [self.key(namespace, key) for key in keys]
        held: list[Any] = await self._call(
            lambda: self._lookup(keys=names, args=[_ms(lease_seconds), token])
        )
        found: list[Lookup] = []
        for item in held:
            if item is None:
                found.append(Lookup(lease=token))
            elif item[:1] == VALUE:
                found.append(Lookup(value=bytes(item[1:])))
            else:
                found.append(Lookup())
        return found

    async def fill(self, namespace: str, fills: Sequence[Fill]) -> None:
        """Write each fill whose key still holds its lease (one script per lease)."""
        by_lease: dict[str, list[Fill]] = {}
        for fill in fills:
            by_lease.setdefault(fill.lease, []).append(fill)
        for lease, group in by_lease.items():
            args: list[Any] = [lease]
            for fill in group:
                released = fill.value is None or fill.ttl <= 0
                args += [b"" if released else fill.value, 0 if released else _ms(fill.ttl)]
            names = [self.key(namespace, fill.key) for fill in group]
            await self._call(partial(self._fill, keys=names, args=args))

    async def clear(self, namespace: str, prefix: str) -> None:
        """Remove every key of `namespace` starting with `prefix`: SCAN (which does not
        block Redis as KEYS would) and UNLINK a batch at a time."""
        # Namespaces and these prefixes hold no glob characters (* ? [ or backslash).
        pattern = self.key(namespace, prefix) + "*"

        async def work() -> None:
            batch: list[bytes] = []
            async for name in self._client.scan_iter(match=pattern, count=1000):
                batch.append(name)
                if len(batch) >= 1000:
                    await self._client.unlink(*batch)
                    batch = []
            if batch:
                await self._client.unlink(*batch)

        await self._call(work)

    async def ping(self) -> None:
        """Return when Redis answers PING; raise Unavailable otherwise."""
        await self._call(lambda: self._client.ping())

    async def close(self) -> None:
        """Close the connection the GETs hold; the client belongs to whoever built
        it (`app.py`)."""
        await self._gets.close()


if TYPE_CHECKING:

    def _satisfies_port(cache: RedisCache) -> Cache:
        """mypy proves here that RedisCache implements the Cache port."""
        return cache
