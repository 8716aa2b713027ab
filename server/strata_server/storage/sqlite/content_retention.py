"""Retention of sealed transcripts and of artifacts on SQLite: the counts and purges
a cleanup run makes (core/retention_rules.py has the rules). Kept apart from
retention.py, which holds the policies and the record and job purges.

A transcript goes with its entries (unindexed from full-text search first, as
DeleteTranscript does) in the transaction that writes its audit entry; an
artifact row goes with its audit entry, and its blob stays for the orphan sweep,
which keeps any blob another artifact still names."""

from __future__ import annotations

OLD_TRANSCRIPTS = """
FROM transcripts
WHERE namespace = ? AND seal_time IS NOT NULL AND seal_time < ?
"""

SELECT_OLD_TRANSCRIPTS = "SELECT id " + OLD_TRANSCRIPTS + "ORDER BY seal_time LIMIT ?"

OLD_ARTIFACTS = """
FROM artifacts
WHERE namespace = :namespace AND create_time < :before
  AND (kind = :kind OR :kind = '' AND NOT EXISTS (
      SELECT 1 FROM retention_policies AS p
      WHERE p.namespace = artifacts.namespace AND p.target = 'artifacts'
        AND p.selector = artifacts.kind))
"""
"""A kind's artifacts, or (kind '') those of every kind no policy names: a kind's
own policy wins over the namespace-wide one."""

PURGE_ARTIFACTS = (
    "DELETE FROM artifacts WHERE (namespace, id) IN (SELECT namespace, id "
    + OLD_ARTIFACTS
    + " ORDER BY create_time LIMIT :limit) RETURNING id"
)
