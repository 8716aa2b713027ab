"""Both RateLimiter adapters (in process, and a real Redis) against the port's rules:
a token bucket per principal, server defaults for principals without a rate, no
limit for anonymous callers; and the Redis one shared by replicas (two clients,
as two server processes hold them) and falling back to per-replica buckets while
Redis is down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from strata_server.core.access_rules import ALL_NAMESPACES, ANONYMOUS, Principal, Role
from strata_server.core.rate_rules import RateDefaults
from strata_server.storage.memory.rates import LocalRateLimiter
from strata_server.storage.ports import RateLimiter
from strata_server.storage.redis import client as redis_client
from strata_server.storage.redis.rates import RedisRateLimiter
from tests.contract.helpers import unique
from tests.support.ports import free_port

DEFAULTS = RateDefaults(per_second=0.0, burst=0)


def principal(rate: float = 0.0, burst: int = 0, name: str | None = None) -> Principal:
    """A token's principal, named uniquely (the Redis is shared by the session)."""
    return Principal(
        name or unique("token"),
        Role.WRITER,
        frozenset({ALL_NAMESPACES}),
        rate_limit=rate,
        burst=burst,
    )


@pytest.fixture(params=["local", "redis"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[type]:
    """Builds limiters of one kind: `make(defaults)`; Redis ones each get their own
    client, as replicas do."""
    clients = []

    def build(defaults: RateDefaults = DEFAULTS) -> RateLimiter:
        if request.param == "local":
            return LocalRateLimiter(defaults)
        client = redis_client.connect(request.getfixturevalue("redis").url)
        clients.append(client)
        return RedisRateLimiter(client, defaults)

    yield build  # type: ignore[misc]
    for client in clients:
        await redis_client.close(client)


async def takes(limiter: RateLimiter, who: Principal, count: int) -> list[float | None]:
    return [await limiter.acquire(who) for _ in range(count)]


async def test_a_burst_passes_then_the_next_waits_about_an_interval(make) -> None:
    limiter = make()
    who = principal(rate=2.0, burst=3)
    first = await takes(limiter, who, 3)
    assert first == [None, None, None]
    wait = await limiter.acquire(who)
    assert wait is not None and 0 < wait <= 0.5  # one interval at 2 per second
    again = await limiter.acquire(who)
    assert again is not None, "a refused request must not be let through by the next"
    await asyncio.sleep(wait + 0.05)
    assert await limiter.acquire(who) is None


async def test_buckets_are_per_principal(make) -> None:
    limiter = make()
    one, two = principal(rate=1.0, burst=1), principal(rate=1.0, burst=1)
    assert await limiter.acquire(one) is None
    assert await limiter.acquire(one) is not None
    assert await limiter.acquire(two) is None


async def test_defaults_apply_to_principals_without_a_rate(make) -> None:
    limited = make(RateDefaults(per_second=1.0, burst=2))
    who = principal()
    assert await takes(limited, who, 2) == [None, None]
    assert await limited.acquire(who) is not None
    # The principal's own figures win over the defaults.
    own = principal(rate=1.0, burst=4)
    assert await takes(limited, own, 4) == [None] * 4
    assert await limited.acquire(own) is not None
    # Without a default burst, a burst is one second's worth of the rate.
    one_second = make(RateDefaults(per_second=5.0))
    who = principal()
    assert await takes(one_second, who, 5) == [None] * 5
    assert await one_second.acquire(who) is not None


async def test_no_rate_and_anonymous_callers_are_not_limited(make) -> None:
    unlimited = make()
    assert await takes(unlimited, principal(), 200) == [None] * 200
    limited = make(RateDefaults(per_second=1.0, burst=1))
    assert await takes(limited, ANONYMOUS, 200) == [None] * 200


async def test_replicas_share_each_bucket(redis) -> None:
    clients = [redis_client.connect(redis.url) for _ in range(2)]
    try:
        a, b = (RedisRateLimiter(client, DEFAULTS) for client in clients)
        who = principal(rate=1.0, burst=4)
        assert [await limiter.acquire(who) for limiter in (a, b, a, b)] == [None] * 4
        assert await a.acquire(who) is not None
        assert await b.acquire(who) is not None
    finally:
        for client in clients:
            await redis_client.close(client)


async def test_without_redis_each_replica_limits_on_its_own() -> None:
    client = redis_client.connect(
        f"redis://127.0.0.1:{free_port()}/0", timeout=0.2, connect_timeout=0.2
    )
    try:
        limiter = RedisRateLimiter(client, DEFAULTS)
        who = principal(rate=1.0, burst=2)
        assert await takes(limiter, who, 2) == [None, None]
        assert await limiter.acquire(who) is not None
    finally:
        await redis_client.close(client)
