"""GetUsage on SQLite: live records and their JSON bytes per collection, jobs per
visible state, per namespace (one grouped scan of each table)."""

from __future__ import annotations

from datetime import UTC, datetime

from strata_server.core.models import CollectionUsage, NamespaceUsage, QueueDepth
from strata_server.storage.sqlite.connection import Connections
from strata_server.storage.sqlite.dialect import from_micros, to_micros

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


async def usage(db: Connections, namespace: str | None) -> list[NamespaceUsage]:
    params = {"namespace": namespace, "now": to_micros(datetime.now(UTC))}
    collections: dict[str, list[CollectionUsage]] = {}
    for ns, collection, count, size in await db.fetchall(RECORDS, params):
        collections.setdefault(ns, []).append(CollectionUsage(collection, count, size))
    jobs: dict[str, list[tuple[str, int]]] = {}
    for ns, state, count in await db.fetchall(JOBS, params):
        jobs.setdefault(ns, []).append((state, count))
    return [
        NamespaceUsage(ns, tuple(collections.get(ns, ())), tuple(jobs.get(ns, ())))
        for ns in sorted(collections.keys() | jobs.keys())
    ]


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


async def queue_depths(db: Connections) -> list[QueueDepth]:
    now = datetime.now(UTC)
    rows = await db.fetchall(QUEUES, {"now": to_micros(now)})
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
