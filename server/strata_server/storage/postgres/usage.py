"""GetUsage on PostgreSQL: live records and their JSON bytes per collection, jobs
per visible state, transcripts and their entries (from the transcripts' own
counters, next_seq and size_bytes, never a scan of the entries), artifacts per
kind and the distinct blobs they name, per namespace: one grouped scan of each
table (storage/usage_rows.py puts the rows together). An owner leaves out records
and jobs, which have none."""

from __future__ import annotations

from typing import Any, LiteralString

from strata_server.core.models import QueueDepth, Usage
from strata_server.storage.postgres.pool import Conn, Runner, borrowing
from strata_server.storage.usage_rows import UsageSql, usage_of

RECORDS = """
SELECT namespace, collection, count(*), coalesce(sum(octet_length(data::text)), 0)::bigint
FROM records
WHERE (%(namespace)s::text IS NULL OR namespace = %(namespace)s)
  AND (expire_time IS NULL OR expire_time > now())
GROUP BY namespace, collection
ORDER BY namespace, collection COLLATE "C"
"""

JOBS = """
SELECT namespace,
       CASE
           WHEN state = 'ready' AND run_time <= now() THEN 'available'
           WHEN state = 'ready' THEN 'scheduled'
           WHEN state = 'leased' AND lease_expire_time <= now() THEN 'available'
           ELSE state
       END AS visible,
       count(*)
FROM jobs
WHERE %(namespace)s::text IS NULL OR namespace = %(namespace)s
GROUP BY 1, 2
ORDER BY 1, 2
"""

_OWNED: LiteralString = (
    "(%(namespace)s::text IS NULL OR namespace = %(namespace)s)"
    " AND (%(owner)s::text IS NULL OR owner = %(owner)s)"
)

TRANSCRIPTS: LiteralString = (
    "SELECT namespace, count(*), sum(next_seq - 1)::bigint, sum(size_bytes)::bigint"
    " FROM transcripts WHERE " + _OWNED + " GROUP BY namespace"
)

KINDS: LiteralString = (
    "SELECT namespace, kind, count(*), sum(size)::bigint, sum(stored_size)::bigint"
    " FROM artifacts WHERE " + _OWNED + " GROUP BY namespace, kind ORDER BY namespace, kind"
)

_DISTINCT: LiteralString = (
    "SELECT namespace, sha256, sum(size) AS referenced, max(size) AS size,"
    " max(stored_size) AS stored FROM artifacts WHERE " + _OWNED + " GROUP BY namespace, sha256"
)

BLOBS: LiteralString = (
    "SELECT namespace, count(*), sum(referenced)::bigint, sum(size)::bigint,"
    " sum(stored)::bigint FROM (" + _DISTINCT + ") AS d GROUP BY namespace"
)
"""Per namespace: the blobs its artifacts name, each once."""

TOTAL_BLOBS: LiteralString = (
    "SELECT count(*), sum(referenced)::bigint, sum(size)::bigint, sum(stored)::bigint FROM ("
    " SELECT sha256, sum(referenced) AS referenced, max(size) AS size, max(stored) AS stored"
    " FROM (" + _DISTINCT + ") AS d GROUP BY sha256) AS b"
)
"""Over the namespaces asked for: a blob named from several counts once."""


USAGE_SQL = UsageSql(RECORDS, JOBS, TRANSCRIPTS, KINDS, BLOBS, TOTAL_BLOBS)

QUEUES = """
SELECT namespace, queue,
       count(*) FILTER (WHERE state = 'ready' AND run_time <= now()
                        OR state = 'leased' AND lease_expire_time <= now()),
       count(*) FILTER (WHERE state = 'ready' AND run_time > now()),
       count(*) FILTER (WHERE state = 'leased' AND lease_expire_time > now()),
       extract(epoch FROM now() - min(CASE
           WHEN state = 'ready' AND run_time <= now() THEN run_time
           WHEN state = 'leased' AND lease_expire_time <= now() THEN lease_expire_time END))
FROM jobs
WHERE state IN ('ready', 'leased')
GROUP BY namespace, queue
"""


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
        return [
            QueueDepth(ns, queue, available, scheduled, leased, float(age or 0))
            for ns, queue, available, scheduled, leased, age in await cursor.fetchall()
        ]
