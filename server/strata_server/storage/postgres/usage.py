"""GetUsage on PostgreSQL: live records and their JSON bytes per collection, jobs
per visible state, transcripts and their entries (from the transcripts' own
counters, next_seq and size_bytes, never a scan of the entries), artifacts per
kind and the distinct blobs they name, per namespace: one grouped scan of each
table (storage/usage_rows.py puts the rows together). An owner's usage counts its
records, transcripts and artifacts, and leaves out jobs, which have no owner."""

from __future__ import annotations

from typing import Any

from strata_server.core.models import QueueDepth, Usage
from strata_server.storage.postgres.dialect import POSTGRES
from strata_server.storage.postgres.pool import Conn, Runner, borrowing
from strata_server.storage.usage_rows import usage_of
from strata_server.storage.usage_sql import UsageDialect, queue_depths, queue_depths_sql, usage_sql

DIALECT = UsageDialect(
    param=lambda name: f"%({name})s",
    now="now()",
    optional="::text",
    integer="::bigint",
    json_bytes="octet_length(data::text)",
    bytewise=' COLLATE "C"',
)
"""Times from the database's clock, which every replica shares."""
USAGE_SQL = usage_sql(DIALECT)
QUEUES = queue_depths_sql(DIALECT)


class PostgresUsage:
    """`UsageReport` over PostgreSQL."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    @borrowing()
    async def usage(self, conn: Conn, namespace: str | None, owner: str | None = None) -> Usage:
        params = {"namespace": namespace, "owner": owner}

        async def fetch(statement: str) -> list[Any]:
            return await (await conn.execute(statement, params)).fetchall()

        return await usage_of(fetch, USAGE_SQL, owner)

    @borrowing()
    async def queue_depths(self, conn: Conn) -> list[QueueDepth]:
        cursor = await conn.execute(QUEUES)
        return queue_depths(await cursor.fetchall(), POSTGRES.time_value)
