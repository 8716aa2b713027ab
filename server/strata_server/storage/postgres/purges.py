"""The batch purge every PostgreSQL cleanup step runs: expired records, and the
records, finished jobs, sealed transcripts and artifacts retention removes.

Each is one autocommit statement over at most `%(limit)s` rows, so a step is many
short transactions that never wait on a row another one holds (FOR UPDATE SKIP
LOCKED; the next batch takes it). Rows are deleted by primary key, not ctid, so the
statements also run on Citus-distributed tables. Written once here, the steps
differ only in which rows they pick and what they audit.
"""

from __future__ import annotations

EXPIRY_ACTOR = "system"
"""The audit actor of rows the server removes by itself (expiry and retention)."""


def purge_rows(table: str, keys: str, rows: str, order: str, returning: str) -> str:
    """The start of a purge statement: CTE `doomed` picks the primary `keys` of up to
    `%(limit)s` of `rows` (their FROM and WHERE), first by `order`; CTE `gone`
    deletes them and returns `returning` (columns of `g`, the deleted rows)."""
    match = " AND ".join(f"g.{key} = d.{key}" for key in keys.split(", "))
    return f"""
WITH doomed AS (
    SELECT {keys} {rows}
    ORDER BY {order}
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM {table} AS g USING doomed AS d
    WHERE {match}
    RETURNING {returning}
)"""


DATA_FIELDS = """(SELECT coalesce(jsonb_agg('data.' || key ORDER BY key COLLATE "C"), '[]'::jsonb)
            FROM jsonb_object_keys(data) AS key)"""
"""The changed_fields of a removed record: every field of its data, as a delete's
name them (`core.writes`)."""


def audited(
    action: str,
    entity: str,
    entity_id: str,
    version: str,
    *,
    changed: str = "'[]'::jsonb",
    time: str = "now()",
) -> str:
    """CTE `audited` after `purge_rows`: an `action` audit entry by EXPIRY_ACTOR for
    every row `gone` returned (`entity_id`, `version` and `changed` are expressions
    over those rows, which must include the namespace)."""
    return f""", audited AS (
    INSERT INTO audit_log
        (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
    SELECT namespace, {time}, '{EXPIRY_ACTOR}', '{action}', '{entity}', {entity_id}, {version},
           {changed}, NULL
    FROM gone
)"""


def purge_records(where: str, order: str, time: str, action: str) -> str:
    """Delete up to `%(limit)s` records matching `where`, first by `order`, each with
    an `action` audit entry at `time`; returns the keys deleted."""
    return (
        purge_rows(
            "records",
            "namespace, collection, id",
            f"FROM records WHERE {where}",
            order,
            "g.namespace, g.collection, g.id, g.version, g.data",
        )
        + audited(
            action, "record", "collection || '/' || id", "version", changed=DATA_FIELDS, time=time
        )
        + "\nSELECT namespace, collection, id FROM gone\n"
    )
