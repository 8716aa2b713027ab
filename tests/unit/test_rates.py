"""The token bucket's arithmetic (core/rate_rules.py) and the in-process limiter on a
clock the test moves."""

from __future__ import annotations

import pytest

from strata_server.core.access_rules import ALL_NAMESPACES, ANONYMOUS, Principal, Role
from strata_server.core.rate_rules import Rate, RateDefaults, admit, rate_for
from strata_server.storage.memory.rates import PRUNE_AT, LocalRateLimiter


def token(rate: float = 0.0, burst: int = 0, name: str = "t") -> Principal:
    return Principal(name, Role.READER, frozenset({ALL_NAMESPACES}), rate_limit=rate, burst=burst)


def test_which_rate_applies() -> None:
    defaults = RateDefaults(per_second=10.0, burst=20)
    assert rate_for(token(), RateDefaults()) is None
    assert rate_for(ANONYMOUS, defaults) is None
    assert rate_for(token(), defaults) == Rate(10.0, 20)
    assert rate_for(token(rate=2.0), defaults) == Rate(2.0, 20)
    assert rate_for(token(rate=2.0, burst=5), defaults) == Rate(2.0, 5)
    assert rate_for(token(rate=2.5), RateDefaults()) == Rate(2.5, 3)
    assert rate_for(token(rate=0.1), RateDefaults()) == Rate(0.1, 1)


def test_a_full_bucket_lets_a_burst_through_then_one_per_interval() -> None:
    rate = Rate(per_second=4.0, burst=3)
    tat, now = 0.0, 100.0
    for _ in range(3):
        tat, wait = admit(tat, now, rate)
        assert wait is None
    refused, wait = admit(tat, now, rate)
    assert refused == tat and wait == pytest.approx(0.25)
    # A quarter of a second later one more fits, and only one.
    tat, wait = admit(tat, now + 0.25, rate)
    assert wait is None
    _, wait = admit(tat, now + 0.25, rate)
    assert wait == pytest.approx(0.25)
    # Idle long enough, the bucket is full again, and never fuller: a burst again.
    later, passed = now + 60, 0
    while (step := admit(tat, later, rate))[1] is None:
        tat, passed = step[0], passed + 1
    assert passed == 3


async def test_the_local_limiter_on_a_moving_clock() -> None:
    now = [0.0]
    limiter = LocalRateLimiter(RateDefaults(per_second=1.0, burst=2), clock=lambda: now[0])
    who = token(name="a")
    assert [await limiter.acquire(who) for _ in range(2)] == [None, None]
    assert await limiter.acquire(who) == pytest.approx(1.0)
    now[0] = 0.5
    assert await limiter.acquire(who) == pytest.approx(0.5)
    now[0] = 1.0
    assert await limiter.acquire(who) is None


async def test_idle_buckets_are_forgotten() -> None:
    now = [0.0]
    limiter = LocalRateLimiter(RateDefaults(per_second=1.0, burst=1), clock=lambda: now[0])
    for i in range(PRUNE_AT):
        assert await limiter.acquire(token(name=f"p{i}")) is None
    now[0] = 10.0
    assert await limiter.acquire(token(name="late")) is None
    assert len(limiter._tats) == 1
