"""The SQL both adapters' integrity checks share: which contradiction between a
job's state and its columns a row shows (codes of core.integrity_findings.JOB_PROBLEMS),
or NULL. Plain SQL that SQLite and PostgreSQL read alike."""

from __future__ import annotations

JOB_CASE = """
CASE
    WHEN state = 'leased' AND (lease_token IS NULL OR lease_expire_time IS NULL)
        THEN 'lease_broken'
    WHEN state <> 'leased' AND (lease_token IS NOT NULL OR lease_expire_time IS NOT NULL)
        THEN 'lease_stray'
    WHEN state IN ('completed', 'dead', 'cancelled') AND finish_time IS NULL
        THEN 'finish_missing'
    WHEN state IN ('ready', 'leased') AND finish_time IS NOT NULL THEN 'finish_stray'
END
"""
