"""The figures of PostgreSQL queues (GetQueueStats, ListQueues): one statement each
(`job_queries.QUEUE_STATS`, `job_queries.LIST_QUEUES`), read here into
QueueStats, so the adapter (`queue.py`) keeps only the calls."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from strata_server.core.job_transitions import EXPIRY_WINDOW, QueueStats, Visible
from strata_server.core.models import Page
from strata_server.storage.postgres import job_queries as jq
from strata_server.storage.postgres.pool import Conn
from strata_server.storage.postgres.record_rows import now


async def read_stats(conn: Conn, namespace: str, queue: str) -> QueueStats:
    """One queue's figures (`job_queries.QUEUE_STATS`)."""
    at = now()
    cursor = await conn.execute(
        jq.QUEUE_STATS,
        {"namespace": namespace, "queue": queue, "now": at, "window_start": at - EXPIRY_WINDOW},
        prepare=True,
        binary=True,
    )
    row = await cursor.fetchone()
    assert row is not None  # a SELECT without FROM returns one row
    return stats_from_row(namespace, queue, at, row)


async def read_queues(
    conn: Conn, namespace: str, limit: int, after: str | None
) -> Page[QueueStats]:
    """A page of a namespace's queues with their figures (`job_queries.LIST_QUEUES`)."""
    if limit <= 0:
        return Page(())
    at = now()
    cursor = await conn.execute(
        jq.LIST_QUEUES,
        {
            "namespace": namespace,
            "after": after if after is not None else "",
            "limit": limit + 1,
            "now": at,
            "window_start": at - EXPIRY_WINDOW,
        },
        prepare=True,
        binary=True,
    )
    found = stats_from_rows(namespace, at, await cursor.fetchall())
    served = found[:limit]
    return Page(served, (served[-1].queue,) if len(found) > limit else None)


def stats_from_row(namespace: str, queue: str, at: datetime, row: Sequence[Any]) -> QueueStats:
    """QueueStats from the one row of `job_queries.QUEUE_STATS` read at `at`."""
    paused, expired, states, counts, since = row
    by_state = dict.fromkeys(Visible, 0)
    for name, count in zip(states, counts, strict=True):
        by_state[Visible(name)] += count
    age = max(at - since, timedelta(0)) if since is not None else timedelta(0)
    return QueueStats(
        namespace=namespace,
        queue=queue,
        paused=bool(paused),
        counts=by_state,
        oldest_available_age=age,
        expired_leases=expired,
    )


def stats_from_rows(namespace: str, at: datetime, rows: Sequence[Any]) -> list[QueueStats]:
    """One QueueStats per queue of the rows of `job_queries.LIST_QUEUES` read at `at`
    (one row per queue and visible state, in queue order), in that order."""
    counts: dict[str, dict[Visible, int]] = {}
    figures: dict[str, tuple[bool, int, timedelta]] = {}
    for name, paused, expired, visible, count, since in rows:
        by_state = counts.setdefault(name, dict.fromkeys(Visible, 0))
        age = timedelta(0)
        if visible is not None:  # None: a paused queue without jobs
            by_state[Visible(visible)] += count
            if visible == Visible.AVAILABLE and since is not None:
                age = max(at - since, timedelta(0))
        _, _, older = figures.get(name, (False, 0, timedelta(0)))
        figures[name] = (bool(paused), expired, max(age, older))
    return [
        QueueStats(namespace, name, paused, counts[name], age, expired)
        for name, (paused, expired, age) in figures.items()
    ]
