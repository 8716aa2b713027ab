"""The PostgreSQL job queue's statements on jobs already enqueued (`queue.py` runs
them): a lease holder's one-statement ack, release and extend, single-job reads,
listing, settings, stats and purge. Enqueue and lease are in `queue_queries.py`.

As there: fixed texts, executed with `prepare=True`; arrays travel in binary.
"""

from __future__ import annotations

from typing import LiteralString

from strata_server.core.job_transitions import Visible
from strata_server.storage.postgres.queue_queries import J_COLUMNS, JOB_COLUMNS, changed_fields

# --- One-statement ack, release, extend ----------------------------------------------

_HELD = """
WITH locked AS MATERIALIZED (
    SELECT id, state, run_time, attempt, lease_token, lease_expire_time, result, finish_time
    FROM jobs
    WHERE namespace = %(namespace)s::text AND id = %(id)s::text
    FOR UPDATE
), held AS (
    SELECT * FROM locked
    WHERE state = 'leased' AND lease_token = %(token)s::text
      AND lease_expire_time > %(now)s::timestamptz
)"""
"""The job if it is leased under `token` and unexpired at `now` (core.job_transitions.
check_lease), locked, with its values before the update. Locked by primary key
first and checked after (on its latest version, once any transition it queued
behind committed): the MATERIALIZED fence keeps the check out of the index scan, so
the jobs_leased index never tempts the planner into a walk over every unexpired
lease of the namespace (which it takes on a fresh table otherwise)."""


def _settle(
    action: LiteralString, assignments: LiteralString, *columns: str, held: str = _HELD
) -> str:
    """One statement that applies a lease holder's transition to the job `held`
    finds (by default `_HELD`), with its audit entry (`action`, version = attempt,
    changed_fields among `columns`), and returns the job written; no row when the
    lease is not held."""
    return f"""{held}, updated AS (
    UPDATE jobs AS j
    SET {assignments}
    FROM held AS h
    WHERE j.namespace = %(namespace)s::text AND j.id = h.id
    RETURNING {J_COLUMNS}, {changed_fields("h", *columns)} AS changed_fields
), audited AS (
    INSERT INTO audit_log
        (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
    SELECT %(namespace)s::text, %(now)s::timestamptz, %(actor)s::text, '{action}', 'job', id,
           attempt, changed_fields, NULL
    FROM updated
)
SELECT {JOB_COLUMNS} FROM updated
"""


_ACKED = ("state", "lease_token", "lease_expire_time", "result", "finish_time")
"""The columns an ack changes."""


def _ack(result: str) -> str:
    """An ack's assignments, the result taken from `result`."""
    return (
        f"state = 'completed', result = {result}::jsonb, lease_token = NULL, "
        "lease_expire_time = NULL, update_time = %(now)s::timestamptz, "
        "finish_time = %(now)s::timestamptz"
    )


ACK_JOB = _settle("ack", _ack("%(result)s"), *_ACKED)
"""core.job_transitions.plan_ack as one statement: params namespace, id, token, now, actor,
result (JSON text or NULL)."""

ACK_JOBS = _settle(
    "ack",
    _ack("h.new_result"),
    *_ACKED,
    held="""
WITH locked AS MATERIALIZED (
    SELECT id, state, run_time, attempt, lease_token, lease_expire_time, result, finish_time
    FROM jobs
    WHERE namespace = %(namespace)s::text AND id = ANY(%(ids)b::text[])
    ORDER BY id
    FOR UPDATE
), held AS (
    SELECT l.*, a.result AS new_result
    FROM locked AS l
    JOIN unnest(%(ids)b::text[], %(tokens)b::text[], %(results)b::text[])
         AS a(id, token, result) ON a.id = l.id
    WHERE l.state = 'leased' AND l.lease_token = a.token
      AND l.lease_expire_time > %(now)s::timestamptz
)""",
)
"""ACK_JOB for many jobs at once (params namespace, now, actor, and the arrays ids,
tokens, results): each job whose lease is held is completed with its audit entry;
the rest are left as they are. Rows are locked by primary key (`= ANY`, never a
join the planner could turn into a scan of every job) in id order, so two batches
that share jobs cannot deadlock. Returns the jobs completed."""

RELEASE_JOB = _settle(
    "release",
    "state = 'ready', attempt = greatest(j.attempt - 1, 0), run_time = %(now)s::timestamptz, "
    "lease_token = NULL, lease_expire_time = NULL, update_time = %(now)s::timestamptz",
    "state",
    "run_time",
    "attempt",
    "lease_token",
    "lease_expire_time",
)
"""core.job_transitions.plan_release as one statement: params namespace, id, token, now, actor."""

EXTEND_LEASE = _settle(
    "extend",
    "lease_expire_time = %(expire)s::timestamptz, update_time = %(now)s::timestamptz",
    "lease_expire_time",
)
"""core.job_transitions.plan_extend as one statement: params namespace, id, token, now, actor,
expire (now + lease)."""

# --- Single-job transitions and reads ------------------------------------------------

LOCK_JOB = f"SELECT {JOB_COLUMNS} FROM jobs WHERE namespace = %s AND id = %s FOR UPDATE"

GET_JOB = f"SELECT {JOB_COLUMNS} FROM jobs WHERE namespace = %s AND id = %s"

HELD_LEASES = """
WITH found AS MATERIALIZED (
    SELECT j.id, j.state, j.lease_token, j.lease_expire_time, h.lease_token AS token
    FROM unnest(%b::text[], %b::text[]) AS h(id, lease_token)
    JOIN jobs AS j ON j.namespace = %s AND j.id = h.id
)
SELECT id FROM found WHERE state = 'leased' AND lease_token = token AND lease_expire_time > %s
"""
"""Of (job id, lease token) pairs, the ids whose job is leased under exactly that
token and unexpired (held_leases: what a SubscribeJobs stream still holds). Jobs are
found by primary key, and checked behind the MATERIALIZED fence: offered the lease
columns, the planner walks every unexpired lease of the namespace on a table whose
statistics predate the leases."""

AVAILABILITY = """
SELECT EXISTS (
    SELECT 1 FROM jobs
    WHERE namespace = %(namespace)s::text AND queue = %(queue)s::text
      AND state = 'ready' AND run_time <= %(now)s::timestamptz
) OR EXISTS (
    SELECT 1 FROM jobs
    WHERE namespace = %(namespace)s::text AND queue = %(queue)s::text
      AND state = 'leased' AND lease_expire_time <= %(now)s::timestamptz
), EXISTS (
    SELECT 1 FROM jobs
    WHERE namespace = %(namespace)s::text AND queue = %(queue)s::text AND state = 'ready'
) OR EXISTS (
    SELECT 1 FROM jobs
    WHERE namespace = %(namespace)s::text AND queue = %(queue)s::text AND state = 'leased'
)
"""
"""Whether a lease could take a job of the queue now (the lease statement's ready
and reclaimable branches, without their locks), and whether the queue holds any
ready or leased job (the first row of either index): the queue re-check of idle
consumers, which rests while the second is false."""

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

_COUNTED = """CASE
               WHEN state = 'ready' AND run_time <= %(now)s::timestamptz THEN 'available'
               WHEN state = 'ready' THEN 'scheduled'
               WHEN state = 'leased' AND lease_expire_time <= %(now)s::timestamptz
                   THEN 'available'
               WHEN state = 'leased' THEN 'leased'
               ELSE state
           END AS visible,
           count(*) AS n,
           min(CASE WHEN state = 'ready' THEN run_time ELSE lease_expire_time END) AS since
    FROM jobs"""
"""Jobs by visible state at `now`: the state, how many, and since when the oldest of
them has been in it (for `available`: its run_time, or its lease's expiry for a
reclaimable one). QUEUE_STATS and LIST_QUEUES group by it (LIST_QUEUES by queue too)."""

QUEUE_STATS = f"""
WITH counted AS (
    SELECT {_COUNTED}
    WHERE namespace = %(namespace)s::text AND queue = %(queue)s::text
    GROUP BY 1
)
SELECT
    coalesce((SELECT paused FROM queue_settings
              WHERE namespace = %(namespace)s::text AND queue = %(queue)s::text), FALSE),
    (SELECT count(*) FROM lease_expiries
     WHERE namespace = %(namespace)s::text AND queue = %(queue)s::text
       AND time > %(window_start)s::timestamptz),
    (SELECT coalesce(array_agg(visible), '{{}}') FROM counted),
    (SELECT coalesce(array_agg(n), '{{}}') FROM counted),
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

LIST_QUEUES = f"""
WITH page AS (
    SELECT queue FROM (
        (SELECT DISTINCT queue FROM jobs
         WHERE namespace = %(namespace)s::text AND queue > %(after)s::text
         ORDER BY queue LIMIT %(limit)s)
        UNION
        (SELECT queue FROM queue_settings
         WHERE namespace = %(namespace)s::text AND queue > %(after)s::text AND paused
         ORDER BY queue LIMIT %(limit)s)
    ) AS named
    ORDER BY queue LIMIT %(limit)s
), counted AS (
    SELECT queue, {_COUNTED}
    WHERE namespace = %(namespace)s::text AND queue IN (SELECT queue FROM page)
    GROUP BY 1, 2
)
SELECT page.queue,
       coalesce((SELECT s.paused FROM queue_settings AS s
                 WHERE s.namespace = %(namespace)s::text AND s.queue = page.queue), FALSE),
       (SELECT count(*) FROM lease_expiries AS e
        WHERE e.namespace = %(namespace)s::text AND e.queue = page.queue
          AND e.time > %(window_start)s::timestamptz),
       counted.visible,
       counted.n,
       counted.since
FROM page LEFT JOIN counted ON counted.queue = page.queue
ORDER BY page.queue
"""
"""ListQueues: the page of queue names after `after` (`limit` of them: those with jobs,
in order off the jobs_list index, merged with the paused ones), then one row per
(queue, visible state) with its count and, for `available`, since when its oldest
job has been available; a paused queue without jobs is one row with NULL state."""
