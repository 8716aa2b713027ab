"""The batch purge every PostgreSQL cleanup step runs: expired records, and the
records, finished jobs, sealed transcripts and artifacts retention removes.

Each is one autocommit statement over at most `%(limit)s` rows, so a step is many
short transactions that never wait on a row another one holds (FOR UPDATE SKIP
LOCKED; the next batch takes it). The DELETE finds each picked row by its ctid (a
locked row cannot move before the statement ends), one heap page per row where a
primary key probe reads the index first, and also matches its primary key (on
Citus a ctid is only unique within one shard). Written once here, the steps
differ only in which rows they pick and what they audit: records removed by expiry or
retention get one audit row per batch and collection that lists them (migration
0024), every other kind one row per removed row.
"""

from __future__ import annotations

EXPIRY_ACTOR = "system"
"""The audit actor of rows the server removes by itself (expiry and retention)."""


def purge_rows(table: str, keys: str, rows: str, order: str, returning: str) -> str:
    """The start of a purge statement: CTE `doomed` picks the primary `keys` (and the
    ctid) of up to `%(limit)s` of `rows` (their FROM, one table, and WHERE),
    first by `order`; CTE `gone` deletes them and returns `returning` (columns of
    `g`, the deleted rows)."""
    match = " AND ".join(f"g.{key} = d.{key}" for key in keys.split(", "))
    return f"""
WITH doomed AS (
    SELECT {keys}, ctid AS row_ctid {rows}
    ORDER BY {order}
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM {table} AS g USING doomed AS d
    WHERE g.ctid = d.row_ctid AND {match}
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


def batch_audited(action: str, time: str) -> str:
    """CTE `audited` after a `purge_rows` of records: one `action` row by
    EXPIRY_ACTOR per namespace and collection the batch removed records of (a purge
    batch's row, migration 0024), listing their entity ids and last versions by id.
    Its entity_id is the collection's prefix; version 0 and no changed_fields, since
    the row stands for many records (the versions are in the list)."""
    return f""", audited AS (
    INSERT INTO audit_log
        (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id,
         entity_ids, entity_versions)
    SELECT namespace, {time}, '{EXPIRY_ACTOR}', '{action}', 'record', collection || '/', 0,
           '[]'::jsonb, NULL,
           array_agg(collection || '/' || id ORDER BY id), array_agg(version ORDER BY id)
    FROM gone
    GROUP BY namespace, collection
    ORDER BY namespace, collection
)"""


def purge_records(where: str, order: str, time: str, action: str) -> str:
    """Delete up to `%(limit)s` records matching `where`, first by `order`, with one
    `action` audit row at `time` per collection listing them (`batch_audited`);
    returns the keys deleted."""
    return (
        purge_rows(
            "records",
            "namespace, collection, id",
            f"FROM records WHERE {where}",
            order,
            "g.namespace, g.collection, g.id, g.version",
        )
        + batch_audited(action, time)
        + "\nSELECT namespace, collection, id FROM gone\n"
    )
