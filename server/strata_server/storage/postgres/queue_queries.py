"""Every SQL statement of the PostgreSQL job queue (`queue.py`), in one place.

As in `queries.py`: fixed texts, executed with `prepare=True`; arrays travel in
binary (`%b`). ListJobs has one fixed text per (state filter, first page or not),
built here at import time from constant fragments only.
"""

from __future__ import annotations

from typing import LiteralString

from strata_server.core.queue import Visible

JOB_COLUMNS = (
    "id, queue, state, payload, priority, run_time, attempt, max_attempts, create_time, "
    "update_time, retry_backoff_us, unique_key, lease_token, lease_expire_time, last_error, "
    "result, finish_time"
)
"""The columns `queue.job_from_row` reads, in its order."""

# --- Enqueue -------------------------------------------------------------------------

ENQUEUE = """
WITH inserted AS (
    INSERT INTO jobs AS j
        (namespace, id, queue, state, payload, priority, run_time, attempt, max_attempts,
         create_time, update_time, retry_backoff_us, unique_key)
    SELECT %(namespace)s::text, w.id, w.queue, 'ready', w.payload::jsonb, w.priority,
           w.run_time, 0, w.max_attempts, %(now)s::timestamptz, %(now)s::timestamptz,
           w.retry_backoff_us, w.unique_key
    FROM unnest(%(id)b::text[], %(queue)b::text[], %(payload)b::text[], %(priority)b::int[],
                %(run_time)b::timestamptz[], %(max_attempts)b::int[],
                %(retry_backoff_us)b::bigint[], %(unique_key)b::text[])
        WITH ORDINALITY AS w(id, queue, payload, priority, run_time, max_attempts,
                             retry_backoff_us, unique_key, ordinal)
    ORDER BY w.ordinal
    ON CONFLICT (namespace, queue, unique_key)
        WHERE unique_key IS NOT NULL AND state IN ('ready', 'leased')
        DO NOTHING
    RETURNING j.id
), audited AS (
    INSERT INTO audit_log
        (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
    SELECT %(namespace)s::text, %(now)s::timestamptz, %(actor)s::text, 'enqueue', 'job', id, 0,
           '["state"]'::jsonb, %(request_id)s::text
    FROM inserted
), answered AS (
    UPDATE request_log SET result = %(result)s::jsonb
    WHERE namespace = %(namespace)s::text AND request_id = %(request_id)s::text
      AND NOT EXISTS (
          SELECT 1 FROM unnest(%(id)b::text[]) AS w(id)
          WHERE w.id NOT IN (SELECT id FROM inserted)
      )
)
SELECT id FROM inserted
"""
"""Insert new jobs; a job whose unique_key an unfinished job of its queue holds is
skipped by the partial unique index (a concurrent insert of the same key waits for
that transaction, then skips). Returns the ids inserted, each with an `enqueue`
audit entry. The request_log result (computed as if every job was inserted) is
stored only when every job was; otherwise `STORE_RESULT` runs afterwards."""

UNFINISHED_BY_KEY = f"""
SELECT {", ".join(f"j.{column.strip()}" for column in JOB_COLUMNS.split(","))}
FROM jobs AS j
JOIN unnest(%b::text[], %b::text[]) AS k(queue, unique_key)
    ON j.queue = k.queue AND j.unique_key = k.unique_key
WHERE j.namespace = %s AND j.unique_key IS NOT NULL AND j.state IN ('ready', 'leased')
"""
"""The unfinished jobs holding (queue, unique_key) pairs: what an enqueue skipped
by the unique index yields instead."""

STORE_RESULT = """
UPDATE request_log SET result = %s::jsonb WHERE namespace = %s AND request_id = %s
"""

# --- Lease ---------------------------------------------------------------------------

_LEASE_ORDER = "priority DESC, run_time, create_time, id"

_NOT_PAUSED = """NOT EXISTS (
        SELECT 1 FROM queue_settings AS s
        WHERE s.namespace = %(namespace)s::text AND s.queue = %(queue)s::text AND s.paused
    )"""

LEASE_CANDIDATES = f"""
SELECT {JOB_COLUMNS} FROM (
    SELECT * FROM (
        SELECT {JOB_COLUMNS} FROM jobs
        WHERE namespace = %(namespace)s::text AND queue = %(queue)s::text
          AND state = 'ready' AND run_time <= %(now)s::timestamptz AND {_NOT_PAUSED}
        ORDER BY {_LEASE_ORDER}
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) AS ready
    UNION ALL
    SELECT * FROM (
        SELECT {JOB_COLUMNS} FROM jobs
        WHERE namespace = %(namespace)s::text AND queue = %(queue)s::text
          AND state = 'leased' AND lease_expire_time <= %(now)s::timestamptz AND {_NOT_PAUSED}
        ORDER BY {_LEASE_ORDER}
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) AS expired
) AS candidates
ORDER BY {_LEASE_ORDER}
LIMIT %(limit)s
"""
"""Up to `limit` leasable jobs in lease order, locked. Each branch walks its own
partial index (`jobs_ready` in lease order; `jobs_leased` by expiry, then sorted:
expired leases are few) and locks as it goes with SKIP LOCKED, so a row another
lease holds is passed over and the scan moves on; a row changed meanwhile is
re-checked against the WHERE clause once locked (READ COMMITTED), so two leases
never take one job. A paused queue yields nothing (one-time filter)."""

WRITE_JOBS = """
WITH updated AS (
    UPDATE jobs AS j
    SET state = w.state, run_time = w.run_time, attempt = w.attempt,
        lease_token = w.lease_token, lease_expire_time = w.lease_expire_time,
        last_error = w.last_error, result = w.result::jsonb, update_time = w.update_time,
        finish_time = w.finish_time
    FROM unnest(%(id)b::text[], %(state)b::text[], %(run_time)b::timestamptz[],
                %(attempt)b::int[], %(lease_token)b::text[],
                %(lease_expire_time)b::timestamptz[], %(last_error)b::text[],
                %(result)b::text[], %(update_time)b::timestamptz[],
                %(finish_time)b::timestamptz[])
        AS w(id, state, run_time, attempt, lease_token, lease_expire_time, last_error, result,
             update_time, finish_time)
    WHERE j.namespace = %(namespace)s::text AND j.id = w.id
    RETURNING j.id
), expired AS (
    INSERT INTO lease_expiries (namespace, queue, time, job_id)
    SELECT %(namespace)s::text, e.queue, %(now)s::timestamptz, e.job_id
    FROM unnest(%(expired_queue)b::text[], %(expired_id)b::text[]) AS e(queue, job_id)
), audited AS (
    INSERT INTO audit_log
        (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
    SELECT %(namespace)s::text, %(now)s::timestamptz, %(actor)s::text, a.action, 'job',
           a.entity_id, a.version, a.changed_fields::jsonb, NULL
    FROM unnest(%(audit_action)b::text[], %(audit_entity_id)b::text[],
                %(audit_version)b::bigint[], %(audit_changed_fields)b::text[])
        WITH ORDINALITY AS a(action, entity_id, version, changed_fields, ordinal)
    ORDER BY a.ordinal
)
SELECT count(*) FROM updated
"""
"""Write back the mutable columns of jobs locked earlier in the transaction, the
lease expiries reclaimed, and the audit entries, in one statement."""

WRITE_JOB = """
WITH updated AS (
    UPDATE jobs
    SET state = %s, run_time = %s, attempt = %s, lease_token = %s, lease_expire_time = %s,
        last_error = %s, result = %s::jsonb, update_time = %s, finish_time = %s
    WHERE namespace = %s AND id = %s
)
INSERT INTO audit_log
    (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
VALUES (%s, %s, %s, %s, 'job', %s, %s, %s::jsonb, NULL)
"""
"""WRITE_JOBS for one job with its one audit entry and no lease expiry, with scalar
parameters: the hot path of ack, fail and extend."""

# --- Single-job transitions and reads ------------------------------------------------

LOCK_JOB = f"SELECT {JOB_COLUMNS} FROM jobs WHERE namespace = %s AND id = %s FOR UPDATE"

GET_JOB = f"SELECT {JOB_COLUMNS} FROM jobs WHERE namespace = %s AND id = %s"

HELD_LEASES = """
SELECT j.id FROM jobs AS j
JOIN unnest(%b::text[], %b::text[]) AS h(id, lease_token)
    ON j.id = h.id AND j.lease_token = h.lease_token
WHERE j.namespace = %s AND j.state = 'leased' AND j.lease_expire_time > %s
"""
"""Of (job id, lease token) pairs, the ids whose job is leased under exactly that
token and unexpired (held_leases: what a SubscribeJobs stream still holds)."""

_VISIBLE: dict[Visible | None, LiteralString] = {
    None: "TRUE",
    Visible.AVAILABLE: (
        "((state = 'ready' AND run_time <= %(now)s::timestamptz)"
        " OR (state = 'leased' AND lease_expire_time <= %(now)s::timestamptz))"
    ),
    Visible.SCHEDULED: "(state = 'ready' AND run_time > %(now)s::timestamptz)",
    Visible.LEASED: "(state = 'leased' AND lease_expire_time > %(now)s::timestamptz)",
    Visible.COMPLETED: "state = 'completed'",
    Visible.DEAD: "state = 'dead'",
    Visible.CANCELLED: "state = 'cancelled'",
}


def _list_jobs(where: LiteralString, after: bool) -> LiteralString:
    keyset: LiteralString = (
        " AND (create_time, id) > (%(after_time)s::timestamptz, %(after_id)s::text)"
        if after
        else ""
    )
    return (
        f"SELECT {JOB_COLUMNS} FROM jobs "
        f"WHERE namespace = %(namespace)s::text AND queue = %(queue)s::text AND {where}"
        f"{keyset} ORDER BY create_time, id LIMIT %(limit)s"
    )


LIST_JOBS: dict[tuple[Visible | None, bool], LiteralString] = {
    (state, after): _list_jobs(where, after)
    for state, where in _VISIBLE.items()
    for after in (False, True)
}
"""ListJobs by (state filter, whether a page key is given); params namespace, queue,
now (for the time-dependent filters), after_time/after_id, limit."""

# --- Settings, stats, purge ----------------------------------------------------------

SET_PAUSED = """
WITH upserted AS (
    INSERT INTO queue_settings (namespace, queue, paused)
    VALUES (%(namespace)s::text, %(queue)s::text, %(paused)s::boolean)
    ON CONFLICT (namespace, queue) DO UPDATE SET paused = excluded.paused
), audited AS (
    INSERT INTO audit_log
        (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
    VALUES (%(namespace)s::text, %(now)s::timestamptz, %(actor)s::text, %(action)s::text,
            'job', %(queue)s::text, 0, '["paused"]'::jsonb, NULL)
)
SELECT 1
"""

QUEUE_STATS = """
WITH counted AS (
    SELECT CASE
               WHEN state = 'ready' AND run_time <= %(now)s::timestamptz THEN 'available'
               WHEN state = 'ready' THEN 'scheduled'
               WHEN state = 'leased' AND lease_expire_time <= %(now)s::timestamptz
                   THEN 'available'
               WHEN state = 'leased' THEN 'leased'
               ELSE state
           END AS visible,
           count(*) AS n,
           min(CASE WHEN state = 'ready' THEN run_time ELSE lease_expire_time END) AS since
    FROM jobs
    WHERE namespace = %(namespace)s::text AND queue = %(queue)s::text
    GROUP BY 1
)
SELECT
    coalesce((SELECT paused FROM queue_settings
              WHERE namespace = %(namespace)s::text AND queue = %(queue)s::text), FALSE),
    (SELECT count(*) FROM lease_expiries
     WHERE namespace = %(namespace)s::text AND queue = %(queue)s::text
       AND time > %(window_start)s::timestamptz),
    (SELECT coalesce(array_agg(visible), '{}') FROM counted),
    (SELECT coalesce(array_agg(n), '{}') FROM counted),
    (SELECT since FROM counted WHERE visible = 'available')
"""
"""Paused flag, lease expiries within the window, counts by visible state (two
parallel arrays), and since when the oldest available job has been available (its
run_time, or its lease's expiry for a reclaimable one)."""

PURGE_COMPLETED = """
WITH doomed AS (
    SELECT namespace, id FROM jobs
    WHERE state = 'completed' AND finish_time < %(before)s::timestamptz
    ORDER BY finish_time
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM jobs AS j USING doomed AS d
    WHERE j.namespace = d.namespace AND j.id = d.id
    RETURNING j.id
), forgotten AS (
    DELETE FROM lease_expiries WHERE time <= %(window_start)s::timestamptz
)
SELECT count(*) FROM gone
"""
"""Delete up to `limit` completed jobs finished before `before` (by primary key, as
Citus needs), and every lease expiry older than the stats window."""
