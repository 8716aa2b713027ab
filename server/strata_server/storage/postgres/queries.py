"""Every SQL statement of the PostgreSQL adapter, in one place.

Fixed statements are plain constants, executed with `prepare=True` so each pooled
connection prepares them server-side once and afterwards sends only Bind/Execute.
Array parameters use `%b` (binary format): no quoting/escaping of each element, which
for arrays of JSON texts costs more than the rest of a commit together.
ListRecords and CountRecords splice in the fragments the shared compiler
(`storage.sqlquery`) builds from a parsed filter: only its own constant fragments,
column names and data keys restricted to [A-Za-z0-9_], so the text is as trustworthy
as a literal (hence `LiteralString`); values always travel as parameters.
"""

from __future__ import annotations

from typing import LiteralString

from strata_server.storage.postgres.purges import purge_records

RECORD_COLUMNS = "collection, id, data, version, create_time, update_time, expire_time, owner"
"""The columns `record_rows.record_from_row` reads, in its order."""

LIVE = "(expire_time IS NULL OR expire_time > %s)"
"""Rows not yet expired at the `now` parameter."""

GET_RECORD = f"""
SELECT {RECORD_COLUMNS} FROM records
WHERE namespace = %s AND collection = %s AND id = %s AND {LIVE}
"""

BATCH_GET_RECORDS = f"""
SELECT {RECORD_COLUMNS} FROM records
WHERE namespace = %s AND collection = %s AND id = ANY(%b::text[]) AND {LIVE}
"""

SEARCH_RECORDS = f"""
SELECT {RECORD_COLUMNS}, ts_rank(search, query) AS score
FROM records, plainto_tsquery('simple', %s) AS query
WHERE namespace = %s AND collection = %s AND {LIVE} AND search @@ query
ORDER BY score DESC, id
OFFSET %s LIMIT %s
"""


def list_records(key_columns: str, where: str, order_by: str) -> LiteralString:
    """ListRecords for fragments from `sqlquery.compile_list`.

    Params: namespace, collection, now, *where params, limit.
    """
    return (
        f"SELECT {RECORD_COLUMNS}, {key_columns} FROM records "
        f"WHERE namespace = %s AND collection = %s AND {LIVE} AND ({where}) "
        f"ORDER BY {order_by} LIMIT %s"
    )


def count_records(where: str) -> LiteralString:
    """CountRecords for a fragment from `sqlquery.compile_where`.

    Params: namespace, collection, now, *where params.
    """
    return (
        f"SELECT count(*) FROM records "
        f"WHERE namespace = %s AND collection = %s AND {LIVE} AND ({where})"
    )


def matching_records(where: str) -> LiteralString:
    """The live records among a set of ids that match a `compile_where` fragment.

    Params: namespace, collection, ids (text[]), now, *where params.
    """
    return (
        f"SELECT {RECORD_COLUMNS} FROM records "
        f"WHERE namespace = %s AND collection = %s AND id = ANY(%s) AND {LIVE} AND ({where})"
    )


# --- Commit --------------------------------------------------------------------------

CLAIM_REQUEST = """
INSERT INTO request_log (namespace, request_id, fingerprint, result, create_time)
VALUES (%s, %s, %s, NULL, %s)
ON CONFLICT (namespace, request_id) DO NOTHING
"""
"""Claim a request_id for this transaction. A concurrent claim of the same id waits
here until the first transaction ends, so retries of one request run one at a time."""

SELECT_REQUEST = """
SELECT fingerprint, result FROM request_log WHERE namespace = %s AND request_id = %s
"""

LOCK_CURRENT = f"""
SELECT {", ".join(f"r.{column}" for column in RECORD_COLUMNS.split(", "))}
FROM records AS r
JOIN unnest(%b::text[], %b::text[]) AS k(collection, id)
    ON r.collection = k.collection AND r.id = k.id
WHERE r.namespace = %s
ORDER BY r.collection, r.id
FOR UPDATE OF r
"""
"""The stored rows (expired ones included) of the keys a commit touches, locked in
key order so that commits over overlapping keys queue instead of deadlocking."""

_RECORD_ARRAYS = """
    unnest(%({p}collection)b::text[], %({p}id)b::text[], %({p}data)b::text[],
           %({p}version)b::bigint[], %({p}create_time)b::timestamptz[],
           %({p}update_time)b::timestamptz[], %({p}expire_time)b::timestamptz[],
           %({p}owner)b::text[])
        AS w(collection, id, data, version, create_time, update_time, expire_time, owner)
"""

_INSERT_ROWS = f"""
    INSERT INTO records AS r
        (namespace, collection, id, data, version, create_time, update_time, expire_time,
         owner)
    SELECT %(namespace)s::text, w.collection, w.id, w.data::jsonb, w.version,
           w.create_time, w.update_time, w.expire_time, w.owner
    FROM {_RECORD_ARRAYS.format(p="insert_")}
"""

_AUDITED = """
audited AS (
    INSERT INTO audit_log
        (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
    SELECT %(namespace)s::text, %(now)s::timestamptz, %(actor)s::text, a.action, a.entity,
           a.entity_id, a.version, a.changed_fields::jsonb, %(request_id)s::text
    FROM unnest(%(audit_action)b::text[], %(audit_entity)b::text[], %(audit_entity_id)b::text[],
                %(audit_version)b::bigint[], %(audit_changed_fields)b::text[])
        WITH ORDINALITY AS a(action, entity, entity_id, version, changed_fields, ordinal)
    ORDER BY a.ordinal
)"""

PERSIST = f"""
WITH inserted AS ({_INSERT_ROWS}
    ON CONFLICT (namespace, collection, id) DO NOTHING
    RETURNING r.collection, r.id
), updated AS (
    UPDATE records AS r
    SET data = w.data::jsonb, version = w.version, create_time = w.create_time,
        update_time = w.update_time, expire_time = w.expire_time, owner = w.owner
    FROM {_RECORD_ARRAYS.format(p="update_")}
    WHERE r.namespace = %(namespace)s::text AND r.collection = w.collection AND r.id = w.id
), deleted AS (
    DELETE FROM records AS r
    USING unnest(%(delete_collection)b::text[], %(delete_id)b::text[]) AS w(collection, id)
    WHERE r.namespace = %(namespace)s::text AND r.collection = w.collection AND r.id = w.id
), {_AUDITED}, answered AS (
    UPDATE request_log SET result = %(result)s::jsonb
    WHERE namespace = %(namespace)s::text AND request_id = %(request_id)s::text
)
SELECT collection, id FROM inserted
"""
"""Write a commit's final state in one statement: rows new to the table (`insert_*`),
rows that were stored and locked (`update_*`, `delete_*`), the audit entries in
write order, and the request_log result. Returns the keys actually inserted: a key
missing there was created by a concurrent transaction after LOCK_CURRENT looked."""

PERSIST_NEW = f"""
WITH inserted AS ({_INSERT_ROWS}
), {_AUDITED}
SELECT count(pg_notify(%(channel)s::text, n.notice)) FROM unnest(%(notices)b::text[]) AS n(notice)
"""
"""PERSIST for a commit of creates of keys assumed new (`commit.optimistic`) with no
request_id: only the inserts and their audit entries. No ON CONFLICT: a key that
exists fails the whole statement with a unique violation of `records_pkey`, so it is
atomic alone and runs without BEGIN/COMMIT (one round trip for the commit). It
NOTIFYs each of `notices` on `channel` too, delivered when it commits."""

NOTIFY = "SELECT count(pg_notify(%s::text, n.notice)) FROM unnest(%b::text[]) AS n(notice)"
"""A commit's notices from within its transaction, delivered when it commits."""

PURGE_EXPIRED = purge_records("expire_time <= %(now)s", "expire_time", "%(now)s", "expire")
"""Delete up to `limit` expired rows, with one `expire` audit row per collection
listing them (purges.batch_audited)."""

# --- Lifecycle -----------------------------------------------------------------------

PING = "SELECT 1"

HAS_YOYO_TABLE = "SELECT to_regclass('_yoyo_migration') IS NOT NULL"

NEWEST_MIGRATION = """
SELECT migration_id FROM _yoyo_migration
ORDER BY applied_at_utc DESC, migration_id DESC LIMIT 1
"""

KEEP_SECRET = """
INSERT INTO server_secrets (name, value) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING
"""
"""Its own statement, committed before READ_SECRET: a replica that lost the race
waits on the winner's insert, and its next statement's snapshot then holds the row."""

READ_SECRET = "SELECT value FROM server_secrets WHERE name = %s"
