"""The one way Strata connects to Redis: a blocking connection pool with timeouts.

The cache and the events port share one client built here, so there is one pool
and one set of settings (`STRATA_REDIS_*`). Every pooled connection PINGs before
use when it has been idle (`health_check_interval`), so a connection a Redis
restart left dead is found and replaced; a command that still meets a dead
connection is retried once on a fresh one. Anything longer is an outage that the
callers handle themselves (events reconnect with backoff; the record cache
bypasses Redis until a probe succeeds).
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

HEALTH_CHECK_SECONDS = 5
"""An idle pooled connection PINGs before use after this many seconds."""

UNREACHABLE: tuple[type[Exception], ...] = (RedisError, OSError, RuntimeError)
"""What a Redis command raises when Redis is down or goes away under it. Besides
redis-py's own errors and socket errors, uvloop raises RuntimeError ("unable to
perform operation on <TCPTransport closed=True ...>") when redis-py writes to a
connection the server just closed (seen when redis-server was killed while a
connection was being set up: an unhandled error failed a GetRecord)."""


def connect(
    url: str,
    *,
    max_connections: int = 32,
    timeout: float = 1.0,
    connect_timeout: float = 1.0,
) -> Redis:
    """A client for the Redis at `url` whose pool holds at most `max_connections`
    (a caller waits up to `timeout` seconds for a free one), with `timeout` on
    every command and `connect_timeout` on every connect. Connects lazily: a Redis
    that is down does not hold up start-up."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        health_check_interval=HEALTH_CHECK_SECONDS,
        socket_connect_timeout=connect_timeout,
        socket_timeout=timeout,
        # Unix sockets take no keepalive: redis-py refuses the option there.
        **({} if url.startswith("unix:") else {"socket_keepalive": True}),
        # One quiet retry replaces a connection a Redis restart left dead.
        retry=Retry(NoBackoff(), 1),
    )
    return Redis(connection_pool=pool)


async def close(client: Redis) -> None:
    """Close `client` and every connection of its pool."""
    await client.aclose()
    await client.connection_pool.disconnect()


EVICTING = frozenset(
    {
        "allkeys-lru",
        "allkeys-lfu",
        "allkeys-random",
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
    }
)
"""maxmemory policies that make room by evicting (every Strata key has a TTL, so
the volatile-* ones evict Strata's keys too)."""


async def memory_warning(client: Redis) -> str | None:
    """Why this Redis is not a bounded cache, or None when it is: no `maxmemory`,
    or a policy that refuses writes when full instead of evicting. Read with INFO
    (allowed where managed Redis services disable CONFIG)."""
    info = await client.info("memory")
    limit = int(info.get("maxmemory", 0))
    policy = str(info.get("maxmemory_policy", "noeviction"))
    if limit == 0:
        return "Redis has no maxmemory: the cache can grow until the host runs out of memory"
    if policy not in EVICTING:
        return (
            f"Redis maxmemory-policy is {policy}: once full it refuses writes instead of "
            "evicting; use allkeys-lru"
        )
    return None
