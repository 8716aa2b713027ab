"""`LocalRateLimiter`: the token buckets of one process (core/rate_rules.py, GCRA).

The embedded shape's limiter: one server process serves the data, so its buckets
are the only ones. (`--workers N` on SQLite without Redis gives each worker its
own buckets, so a token gets up to N times its rate there.)
"""

from __future__ import annotations

import time
from collections.abc import Callable

from strata_server.core.access_rules import Principal
from strata_server.core.rate_rules import Rate, RateDefaults, admit, rate_for

PRUNE_AT = 4096
"""Buckets kept before the full ones (TAT in the past) are dropped: a full bucket
is the same as none, so memory stays bounded by the principals active lately."""


class LocalRateLimiter:
    """The `storage.ports.RateLimiter` port in process (satisfied structurally)."""

    def __init__(self, defaults: RateDefaults, clock: Callable[[], float] = time.monotonic) -> None:
        self._defaults = defaults
        self._clock = clock
        self._tats: dict[str, float] = {}

    def limits(self, principal: Principal) -> bool:
        """Whether a rate applies to the principal (the server's default or its own)."""
        return rate_for(principal, self._defaults) is not None

    async def acquire(self, principal: Principal) -> float | None:
        """None when allowed (or not limited), else the seconds to wait."""
        rate = rate_for(principal, self._defaults)
        if rate is None:
            return None
        return self.take(principal.name, rate)

    def take(self, name: str, rate: Rate) -> float | None:
        """One request from `name`'s bucket of `rate`; what `acquire` returns."""
        now = self._clock()
        tat, wait = admit(self._tats.get(name, now), now, rate)
        if wait is None:
            self._tats[name] = tat
            if len(self._tats) > PRUNE_AT:
                self._tats = {key: value for key, value in self._tats.items() if value > now}
        return wait
