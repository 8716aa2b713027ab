"""`RedisRateLimiter`: token buckets in Redis, shared by every replica.

Each bucket is one key holding its TAT in microseconds of Redis' own clock (so
replicas whose clocks differ still agree), read, checked and moved by one Lua
script (core/rate_rules.py: GCRA): one round trip per limited call, atomic under any
number of replicas. A key expires once its bucket is full again, so idle
principals cost nothing. A principal without a limit never reaches Redis.

When Redis cannot be reached, each replica falls back to its own in-process
buckets (a token then gets up to its rate on every replica) rather than refusing
or slowing every call: rates protect the service, and an outage of the cache
should not take the API down with it. The fallback is logged once per outage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from strata_server.core.access_rules import Principal
from strata_server.core.rate_rules import RateDefaults, rate_for
from strata_server.storage.memory.rates import LocalRateLimiter
from strata_server.storage.redis.client import UNREACHABLE

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = structlog.get_logger("strata.rates")

ADMIT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local arrival = tat + interval
local wait = arrival - now - tolerance
if wait > 0 then return math.ceil(wait) end
redis.call('SET', KEYS[1], string.format('%.0f', arrival),
           'PX', math.ceil((arrival - now) / 1000) + 1000)
return 0
"""
"""KEYS[1]: the bucket; ARGV: the interval and the tolerance in microseconds.
Returns 0 when allowed, else the microseconds to wait. Microsecond TATs stay
exact as Lua doubles (below 2^53) and are written with %.0f, never as 1.7e+15."""


def bucket_key(name: str) -> str:
    """The Redis key of a principal's bucket (hash-tagged by the name)."""
    return f"strata:rate:{{{name}}}"


class RedisRateLimiter:
    """The `storage.ports.RateLimiter` port over Redis (satisfied structurally)."""

    def __init__(self, client: Redis, defaults: RateDefaults) -> None:
        self._defaults = defaults
        self._admit = client.register_script(ADMIT)
        self._fallback = LocalRateLimiter(defaults)
        self._down = False

    def limits(self, principal: Principal) -> bool:
        """Whether a rate applies to the principal (the same defaults as Redis's)."""
        return self._fallback.limits(principal)

    async def acquire(self, principal: Principal) -> float | None:
        """None when allowed (or not limited), else the seconds to wait."""
        rate = rate_for(principal, self._defaults)
        if rate is None:
            return None
        interval = max(1, round(rate.interval * 1e6))
        try:
            waited = await self._admit(
                keys=[bucket_key(principal.name)], args=[interval, interval * rate.burst]
            )
        except UNREACHABLE as error:
            if not self._down:
                self._down = True
                log.warning("rate limits kept per replica while Redis is down", error=str(error))
            return self._fallback.take(principal.name, rate)
        if self._down:
            self._down = False
            log.info("rate limits shared through Redis again")
        return int(waited) / 1e6 if waited else None
