"""Every SQL statement of the SQLite job queue (`queue.py`, `job_rows.py`), in one place."""

from __future__ import annotations

from strata_server.core.job_transitions import (
    Visible,
)

ENTITY = "job"
PURGE_ACTOR = "system"

JOB_COLUMNS = (
    "namespace, queue, id, state, payload, priority, run_time, attempt, max_attempts, "
    "create_time, update_time, retry_backoff_us, unique_key, lease_token, "
    "lease_expire_time, last_error, result, finish_time"
)
"""The columns `job_from_row` reads and `_job_params` writes, in that order."""

LEASE_ORDER = "priority DESC, run_time, create_time, id"

INSERT_JOB = f"""
INSERT INTO jobs ({JOB_COLUMNS})
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING
RETURNING id
"""

SELECT_UNIQUE = f"""
SELECT {JOB_COLUMNS} FROM jobs
WHERE namespace = ? AND queue = ? AND unique_key = ? AND state IN ('ready', 'leased')
"""

SELECT_JOB = f"SELECT {JOB_COLUMNS} FROM jobs WHERE namespace = ? AND id = ?"

UPDATE_JOB = """
UPDATE jobs SET
    state = ?, priority = ?, run_time = ?, attempt = ?, max_attempts = ?, update_time = ?,
    lease_token = ?, lease_expire_time = ?, last_error = ?, result = ?, finish_time = ?
WHERE namespace = ? AND id = ?
"""

SELECT_PAUSED = "SELECT paused FROM queue_settings WHERE namespace = ? AND queue = ?"

# Two index-friendly halves (jobs_ready, jobs_leased), each already limited, merged
# into the one lease order.
SELECT_CANDIDATES = f"""
SELECT * FROM (
    SELECT * FROM (
        SELECT {JOB_COLUMNS} FROM jobs
        WHERE namespace = ? AND queue = ? AND state = 'ready' AND run_time <= ?
        ORDER BY {LEASE_ORDER} LIMIT ?
    )
    UNION ALL
    SELECT * FROM (
        SELECT {JOB_COLUMNS} FROM jobs
        WHERE namespace = ? AND queue = ? AND state = 'leased' AND lease_expire_time <= ?
        ORDER BY {LEASE_ORDER} LIMIT ?
    )
)
ORDER BY {LEASE_ORDER} LIMIT ?
"""

INSERT_EXPIRY = "INSERT INTO lease_expiries (namespace, queue, job_id, time) VALUES (?, ?, ?, ?)"

SELECT_UNIQUE_HOLDER = """
SELECT id FROM jobs
WHERE namespace = ? AND queue = ? AND unique_key = ? AND state IN ('ready', 'leased') AND id <> ?
"""

UPSERT_SETTINGS = """
INSERT INTO queue_settings (namespace, queue, paused) VALUES (?, ?, ?)
ON CONFLICT (namespace, queue) DO UPDATE SET paused = excluded.paused
"""

_VISIBLE = """CASE
        WHEN state = 'ready' AND run_time > ?1 THEN 'scheduled'
        WHEN state = 'ready' THEN 'available'
        WHEN state = 'leased' AND lease_expire_time <= ?1 THEN 'available'
        WHEN state = 'leased' THEN 'leased'
        ELSE state
    END"""
"""A job's visible state at ?1 (now), from its stored columns: what COUNT_BY_STATE and
LIST_QUEUES group by."""

COUNT_BY_STATE = f"""
SELECT
    {_VISIBLE} AS visible,
    count(*)
FROM jobs
WHERE namespace = ?2 AND queue = ?3
GROUP BY visible
"""

QUEUE_FIGURES = """
SELECT
    (SELECT paused FROM queue_settings WHERE namespace = ?2 AND queue = ?3),
    (SELECT min(since) FROM (
        SELECT min(run_time) AS since FROM jobs INDEXED BY jobs_ready
        WHERE namespace = ?2 AND queue = ?3 AND state = 'ready' AND run_time <= ?1
        UNION ALL
        SELECT min(lease_expire_time) FROM jobs
        WHERE namespace = ?2 AND queue = ?3 AND state = 'leased'
          AND lease_expire_time <= ?1
    )),
    (SELECT count(*) FROM lease_expiries
     WHERE namespace = ?2 AND queue = ?3 AND time > ?4)
"""

STATE_FILTERS: dict[Visible, str] = {
    Visible.AVAILABLE: (
        "((state = 'ready' AND run_time <= ?) OR (state = 'leased' AND lease_expire_time <= ?))"
    ),
    Visible.SCHEDULED: "(state = 'ready' AND run_time > ?)",
    Visible.LEASED: "(state = 'leased' AND lease_expire_time > ?)",
    Visible.COMPLETED: "(state = 'completed')",
    Visible.DEAD: "(state = 'dead')",
    Visible.CANCELLED: "(state = 'cancelled')",
}
"""SQL for "the visible state at ? is X", over the stored columns; one `?` per now."""

PURGE_COMPLETED = """
DELETE FROM jobs WHERE rowid IN (
    SELECT rowid FROM jobs WHERE state = 'completed' AND finish_time < ?
    ORDER BY finish_time LIMIT ?
)
RETURNING namespace, id
"""

PURGE_EXPIRIES = "DELETE FROM lease_expiries WHERE time <= ?"

LIST_QUEUES = f"""
WITH page(queue) AS (
    SELECT queue FROM (
        SELECT * FROM (
            SELECT DISTINCT queue FROM jobs INDEXED BY jobs_list
            WHERE namespace = ?2 AND queue > ?3 ORDER BY queue LIMIT ?4
        )
        UNION
        SELECT * FROM (
            SELECT queue FROM queue_settings
            WHERE namespace = ?2 AND queue > ?3 AND paused ORDER BY queue LIMIT ?4
        )
    ) ORDER BY queue LIMIT ?4
), counted AS (
    SELECT
        queue,
        {_VISIBLE} AS visible,
        count(*) AS n,
        min(CASE WHEN state = 'ready' THEN run_time ELSE lease_expire_time END) AS since
    FROM jobs INDEXED BY jobs_list
    WHERE namespace = ?2 AND queue IN (SELECT queue FROM page)
    GROUP BY queue, visible
)
SELECT
    page.queue,
    coalesce((SELECT paused FROM queue_settings AS s
              WHERE s.namespace = ?2 AND s.queue = page.queue), 0),
    (SELECT count(*) FROM lease_expiries AS e
     WHERE e.namespace = ?2 AND e.queue = page.queue AND e.time > ?5),
    counted.visible,
    counted.n,
    counted.since
FROM page LEFT JOIN counted ON counted.queue = page.queue
ORDER BY page.queue
"""
"""ListQueues: the page of queue names after ?3 (?4 of them: those with jobs, off the
jobs_list index, merged with the paused ones), then one row per (queue, visible
state) with its count and, for `available`, since when its oldest job has been
available; a paused queue without jobs is one row with NULL state. ?1 is now, ?5
the start of the lease expiry window."""

AVAILABILITY = """
SELECT EXISTS (SELECT 1 FROM jobs WHERE namespace = ?1 AND queue = ?2
               AND state = 'ready' AND run_time <= ?3)
    OR EXISTS (SELECT 1 FROM jobs WHERE namespace = ?1 AND queue = ?2
               AND state = 'leased' AND lease_expire_time <= ?3),
    EXISTS (SELECT 1 FROM jobs WHERE namespace = ?1 AND queue = ?2 AND state = 'ready')
    OR EXISTS (SELECT 1 FROM jobs WHERE namespace = ?1 AND queue = ?2 AND state = 'leased')
"""
"""Whether a lease could take a job of the queue now (ready and due, or leased with
its lease expired), and whether the queue holds any ready or leased job: the queue
re-check of idle consumers, which rests while the second is false."""
