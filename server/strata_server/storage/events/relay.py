"""What the cross-replica events adapters (postgres.py, redis.py) share: limits and
the reconnect backoff."""

from __future__ import annotations

import random

POSTGRES_CHANNEL = "strata_events"
"""The LISTEN/NOTIFY channel of events.postgres, which the PostgreSQL store also
NOTIFYs on when a write carries its commit notice (here, so neither imports the
other)."""
MAX_PENDING = 1024
"""Most distinct topics queued for sending; beyond that a wakeup stays local."""
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0
READY_WITHIN = 5.0
"""How long `open` waits for the first subscription (or its failure) before returning."""


class Backoff:
    """Exponential reconnect delays with jitter, from BACKOFF_FIRST up to BACKOFF_MAX."""

    def __init__(self) -> None:
        self._delay = BACKOFF_FIRST

    def reset(self) -> None:
        """Start again from the shortest delay (after a successful connect)."""
        self._delay = BACKOFF_FIRST

    def next(self) -> float:
        """Seconds to sleep before the next connect attempt."""
        delay, self._delay = self._delay, min(self._delay * 2, BACKOFF_MAX)
        return delay * random.uniform(0.5, 1.0)
