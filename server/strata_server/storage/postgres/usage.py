"""GetUsage on PostgreSQL: live records and their JSON bytes per collection, jobs
per visible state, per namespace (one grouped scan of each table)."""

from __future__ import annotations

from strata_server.core.models import CollectionUsage, NamespaceUsage, QueueDepth
from strata_server.storage.postgres.pool import Conn

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


async def usage(conn: Conn, namespace: str | None) -> list[NamespaceUsage]:
    params = {"namespace": namespace}
    collections: dict[str, list[CollectionUsage]] = {}
    cursor = await conn.execute(RECORDS, params)
    for ns, collection, count, size in await cursor.fetchall():
        collections.setdefault(ns, []).append(CollectionUsage(collection, count, size))
    jobs: dict[str, list[tuple[str, int]]] = {}
    cursor = await conn.execute(JOBS, params)
    for ns, state, count in await cursor.fetchall():
        jobs.setdefault(ns, []).append((state, count))
    return [
        NamespaceUsage(ns, tuple(collections.get(ns, ())), tuple(jobs.get(ns, ())))
        for ns in sorted(collections.keys() | jobs.keys())
    ]


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


async def queue_depths(conn: Conn) -> list[QueueDepth]:
    cursor = await conn.execute(QUEUES)
    return [
        QueueDepth(ns, queue, available, scheduled, leased, float(age or 0))
        for ns, queue, available, scheduled, leased, age in await cursor.fetchall()
    ]
