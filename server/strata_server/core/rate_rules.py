"""Per-principal request rates: a token bucket, kept as one number per principal.

The bucket is the generic cell rate algorithm (GCRA): instead of a token count and
a refill time it keeps the "theoretical arrival time" (TAT), when the bucket would
be full again if nothing else came. A request at `now` moves the TAT to
max(TAT, now) + 1/rate; it is allowed if that is at most `burst` intervals ahead
of `now`, else refused with the seconds until it would be. So `burst` requests
pass at once on a full bucket, then one every 1/rate seconds. One number per
principal is what makes the Redis adapter a single read-modify-write in one Lua
script, shared by every replica.

Principals without a name (ANONYMOUS, every call under `--auth none`) are never
limited: they are loopback callers the server trusts, and one shared bucket for
all of them would throttle unrelated services together.
"""

from __future__ import annotations

import math

from strata_server.core.access_rules import Principal
from strata_server.core.values import frozen


@frozen
class Rate:
    """`per_second` requests sustained, `burst` of them at once."""

    per_second: float
    burst: int

    @property
    def interval(self) -> float:
        """Seconds one request adds to the TAT."""
        return 1.0 / self.per_second

    @property
    def tolerance(self) -> float:
        """How far ahead of now the TAT may run: `burst` intervals."""
        return self.burst * self.interval


@frozen
class RateDefaults:
    """The server's rate for principals that set none (STRATA_TOKEN_RATE, _BURST)."""

    per_second: float = 0.0
    """0: principals without a rate of their own are not limited."""
    burst: int = 0
    """0: one second's worth of the rate, at least 1."""


def rate_for(principal: Principal, defaults: RateDefaults) -> Rate | None:
    """The bucket that applies to `principal`, or None when it is not limited."""
    if not principal.name:
        return None
    per_second = principal.rate_limit or defaults.per_second
    if per_second <= 0:
        return None
    burst = principal.burst or defaults.burst or max(1, math.ceil(per_second))
    return Rate(per_second, burst)


EPSILON = 1e-9
"""Seconds of floating-point slack: the `burst`-th request of a burst must pass."""


def admit(tat: float, now: float, rate: Rate) -> tuple[float, float | None]:
    """One request against a bucket whose TAT is `tat` (any past value for a full
    bucket): the new TAT and None when allowed, or the TAT unchanged and the
    seconds to wait when refused."""
    arrival = max(tat, now) + rate.interval
    wait = arrival - now - rate.tolerance
    if wait > EPSILON:
        return tat, wait
    return arrival, None
