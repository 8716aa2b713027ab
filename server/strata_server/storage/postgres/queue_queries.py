"""Every SQL statement of the PostgreSQL job queue (`queue.py`), in one place.

As in `queries.py`: fixed texts, executed with `prepare=True`; arrays travel in
binary (`%b`). ListJobs has one fixed text per (state filter, first page or not),
built here at import time from constant fragments only.
"""

from __future__ import annotations

import dataclasses

from strata_server.core.job_transitions import Job

JOB_COLUMNS = (
    "id, queue, state, payload, priority, run_time, attempt, max_attempts, create_time, "
    "update_time, retry_backoff_us, unique_key, lease_token, lease_expire_time, last_error, "
    "result, finish_time"
)
"""The columns `queue.job_from_row` reads, in its order."""

J_COLUMNS = ", ".join(f"j.{column.strip()}" for column in JOB_COLUMNS.split(","))
"""JOB_COLUMNS of the table aliased `j` (the row an UPDATE ... RETURNING wrote)."""

_FIELD_ORDER = [field.name for field in dataclasses.fields(Job)]


def changed_fields(old: str, *columns: str) -> str:
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
    RETURNING {J_COLUMNS}
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

_LEASE_CHANGED = changed_fields("c", "state", "attempt", "lease_token", "lease_expire_time")
_DEAD_CHANGED = changed_fields(
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
    RETURNING {J_COLUMNS}, c.state AS old_state, {_LEASE_CHANGED} AS changed_fields
), killed AS (
    UPDATE jobs AS j
    SET state = 'dead', lease_token = NULL, lease_expire_time = NULL,
        last_error = %(died)s::text, update_time = %(now)s::timestamptz,
        finish_time = %(now)s::timestamptz
    FROM dying AS d
    WHERE j.namespace = %(namespace)s::text AND j.id = d.id
    RETURNING {J_COLUMNS}, {_DEAD_CHANGED} AS changed_fields
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
"""Lease up to `limit` jobs in one statement (autocommit): core.job_transitions.plan_lease in
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
