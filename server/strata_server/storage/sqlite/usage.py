"""GetUsage on SQLite: live records and their JSON bytes per collection, jobs per
visible state, transcripts and their entries (from the transcripts' own counters,
next_seq and size_bytes, never a scan of the entries), artifacts per kind and the
distinct blobs they name, per namespace: one grouped scan of each table
(storage/usage_rows.py puts the rows together). An owner leaves out records and
jobs, which have none."""

from __future__ import annotations

from datetime import UTC, datetime

from strata_server.core.models import QueueDepth, Usage
from strata_server.storage.sqlite.connection import Connections
from strata_server.storage.sqlite.dialect import from_micros, to_micros
from strata_server.storage.usage_rows import UsageSql, usage_of

RECORDS = """
SELECT namespace, collection, count(*), coalesce(sum(length(CAST(data AS BLOB))), 0)
FROM records
WHERE (:namespace IS NULL OR namespace = :namespace)
  AND (expire_time IS NULL OR expire_time > :now)
GROUP BY namespace, collection
ORDER BY namespace, collection
"""

JOBS = """
SELECT namespace,
       CASE
           WHEN state = 'ready' AND run_time <= :now THEN 'available'
           WHEN state = 'ready' THEN 'scheduled'
           WHEN state = 'leased' AND lease_expire_time <= :now THEN 'available'
           ELSE state
       END AS visible,
       count(*)
FROM jobs
WHERE :namespace IS NULL OR namespace = :namespace
GROUP BY 1, 2
ORDER BY 1, 2
"""

_OWNED = "(:namespace IS NULL OR namespace = :namespace) AND (:owner IS NULL OR owner = :owner)"

TRANSCRIPTS = f"""
SELECT namespace, count(*), sum(next_seq - 1), sum(size_bytes)
FROM transcripts WHERE {_OWNED}
GROUP BY namespace
"""

KINDS = f"""
SELECT namespace, kind, count(*), sum(size), sum(stored_size)
FROM artifacts WHERE {_OWNED}
GROUP BY namespace, kind
ORDER BY namespace, kind
"""

_DISTINCT = f"""
SELECT namespace, sha256, sum(size) AS referenced, max(size) AS size,
       max(stored_size) AS stored
FROM artifacts WHERE {_OWNED}
GROUP BY namespace, sha256
"""

BLOBS = f"""
SELECT namespace, count(*), sum(referenced), sum(size), sum(stored)
FROM ({_DISTINCT}) GROUP BY namespace
"""
"""Per namespace: the blobs its artifacts name, each once."""

TOTAL_BLOBS = f"""
SELECT count(*), sum(referenced), sum(size), sum(stored) FROM (
    SELECT sha256, sum(referenced) AS referenced, max(size) AS size, max(stored) AS stored
    FROM ({_DISTINCT}) GROUP BY sha256
)
"""
"""Over the namespaces asked for: a blob named from several counts once."""


USAGE_SQL = UsageSql(RECORDS, JOBS, TRANSCRIPTS, KINDS, BLOBS, TOTAL_BLOBS)

QUEUES = """
SELECT namespace, queue,
       sum(state = 'ready' AND run_time <= :now)
           + sum(state = 'leased' AND lease_expire_time <= :now),
       sum(state = 'ready' AND run_time > :now),
       sum(state = 'leased' AND lease_expire_time > :now),
       min(CASE WHEN state = 'ready' AND run_time <= :now THEN run_time
                WHEN state = 'leased' AND lease_expire_time <= :now THEN lease_expire_time END)
FROM jobs
WHERE state IN ('ready', 'leased')
GROUP BY namespace, queue
"""


class SqliteUsage:
    """`UsageReport` over SQLite."""

    def __init__(self, db: Connections) -> None:
        self._db = db

    async def usage(self, namespace: str | None, owner: str | None = None) -> Usage:
        params = {"namespace": namespace, "owner": owner, "now": to_micros(datetime.now(UTC))}
        return await usage_of(lambda sql: self._db.fetchall(sql, params), USAGE_SQL, owner)

    async def queue_depths(self) -> list[QueueDepth]:
        now = datetime.now(UTC)
        rows = await self._db.fetchall(QUEUES, {"now": to_micros(now)})
        return [
            QueueDepth(
                ns,
                queue,
                available,
                scheduled,
                leased,
                (now - from_micros(since)).total_seconds() if since is not None else 0.0,
            )
            for ns, queue, available, scheduled, leased, since in rows
        ]
