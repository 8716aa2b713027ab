"""Every SQL statement of the PostgreSQL job queue (`queue.py`), in one place.

As in `queries.py`: fixed texts, executed with `prepare=True`; arrays travel in
binary (`%b`). ListJobs has one fixed text per (state filter, first page or not),
built here at import time from constant fragments only.
"""

from __future__ import annotations

import dataclasses
from typing import LiteralString

from strata_server.core.queue import Job, Visible

JOB_COLUMNS = (
    "id, queue, state, payload, priority, run_time, attempt, max_attempts, create_time, "
    "update_time, retry_backoff_us, unique_key, lease_token, lease_expire_time, last_error, "
    "result, finish_time"
)
"""The columns `queue.job_from_row` reads, in its order."""

_J_COLUMNS = ", ".join(f"j.{column.strip()}" for column in JOB_COLUMNS.split(","))
"""JOB_COLUMNS of the table aliased `j` (the row an UPDATE ... RETURNING wrote)."""

_FIELD_ORDER = [field.name for field in dataclasses.fields(Job)]


def _changed_fields(old: str, *columns: str) -> str:
    """SQL for the changed_fields of an audit entry written by a statement that moved
    a job from the row `old` (its values before) to `j` (after): the JSON array of
    the `columns` whose value changed, in the order of the Job fields, as
    `queue._changed` lists them for a transition planned in Python."""
    ordered = sorted(columns, key=_FIELD_ORDER.index)  # ValueError for a non-field
    cases = ", ".join(
        f"CASE WHEN {old}.{column} IS DISTINCT FROM j.{column} THEN '{column}' END"
        for column in ordered
    )
    return f"to_jsonb(array_remove(ARRAY[{cases}]::text[], NULL))"


_NOT_PAUSED = """NOT EXISTS (
        SELECT 1 FROM queue_settings AS s
        WHERE s.namespace = %(namespace)s::text AND s.queue = %(queue)s::text AND s.paused
    )"""


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
), notified AS (
    SELECT pg_notify(%(channel)s::text, n.notice)
    FROM unnest(%(notices)b::text[]) AS n(notice)
    WHERE EXISTS (SELECT 1 FROM inserted)
)
SELECT id FROM inserted WHERE (SELECT count(*) FROM notified) >= 0
"""
"""Insert new jobs; a job whose unique_key an unfinished job of its queue holds is
skipped by the partial unique index (a concurrent insert of the same key waits for
that transaction, then skips). Returns the ids inserted, each with an `enqueue`
audit entry. The request_log result (computed as if every job was inserted) is
stored only when every job was; otherwise `STORE_RESULT` runs afterwards. When a
job was inserted, each of `notices` is NOTIFYd on `channel` (delivered at commit:
events.postgres; the final WHERE only makes PostgreSQL run that CTE)."""

_HANDOFF_CHANGED = (
    "["
    + ", ".join(
        f'"{name}"'
        for name in sorted(
            ("state", "attempt", "lease_token", "lease_expire_time"), key=_FIELD_ORDER.index
        )
    )
    + "]"
)

ENQUEUE_HANDED = f"""
WITH behind AS (
    SELECT NOT EXISTS (
        SELECT 1 FROM jobs
        WHERE namespace = %(namespace)s::text AND queue = %(queue)s::text AND state = 'ready'
          AND run_time <= %(now)s::timestamptz AND priority >= %(priority)s::int
    ) AND NOT EXISTS (
        SELECT 1 FROM jobs
        WHERE namespace = %(namespace)s::text AND queue = %(queue)s::text AND state = 'leased'
          AND lease_expire_time <= %(now)s::timestamptz AND priority >= %(priority)s::int
    ) AND {_NOT_PAUSED} AS first
), inserted AS (
    INSERT INTO jobs AS j
        (namespace, id, queue, state, payload, priority, run_time, attempt, max_attempts,
         create_time, update_time, retry_backoff_us, unique_key, lease_token,
         lease_expire_time)
    SELECT %(namespace)s::text, %(id)s::text, %(queue)s::text,
           CASE WHEN b.first THEN 'leased' ELSE 'ready' END, %(payload)s::jsonb,
           %(priority)s::int, %(run_time)s::timestamptz, CASE WHEN b.first THEN 1 ELSE 0 END,
           %(max_attempts)s::int, %(now)s::timestamptz, %(now)s::timestamptz,
           %(retry_backoff_us)s::bigint, %(unique_key)s::text,
           CASE WHEN b.first THEN %(token)s::text END,
           CASE WHEN b.first THEN %(expire)s::timestamptz END
    FROM behind AS b
    ON CONFLICT (namespace, queue, unique_key)
        WHERE unique_key IS NOT NULL AND state IN ('ready', 'leased')
        DO NOTHING
    RETURNING {_J_COLUMNS}
), audited AS (
    INSERT INTO audit_log
        (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
    SELECT %(namespace)s::text, %(now)s::timestamptz, a.actor, a.action, 'job', a.id,
           a.version, a.changed_fields::jsonb, NULL
    FROM (SELECT %(actor)s::text AS actor, 'enqueue' AS action, id, 0 AS version,
                 '["state"]' AS changed_fields
          FROM inserted
          UNION ALL
          SELECT %(lease_actor)s::text, 'lease', id, 1, '{_HANDOFF_CHANGED}'
          FROM inserted WHERE state = 'leased') AS a
    ORDER BY a.version
), notified AS (
    SELECT pg_notify(%(channel)s::text, n.notice)
    FROM unnest(%(notices)b::text[]) AS n(notice)
    WHERE EXISTS (SELECT 1 FROM inserted WHERE state = 'ready')
)
SELECT {JOB_COLUMNS} FROM inserted WHERE (SELECT count(*) FROM notified) >= 0
"""
"""Enqueue one job (no request_id) for a consumer parked on its queue
(api.handoff): inserted already leased to it (attempt 1, lease `token`
until `expire`, audited `enqueue` then `lease`) when it is first in lease order, so
when no due ready job or expired lease of the queue has a priority as high, and the
queue is not paused. That check is conservative (an older job of equal priority
due later than this one's run_time still counts as ahead), so it never lets a job
jump the line; a job that is not first is inserted ready, as ENQUEUE does, and
announced with `notices`. Returns the job, or no row when the unique index
skipped it."""

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

_LEASE_BRANCH = f"""
    FROM jobs
    WHERE namespace = %(namespace)s::text AND queue = %(queue)s::text AND {_NOT_PAUSED}"""

_LOCKED_COLUMNS = (
    "id, queue, state, attempt, lease_token, lease_expire_time, last_error, finish_time, "
    "priority, run_time, create_time"
)
"""What the lease statement keeps of each locked row: its values before (for the
audit entry's changed_fields) and its lease order."""

_LEASE_CHANGED = _changed_fields("c", "state", "attempt", "lease_token", "lease_expire_time")
_DEAD_CHANGED = _changed_fields(
    "d", "state", "lease_token", "lease_expire_time", "last_error", "finish_time"
)

LEASE_JOBS = f"""
WITH ready AS MATERIALIZED (
    SELECT {_LOCKED_COLUMNS} {_LEASE_BRANCH}
      AND state = 'ready' AND run_time <= %(now)s::timestamptz
    ORDER BY {_LEASE_ORDER}
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), reclaimable AS MATERIALIZED (
    SELECT {_LOCKED_COLUMNS} {_LEASE_BRANCH}
      AND state = 'leased' AND lease_expire_time <= %(now)s::timestamptz
      AND attempt < max_attempts
    ORDER BY {_LEASE_ORDER}
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), dying AS MATERIALIZED (
    SELECT {_LOCKED_COLUMNS} {_LEASE_BRANCH}
      AND state = 'leased' AND lease_expire_time <= %(now)s::timestamptz
      AND attempt >= max_attempts
    ORDER BY {_LEASE_ORDER}
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), chosen AS MATERIALIZED (
    SELECT c.*, row_number() OVER (ORDER BY {_LEASE_ORDER}) AS slot
    FROM (SELECT * FROM ready UNION ALL SELECT * FROM reclaimable) AS c
    ORDER BY {_LEASE_ORDER}
    LIMIT %(limit)s
), leased AS (
    UPDATE jobs AS j
    SET state = 'leased', attempt = j.attempt + 1,
        lease_token = (%(tokens)b::text[])[c.slot],
        lease_expire_time = %(expire)s::timestamptz, update_time = %(now)s::timestamptz
    FROM chosen AS c
    WHERE j.namespace = %(namespace)s::text AND j.id = c.id
    RETURNING {_J_COLUMNS}, c.state AS old_state, {_LEASE_CHANGED} AS changed_fields
), killed AS (
    UPDATE jobs AS j
    SET state = 'dead', lease_token = NULL, lease_expire_time = NULL,
        last_error = %(died)s::text, update_time = %(now)s::timestamptz,
        finish_time = %(now)s::timestamptz
    FROM dying AS d
    WHERE j.namespace = %(namespace)s::text AND j.id = d.id
    RETURNING {_J_COLUMNS}, {_DEAD_CHANGED} AS changed_fields
), expired AS (
    INSERT INTO lease_expiries (namespace, queue, time, job_id)
    SELECT %(namespace)s::text, queue, %(now)s::timestamptz, id
    FROM (SELECT queue, id FROM leased WHERE old_state = 'leased'
          UNION ALL SELECT queue, id FROM killed) AS e
), audited AS (
    INSERT INTO audit_log
        (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
    SELECT %(namespace)s::text, %(now)s::timestamptz, %(actor)s::text, a.action, 'job', a.id,
           a.attempt, a.changed_fields, NULL
    FROM (SELECT 'lease' AS action, id, attempt, changed_fields, priority, run_time,
                 create_time
          FROM leased
          UNION ALL
          SELECT 'dead', id, attempt, changed_fields, priority, run_time, create_time
          FROM killed) AS a
    ORDER BY {_LEASE_ORDER}
)
SELECT {JOB_COLUMNS} FROM leased
UNION ALL
SELECT {JOB_COLUMNS} FROM killed
ORDER BY {_LEASE_ORDER}
"""
"""Lease up to `limit` jobs in one statement (autocommit): core.queue.plan_lease in
SQL. Params namespace, queue, now, limit, tokens (`limit` lease tokens: a job gets
the one of its place in lease order), expire (now + lease), died (plan_lease's
last_error for a job reclaimed on its last attempt), actor.

Three branches lock candidates with FOR UPDATE SKIP LOCKED, each walking its
partial index (`jobs_ready` in lease order; `jobs_leased` by expiry, then sorted:
expired leases are few): ready and due jobs, expired leases with attempts left, and
expired leases on their last attempt. A row another lease holds is passed over; a
row changed meanwhile is re-checked against the WHERE clause once locked (READ
COMMITTED), so two leases never take one job. The first `limit` of the first two
branches in lease order are leased (attempt + 1); those of the third die (last_error
`died`) and use up no slot. Reclaimed and killed leases go to lease_expiries, and
every job written gets its audit entry (`lease` or `dead`, version = attempt). A
paused queue yields nothing (a one-time filter in each branch). Returns the jobs
leased and killed (their state tells which), in lease order."""

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
"""Write back the mutable columns of one job locked earlier in the transaction, with
its one audit entry (fail, cancel, retry)."""

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
"""The job if it is leased under `token` and unexpired at `now` (core.queue.
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
    RETURNING {_J_COLUMNS}, {_changed_fields("h", *columns)} AS changed_fields
), audited AS (
    INSERT INTO audit_log
        (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
    SELECT %(namespace)s::text, %(now)s::timestamptz, %(actor)s::text, '{action}', 'job', id,
           attempt, changed_fields, NULL
    FROM updated
)
SELECT {JOB_COLUMNS} FROM updated
"""


ACK_JOB = _settle(
    "ack",
    "state = 'completed', result = %(result)s::jsonb, lease_token = NULL, "
    "lease_expire_time = NULL, update_time = %(now)s::timestamptz, "
    "finish_time = %(now)s::timestamptz",
    "state",
    "lease_token",
    "lease_expire_time",
    "result",
    "finish_time",
)
"""core.queue.plan_ack as one statement: params namespace, id, token, now, actor,
result (JSON text or NULL)."""

ACK_JOBS = _settle(
    "ack",
    "state = 'completed', result = h.new_result::jsonb, lease_token = NULL, "
    "lease_expire_time = NULL, update_time = %(now)s::timestamptz, "
    "finish_time = %(now)s::timestamptz",
    "state",
    "lease_token",
    "lease_expire_time",
    "result",
    "finish_time",
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
"""core.queue.plan_release as one statement: params namespace, id, token, now, actor."""

EXTEND_LEASE = _settle(
    "extend",
    "lease_expire_time = %(expire)s::timestamptz, update_time = %(now)s::timestamptz",
    "lease_expire_time",
)
"""core.queue.plan_extend as one statement: params namespace, id, token, now, actor,
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
