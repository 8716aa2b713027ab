"""The figures of PostgreSQL queues (GetQueueStats, ListQueues): one statement each
(`job_queries.QUEUE_STATS`, `job_queries.LIST_QUEUES`), read into QueueStats by
`storage.queue_stats_rows` as SQLite's are, so the adapter (`queue.py`) keeps only
the calls."""

from __future__ import annotations

from strata_server.core.job_transitions import EXPIRY_WINDOW, QueueStats
from strata_server.core.models import Page
from strata_server.storage.postgres import job_queries as jq
from strata_server.storage.postgres.dialect import POSTGRES
from strata_server.storage.postgres.pool import Conn
from strata_server.storage.postgres.record_rows import now
from strata_server.storage.queue_stats_rows import queue_stats, queues_page


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
    paused, expired, states, counts, since = row
    return queue_stats(
        namespace, queue, at, (paused, expired, since), zip(states, counts, strict=True)
    )


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
    return queues_page(POSTGRES, namespace, at, await cursor.fetchall(), limit)
