"""Retention of sealed transcripts and of artifacts on PostgreSQL: the counts and
purges a cleanup run makes (core/retention_rules.py has the rules). Kept apart from
retention.py, which holds the policies and the record and job purges.

A purge takes at most `limit` rows, skipping rows others hold (FOR UPDATE SKIP
LOCKED), and writes an audit entry per row in the same statement. A transcript's
entries go in a second statement of the same transaction (the caller's); a
sealed transcript takes no appends, so none can land in between. An artifact's
blob stays for the orphan sweep, which keeps any blob another artifact names."""

from __future__ import annotations

from strata_server.storage.postgres.queries import EXPIRY_ACTOR

COUNT_OLD_TRANSCRIPTS = """
SELECT count(*) FROM transcripts
WHERE namespace = %s AND seal_time IS NOT NULL AND seal_time < %s
"""

PURGE_OLD_TRANSCRIPTS = f"""
WITH doomed AS (
    SELECT namespace, id FROM transcripts
    WHERE namespace = %(namespace)s AND seal_time IS NOT NULL AND seal_time < %(before)s
    ORDER BY seal_time
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM transcripts AS t USING doomed AS d
    WHERE t.namespace = d.namespace AND t.id = d.id
    RETURNING t.namespace, t.id, t.next_seq
), audited AS (
    INSERT INTO audit_log
        (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
    SELECT namespace, now(), '{EXPIRY_ACTOR}', 'retention', 'transcript', id, next_seq - 1,
           '[]'::jsonb, NULL
    FROM gone
)
SELECT id FROM gone
"""

DELETE_ENTRIES = """
DELETE FROM transcript_entries WHERE namespace = %s AND transcript_id = ANY(%s)
"""

_OLD_ARTIFACTS = """
FROM artifacts AS a
WHERE a.namespace = %(namespace)s AND a.create_time < %(before)s
  AND (a.kind = %(kind)s::text OR %(kind)s::text = '' AND NOT EXISTS (
      SELECT 1 FROM retention_policies AS p
      WHERE p.namespace = a.namespace AND p.target = 'artifacts' AND p.selector = a.kind))
"""
"""A kind's artifacts, or (kind '') those of every kind no policy names: a kind's
own policy wins over the namespace-wide one."""

COUNT_OLD_ARTIFACTS = "SELECT count(*) " + _OLD_ARTIFACTS

PURGE_OLD_ARTIFACTS = f"""
WITH doomed AS (
    SELECT a.namespace, a.id {_OLD_ARTIFACTS}
    ORDER BY a.create_time
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM artifacts AS g USING doomed AS d
    WHERE g.namespace = d.namespace AND g.id = d.id
    RETURNING g.namespace, g.id
), audited AS (
    INSERT INTO audit_log
        (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
    SELECT namespace, now(), '{EXPIRY_ACTOR}', 'retention', 'artifact', id, 1, '[]'::jsonb, NULL
    FROM gone
)
SELECT count(*) FROM gone
"""
