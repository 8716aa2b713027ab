"""GetUsage's statements and the queue depths the gauges read, in SQL both dialects
share.

The engines differ only in how a named parameter and "now" are written, the casts
PostgreSQL needs (a parameter it compares with NULL must be typed; it widens a sum
of bigints to numeric), how many bytes a record's JSON takes, and the collation that
sorts collection names bytewise (SQLite's default). `UsageDialect` holds those, so
each statement is written once, here, and each engine builds its own from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from strata_server.core.models import QueueDepth
from strata_server.core.values import frozen
from strata_server.storage.usage_rows import UsageSql


@frozen
class UsageDialect:
    """What one engine writes differently in the usage statements."""

    param: Callable[[str], str]
    """A named placeholder."""
    now: str
    """The current time: a function of the database, or the `now` parameter."""
    optional: str = ""
    """Appended to a placeholder compared with NULL."""
    integer: str = ""
    """Appended to a sum, so it comes back as an integer."""
    json_bytes: str = "length(CAST(data AS BLOB))"
    """The bytes of a record's data."""
    bytewise: str = ""
    """Appended to ORDER BY collection, so names sort by their bytes."""


def usage_sql(d: UsageDialect) -> UsageSql:
    """GetUsage's statements on one engine, each taking the parameters `namespace`
    and `owner` (None: every one) and returning the rows `usage_rows.assemble` takes."""
    ns, owner = d.param("namespace"), d.param("owner")
    namespace = f"({ns}{d.optional} IS NULL OR namespace = {ns})"
    owned = f"{namespace} AND ({owner}{d.optional} IS NULL OR owner = {owner})"
    distinct = (
        "SELECT namespace, sha256, sum(size) AS referenced, max(size) AS size,"
        f" max(stored_size) AS stored FROM artifacts WHERE {owned} GROUP BY namespace, sha256"
    )
    return UsageSql(
        records=f"""
SELECT namespace, collection, count(*), coalesce(sum({d.json_bytes}), 0){d.integer}
FROM records
WHERE {owned} AND (expire_time IS NULL OR expire_time > {d.now})
GROUP BY namespace, collection
ORDER BY namespace, collection{d.bytewise}
""",
        jobs=f"""
SELECT namespace,
       CASE
           WHEN state = 'ready' AND run_time <= {d.now} THEN 'available'
           WHEN state = 'ready' THEN 'scheduled'
           WHEN state = 'leased' AND lease_expire_time <= {d.now} THEN 'available'
           ELSE state
       END AS visible,
       count(*)
FROM jobs
WHERE {namespace}
GROUP BY 1, 2
ORDER BY 1, 2
""",
        # The archived ones too: how many, their sizes, their segments' stored bytes.
        transcripts=(
            f"SELECT namespace, count(*), sum(next_seq - 1){d.integer}, sum(size_bytes){d.integer},"
            f" sum(CASE WHEN archive_time IS NULL THEN 0 ELSE 1 END){d.integer},"
            f" sum(CASE WHEN archive_time IS NULL THEN 0 ELSE size_bytes END){d.integer},"
            " sum(CASE WHEN archive_time IS NULL THEN 0 ELSE ("
            " SELECT coalesce(sum(g.stored_size), 0) FROM transcript_segments AS g"
            " WHERE g.namespace = transcripts.namespace AND g.transcript_id = transcripts.id)"
            f" END){d.integer}"
            f" FROM transcripts WHERE {owned} GROUP BY namespace"
        ),
        kinds=(
            f"SELECT namespace, kind, count(*), sum(size){d.integer}, sum(stored_size){d.integer},"
            f" sum(CASE WHEN archive_time IS NULL THEN 0 ELSE 1 END){d.integer},"
            f" sum(CASE WHEN archive_time IS NULL THEN 0 ELSE size END){d.integer},"
            f" sum(CASE WHEN archive_time IS NULL THEN 0 ELSE stored_size END){d.integer}"
            f" FROM artifacts WHERE {owned} GROUP BY namespace, kind ORDER BY namespace, kind"
        ),
        # Per namespace: the blobs its artifacts name, each once.
        blobs=(
            f"SELECT namespace, count(*), sum(referenced){d.integer}, sum(size){d.integer},"
            f" sum(stored){d.integer} FROM ({distinct}) AS d GROUP BY namespace"
        ),
        # Over the namespaces asked for: a blob named from several counts once.
        total_blobs=(
            f"SELECT count(*), sum(referenced){d.integer}, sum(size){d.integer},"
            f" sum(stored){d.integer} FROM ("
            " SELECT sha256, sum(referenced) AS referenced, max(size) AS size,"
            f" max(stored) AS stored FROM ({distinct}) AS d GROUP BY sha256) AS b"
        ),
    )


def queue_depths_sql(d: UsageDialect) -> str:
    """Every queue with unfinished jobs, in every namespace: how many jobs are
    available (ready and due, or leased with the lease expired), scheduled and
    leased, since when the oldest available one has been (its run_time, or its
    lease's expiry), and the now they were counted at."""
    available = (
        f"state = 'ready' AND run_time <= {d.now}"
        f" OR state = 'leased' AND lease_expire_time <= {d.now}"
    )
    return f"""
SELECT namespace, queue,
       count(CASE WHEN {available} THEN 1 END),
       count(CASE WHEN state = 'ready' AND run_time > {d.now} THEN 1 END),
       count(CASE WHEN state = 'leased' AND lease_expire_time > {d.now} THEN 1 END),
       min(CASE WHEN state = 'ready' AND run_time <= {d.now} THEN run_time
                WHEN state = 'leased' AND lease_expire_time <= {d.now} THEN lease_expire_time END),
       {d.now}
FROM jobs
WHERE state IN ('ready', 'leased')
GROUP BY namespace, queue
"""


def queue_depths(
    rows: Iterable[Sequence[Any]], time_value: Callable[[Any], datetime]
) -> list[QueueDepth]:
    """The rows of `queue_depths_sql`, with times as the engine returns them."""
    return [
        QueueDepth(
            ns,
            queue,
            available,
            scheduled,
            leased,
            0.0 if since is None else (time_value(now) - time_value(since)).total_seconds(),
        )
        for ns, queue, available, scheduled, leased, since, now in rows
    ]
