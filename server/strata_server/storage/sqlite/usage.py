"""GetUsage on SQLite: live records and their JSON bytes per collection, jobs per
visible state, transcripts and their entries (from the transcripts' own counters,
next_seq and size_bytes, never a scan of the entries), artifacts per kind and the
distinct blobs they name, per namespace: one grouped scan of each table
(storage/usage_rows.py puts the rows together). An owner's usage counts its
records, transcripts and artifacts, and leaves out jobs, which have no owner."""

from __future__ import annotations

from datetime import UTC, datetime

from strata_server.core.models import QueueDepth, Usage
from strata_server.storage.sqlite.connection import Connections
from strata_server.storage.sqlite.dialect import SQLITE, to_micros
from strata_server.storage.usage_rows import usage_of
from strata_server.storage.usage_sql import UsageDialect, queue_depths, queue_depths_sql, usage_sql

DIALECT = UsageDialect(param=lambda name: f":{name}", now=":now")
"""Times from this process's clock, passed as the `now` parameter."""
USAGE_SQL = usage_sql(DIALECT)
QUEUES = queue_depths_sql(DIALECT)


class SqliteUsage:
    """`UsageReport` over SQLite."""

    def __init__(self, db: Connections) -> None:
        self._db = db

    async def usage(self, namespace: str | None, owner: str | None = None) -> Usage:
        params = {"namespace": namespace, "owner": owner, "now": to_micros(datetime.now(UTC))}
        return await usage_of(lambda sql: self._db.fetchall(sql, params), USAGE_SQL, owner)

    async def queue_depths(self) -> list[QueueDepth]:
        rows = await self._db.fetchall(QUEUES, {"now": to_micros(datetime.now(UTC))})
        return queue_depths(rows, SQLITE.time_value)
