"""Admission: how many RPCs one server process runs at once, in total and per
connection, and the explicit answer to one more than that.

Why this exists: gRPC core keeps the RPCs that have arrived but that the application
has not accepted yet in a backlog, and cancels some of them once it holds
`grpc.server.max_pending_requests` (1,000 by default) and all of them beyond the hard
limit (3,000). grpc.aio accepts one RPC per turn of the event loop, so a burst of a
few thousand calls at once (followers reconnecting, workers starting their long
polls) overflows that backlog: those callers saw CANCELLED, which many clients do not
retry, and nothing was logged or counted, since the application never saw the calls.
The server now raises those backlog limits (`backlog_options`) so every RPC reaches
the application, and this module admits it or sheds it: RESOURCE_EXHAUSTED with a
google.rpc.RetryInfo delay, counted in `strata_rpcs_total` (and
`strata_rpcs_shed_total`) and logged as a WARNING line (at most one a second, with
the number shed since the last one, so an overload does not flood the log).

A connection is told apart by `context.peer()` (the client's address and port, one
per TCP connection). The limits count every RPC, unary calls (long polls included)
and streams alike, since each holds an HTTP/2 stream and a task while it runs.

The `Admission` of a server is found through the context variable `CURRENT`, which
`app.start` sets before the gRPC server starts: the server's tasks, and so every RPC
task, inherit that context, so the servicers need no extra constructor argument and
two servers started in one process each see their own.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any

import grpc
import structlog

from strata_server import metrics
from strata_server.core import errors

log = structlog.get_logger("strata.admission")

LOG_EVERY_SECONDS = 1.0
"""At most one WARNING line per this many seconds while RPCs are being shed."""

CURRENT: ContextVar[Admission | None] = ContextVar("strata_admission", default=None)
"""The admission of the server whose RPC runs in this context (None: no limits)."""


def backlog_options(max_streams: int) -> list[tuple[str, int]]:
    """gRPC server options that keep core from cancelling RPCs the application has
    not accepted yet: its backlog may hold four times the admission limit (never less
    than 100,000) before it drops any, so a burst is admitted or shed here instead."""
    limit = max(100_000, 4 * max_streams)
    return [
        ("grpc.server.max_pending_requests", limit),
        ("grpc.server.max_pending_requests_hard_limit", limit),
    ]


class Admission:
    """Counts the RPCs in progress, in total and per connection, and refuses one
    beyond either limit with `errors.Overloaded`."""

    def __init__(self, max_total: int, max_per_connection: int, retry_after: float) -> None:
        self._max_total = max_total
        self._max_per_connection = max_per_connection
        self._retry_after = retry_after
        self._total = 0
        self._per_peer: dict[str, int] = {}
        self._shed_since_log = 0
        self._last_log = float("-inf")

    @property
    def in_progress(self) -> int:
        """RPCs admitted and not yet finished."""
        return self._total

    def admit(self, context: grpc.aio.ServicerContext[Any, Any], method: str) -> str:
        """Admit one RPC of `context` and return its connection key (give it back to
        `release` when the RPC ends); raises Overloaded when a limit is reached."""
        peer = context.peer() or ""
        if self._total >= self._max_total:
            raise self._shed(method, "total", peer, self._max_total)
        if self._per_peer.get(peer, 0) >= self._max_per_connection:
            raise self._shed(method, "connection", peer, self._max_per_connection)
        self._total += 1
        self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
        return peer

    def release(self, peer: str) -> None:
        """One RPC of connection `peer` ended."""
        self._total -= 1
        left = self._per_peer[peer] - 1
        if left > 0:
            self._per_peer[peer] = left
        else:
            del self._per_peer[peer]

    def _shed(self, method: str, limit: str, peer: str, value: int) -> errors.Overloaded:
        metrics.rpc_shed(limit)
        self._shed_since_log += 1
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY_SECONDS:
            log.warning(
                "overloaded: RPCs shed with RESOURCE_EXHAUSTED",
                limit=limit,
                max=value,
                shed=self._shed_since_log,
                in_progress=self._total,
                method=method,
                peer=peer,
            )
            self._shed_since_log = 0
            self._last_log = now
        where = "on this connection" if limit == "connection" else "on this server"
        return errors.Overloaded(
            f"the server is running its most RPCs at once {where} ({value}); "
            f"retry after {self._retry_after:g} s",
            metadata={"limit": limit, "max": str(value)},
            retry_after=self._retry_after,
        )
