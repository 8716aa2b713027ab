"""When a failed call is tried again, and after how long."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import grpc

from strata.config import RetryPolicy
from strata.errors import Aborted, StrataError, Unavailable, from_rpc_error

CONCURRENT_MODIFICATION = "CONCURRENT_MODIFICATION"
"""ErrorInfo reason of an ABORTED call that lost a race and wrote nothing."""


def is_transient(error: StrataError, *, idempotent: bool) -> bool:
    """Whether trying again may succeed without applying a write twice."""
    if isinstance(error, Aborted) and error.reason == CONCURRENT_MODIFICATION:
        return True
    return idempotent and isinstance(error, Unavailable)


def backoff_delays(
    policy: RetryPolicy, rand: Callable[[], float] = random.random
) -> Iterator[float]:
    """The waits, in seconds, before the first, second, ... retry: growing by
    `multiplier` from `initial_backoff` up to `max_backoff`, each shortened at
    random by up to `jitter` of itself. `rand` returns a float in [0, 1)."""
    delay = policy.initial_backoff
    while True:
        yield delay * (1.0 - policy.jitter * rand())
        delay = min(delay * policy.multiplier, policy.max_backoff)


class RetrySchedule:
    """The attempts of one call: decides after each failure whether to try again."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        idempotent: bool,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._attempts_left = policy.max_attempts - 1
        self._idempotent = idempotent
        self._delays = backoff_delays(policy, rand)

    def backoff(self, err: grpc.RpcError) -> float:
        """Seconds to wait before trying again after `err`. Raises `err` as its
        typed StrataError when the error is not transient or no attempt is left."""
        error = from_rpc_error(err)
        if self._attempts_left <= 0 or not is_transient(error, idempotent=self._idempotent):
            raise error from err
        self._attempts_left -= 1
        return next(self._delays)
