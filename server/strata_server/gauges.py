"""The server's own gauges on the metrics endpoint (`metrics.py` serves them):
database pool figures, the record cache's counters, RPCs in progress, and queue
depths, which are read in the background so that a scrape never waits on the
database."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from strata_server import metrics
from strata_server.core.errors import StrataError
from strata_server.core.models import CacheStats, QueueDepth
from strata_server.storage.composite import Storage
from strata_server.storage.ports import UsageReport

log = structlog.get_logger("strata.server")


class QueueDepths:
    """The queue metrics' figures, read from the database in the background (a
    scrape must not wait on it)."""

    def __init__(self, database: UsageReport) -> None:
        self._database = database
        self._depths: list[QueueDepth] = []

    async def refresh_every(self, interval: float) -> None:
        """Read the depths now, then every `interval` seconds."""
        while True:
            try:
                self._depths = await self._database.queue_depths()
            except StrataError as error:
                log.warning("queue metrics not read", error=error.message)
            await asyncio.sleep(interval)

    def counts(self) -> metrics.GaugeSamples:
        """strata_queue_jobs samples."""
        return [
            ({"namespace": d.namespace, "queue": d.queue, "state": state}, float(count))
            for d in self._depths
            for state, count in (
                ("available", d.available),
                ("scheduled", d.scheduled),
                ("leased", d.leased),
            )
        ]

    def ages(self) -> metrics.GaugeSamples:
        """strata_queue_oldest_available_age_seconds samples."""
        return [
            ({"namespace": d.namespace, "queue": d.queue}, d.oldest_available_seconds)
            for d in self._depths
        ]


def cache_samples(stats: CacheStats) -> metrics.GaugeSamples:
    return [
        ({"counter": "hits"}, float(stats.hits)),
        ({"counter": "misses"}, float(stats.misses)),
        ({"counter": "bypassed"}, float(stats.bypassed)),
        ({"counter": "outages"}, float(stats.outages)),
        ({"counter": "pending_invalidations"}, float(stats.pending_invalidations)),
        ({"counter": "available"}, 1.0 if stats.available else 0.0),
    ]


def publish(
    storage: Storage,
    cache_stats: Callable[[], CacheStats],
    in_progress: Callable[[], int],
    queue_metrics_seconds: float,
) -> Coroutine[Any, Any, None]:
    """Register every gauge; returns the background reading of queue depths, for the
    caller to run as a task."""
    metrics.gauge_source(
        "strata_db_pool_connections",
        "Database connections by state: size (open), idle, waiting (callers queued)",
        ["state"],
        lambda: [
            ({"state": key}, float(value))
            for key, value in storage.pool_stats().items()
            if key != "requests"
        ],
    )
    metrics.gauge_source(
        "strata_db_requests",
        "Database reads, statements and transactions run since the start (connections "
        "handed out by the pool): what idle streams must not add to",
        [],
        lambda: [({}, float(storage.pool_stats().get("requests", 0)))],
    )
    metrics.gauge_source(
        "strata_record_cache",
        "Record cache counters since start: hits, misses, bypassed (read from the "
        "database while the cache was unreachable), outages, pending_invalidations, "
        "available (1 or 0)",
        ["counter"],
        lambda: cache_samples(cache_stats()),
    )
    metrics.gauge_source(
        "strata_rpcs_in_progress",
        "RPCs admitted and not finished (what STRATA_MAX_STREAMS limits)",
        [],
        lambda: [({}, float(in_progress()))],
    )
    depths = QueueDepths(storage.usage)
    metrics.gauge_source(
        "strata_queue_jobs",
        "Unfinished jobs per queue by state (available, scheduled, leased), as of the "
        "last read (every STRATA_QUEUE_METRICS_SECONDS)",
        ["namespace", "queue", "state"],
        depths.counts,
    )
    metrics.gauge_source(
        "strata_queue_oldest_available_age_seconds",
        "How long the oldest available job of each queue has waited, as of the last read",
        ["namespace", "queue"],
        depths.ages,
    )
    return depths.refresh_every(queue_metrics_seconds)
