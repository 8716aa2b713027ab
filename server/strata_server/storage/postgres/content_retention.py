"""Retention of sealed transcripts and of artifacts on PostgreSQL: the counts and
purges a cleanup run makes (core/retention_rules.py has the rules). Kept apart from
retention.py, which holds the policies and the record and job purges.

A purge takes at most `limit` rows, skipping rows others hold (FOR UPDATE SKIP
LOCKED), and writes an audit entry per row in the same statement. A transcript's
entries go in a second statement of the same transaction (the caller's); a
sealed transcript takes no appends, so none can land in between. An artifact's
blob stays for the orphan sweep, which keeps any blob another artifact names."""

from __future__ import annotations

from strata_server.storage.postgres.purges import audited, purge_rows

COUNT_OLD_TRANSCRIPTS = """
SELECT count(*) FROM transcripts
WHERE namespace = %s AND seal_time IS NOT NULL AND seal_time < %s
"""

PURGE_OLD_TRANSCRIPTS = (
    purge_rows(
        "transcripts",
        "namespace, id",
        "FROM transcripts WHERE namespace = %(namespace)s"
        " AND seal_time IS NOT NULL AND seal_time < %(before)s",
        "seal_time",
        "g.namespace, g.id, g.next_seq",
    )
    + audited("retention", "transcript", "id", "next_seq - 1")
    + "\nSELECT id FROM gone\n"
)

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

PURGE_OLD_ARTIFACTS = (
    purge_rows("artifacts", "namespace, id", _OLD_ARTIFACTS, "create_time", "g.namespace, g.id")
    + audited("retention", "artifact", "id", "1")
    + "\nSELECT count(*) FROM gone\n"
)
