"""Every SQL statement of the PostgreSQL transcripts (`transcripts.py`), in one place.

As in `queries.py`: fixed texts, executed with `prepare=True`; arrays travel in
binary (`%b`).
"""

from __future__ import annotations

from typing import LiteralString

EXPORTED_COLUMNS = (
    "id, owner, title, labels, next_seq, size_bytes, create_time, update_time, seal_time,"
    " parent_collection, parent_id"
)
"""A transcript's columns as an export writes them (and an import, which makes every
transcript hot): every one but its tier."""
TRANSCRIPT_COLUMNS: LiteralString = EXPORTED_COLUMNS + ", archive_time"
"""The columns `transcripts.transcript_from_row` reads, in its order."""


def _audited(
    action: LiteralString,
    changed: LiteralString,
    source: LiteralString,
    *,
    entity_id: LiteralString = "id",
    version: LiteralString = "next_seq - 1",
    request_id: LiteralString = "NULL",
) -> LiteralString:
    """The `audited` CTE of a transcript write: its audit entry, one per row of
    `source` (none when the write changed nothing), by %(actor)s at %(now)s. Every
    write of a transcript is audited so, in the statement that writes it."""
    return f"""audited AS (
    INSERT INTO audit_log
        (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
    SELECT %(namespace)s::text, %(now)s::timestamptz, %(actor)s::text, '{action}', 'transcript',
           {entity_id}, {version}, '{changed}'::jsonb, {request_id}
    FROM {source}
)"""


CREATE = f"""
WITH inserted AS (
    INSERT INTO transcripts
        (namespace, id, owner, title, labels, next_seq, size_bytes, create_time, update_time,
         parent_collection, parent_id)
    VALUES (%(namespace)s::text, %(id)s::text, %(owner)s::text, %(title)s::text,
            %(labels)s::jsonb, 1, 0, %(now)s::timestamptz, %(now)s::timestamptz,
            %(parent_collection)s::text, %(parent_id)s::text)
    ON CONFLICT (namespace, id) DO NOTHING
    RETURNING id
), {
    _audited(
        "create",
        '["owner","title","labels"]',
        "inserted",
        version="1",
        request_id="%(request_id)s::text",
    )
}, answered AS (
    UPDATE request_log SET result = %(result)s::jsonb
    WHERE namespace = %(namespace)s::text AND request_id = %(request_id)s::text
      AND EXISTS (SELECT 1 FROM inserted)
)
SELECT count(*) FROM inserted
"""
"""Insert a transcript with its audit entry and request_log result; 0 when the id
is taken (the caller then raises AlreadyExists and the transaction rolls back)."""

GET = f"SELECT {TRANSCRIPT_COLUMNS} FROM transcripts WHERE namespace = %s AND id = %s"

STATES = """
SELECT t.namespace, t.id, t.next_seq, t.seal_time IS NOT NULL
FROM unnest(%b::text[], %b::text[]) AS k(namespace, id)
JOIN transcripts AS t ON t.namespace = k.namespace AND t.id = k.id
"""
"""Next seq and sealed of many transcripts at once, by primary key."""

APPEND = f"""
WITH advanced AS (
    UPDATE transcripts
    SET next_seq = next_seq + %(count)s::bigint,
        size_bytes = size_bytes + %(bytes)s::bigint,
        update_time = %(now)s::timestamptz
    WHERE namespace = %(namespace)s::text AND id = %(id)s::text AND seal_time IS NULL
      AND (%(expected)s::bigint = 0 OR next_seq = %(expected)s::bigint)
    RETURNING next_seq - %(count)s::bigint AS first_seq,
              size_bytes - %(bytes)s::bigint AS first_offset,
              next_seq
), inserted AS (
    INSERT INTO transcript_entries
        (namespace, transcript_id, seq, start_offset, size, role, content, create_time, wire_head,
         wire_tail)
    SELECT %(namespace)s::text, %(id)s::text, s.seq,
           a.first_offset + e.rel_offset, e.size, e.role, e.content,
           %(now)s::timestamptz,
           '\x0a'::bytea || strata_varint(octet_length(f.seq_field) + e.rest) || f.seq_field
               || e.before,
           e.after
    FROM advanced AS a,
         unnest(%(rel_offset)b::bigint[], %(size)b::int[], %(role)b::text[],
                %(content)b::text[], %(before)b::bytea[],
                %(after)b::bytea[], %(rest)b::int[])
             WITH ORDINALITY AS e(rel_offset, size, role, content, before, after, rest,
                                  ordinal),
         LATERAL (SELECT a.first_seq + e.ordinal - 1 AS seq) AS s,
         LATERAL (SELECT '\x08'::bytea || strata_varint(s.seq) AS seq_field OFFSET 0) AS f
), {
    _audited(
        "append",
        '["entries"]',
        "advanced AS a",
        entity_id="%(id)s::text",
        version="a.next_seq - 1",
        request_id="%(request_id)s::text",
    )
}, answered AS (
    UPDATE request_log
    SET result = jsonb_build_object(
        'id', %(id)s::text, 'first_seq', a.first_seq, 'next_seq', a.next_seq)
    FROM advanced AS a
    WHERE namespace = %(namespace)s::text AND request_id = %(answer_id)s::text
), notified AS (
    SELECT pg_notify(%(channel)s::text, %(notice)s::text)
    FROM advanced
    WHERE %(notice)s::text IS NOT NULL
)
SELECT first_seq, next_seq FROM advanced WHERE (SELECT count(*) FROM notified) >= 0
"""
"""An append in one statement. The UPDATE takes the transcript's row lock, so appends
to one transcript queue up here (a waiting one re-reads next_seq once the one ahead
commits) while appends to other transcripts go on in parallel; it advances next_seq
and size_bytes only if the transcript is open and at `expected` (0: any). The
entries get seqs first_seq.. and offsets from there, and their wire form around
their content (storage.entry_wire.stored_parts: the head's seq and length are put in
here, before the role and content length the caller encoded, `rest` being the bytes
that follow the seq; the tail, the data and create_time fields, comes encoded; OFFSET 0
keeps `seq_field` a column, so the length's strata_varint is inlined too: with the
expression in its argument, PostgreSQL ran it as a SQL function call, a large
part of the statement: bench/RESULTS.md, "measured in passing"), with the audit
entry (under
`request_id`) and the request_log result (under `answer_id`: NULL inside a Commit,
which stores the results of all its writes itself), and `notice` NOTIFYd on
`channel` (when given: events.postgres delivers it to the other replicas at commit;
the final WHERE is there only to make PostgreSQL run that CTE, as a SELECT in WITH
runs only when referenced). No row comes back when the
UPDATE matched nothing: the caller reads APPEND_STATE to say why, and nothing was
written."""

APPEND_STATE = "SELECT next_seq, seal_time FROM transcripts WHERE namespace = %s AND id = %s"

_FIRST_OFFSET = """(
      SELECT start_offset FROM transcript_entries
      WHERE namespace = %(namespace)s::text AND transcript_id = %(id)s::text
        AND seq = %(seq)s::bigint)"""

_BATCH_RANGE = f"""
FROM transcript_entries AS e
WHERE e.namespace = %(namespace)s::text AND e.transcript_id = %(id)s::text
  AND e.start_offset >= {_FIRST_OFFSET}
  AND e.start_offset < {_FIRST_OFFSET} + %(bytes)s::bigint
ORDER BY e.start_offset
LIMIT %(limit)s
"""
"""The entries starting within `bytes` of entry `seq`'s start (so entry `seq` itself
always, when it exists; none when it does not), in seq order: one range of the
offset index. Entry `seq`'s offset comes from scalar subqueries (primary-key
lookups that run once, as InitPlans) so that both bounds are index conditions.
Written as a join with a CTE instead, PostgreSQL 15 walked the whole transcript in
offset order and filtered, so a batch cost grew with the transcript's length; this
plan reads only the batch's rows, with custom and generic plans alike
(bench/RESULTS.md, "measured in passing")."""

STORED_WIRE: LiteralString = "wire_head || convert_to(content, 'UTF8') || wire_tail"
"""An entry's stored wire form, its content (stored once, as text) between the bytes
before and after it (storage/entry_wire.stored_parts, migration 0021); NULL for
entries appended before migration 0009, which have neither."""

READ_WIRE = f"""
SELECT string_agg(b.wire, ''::bytea), count(*), count(b.wire), min(b.seq), max(b.seq)
FROM (SELECT e.seq, {STORED_WIRE} AS wire, e.start_offset + e.size AS batch_end
      {_BATCH_RANGE}) AS b
WHERE b.batch_end <= {_FIRST_OFFSET} + %(bytes)s::bigint OR b.seq = %(seq)s::bigint
"""
"""A batch in one row: its entries' stored wire forms (each its head, its content as
UTF-8 and its tail, migration 0021) joined in seq order (the
database does the joining, so the server handles one value per batch), how many
entries there are and how many have a stored form, and the first and last seq.
The WHERE keeps the entries that end within `bytes` of entry `seq`'s start (entry
`seq` always): offsets are the sums of the sizes before, so that is the longest
prefix fitting in `bytes`, as core.transcript_rules.fit_batch takes it.

The entries are joined in the order the subquery sorts them: PostgreSQL's docs on
aggregates say input from a sorted subquery keeps its order unless the outer level
reorders it (a join would); this one only filters. An ORDER BY inside string_agg
would sort the batch again, and with the running sum of sizes this replaced, made
1 MiB batches several times slower (bench/RESULTS.md, "measured in passing")."""

READ: LiteralString = (
    "SELECT e.seq, e.role, e.content, e.data, e.create_time, e.size, " + STORED_WIRE + _BATCH_RANGE
)
"""The same batch's rows, for entries stored without their wire form (whose `data`
column holds their data) among those stored with it (whose data is in their wire
tail only, migration 0023)."""

SEAL = f"""
WITH sealed AS (
    UPDATE transcripts SET seal_time = %(now)s::timestamptz, update_time = %(now)s::timestamptz
    WHERE namespace = %(namespace)s::text AND id = %(id)s::text AND seal_time IS NULL
    RETURNING {TRANSCRIPT_COLUMNS}
), {_audited("seal", '["seal_time"]', "sealed")}
SELECT {TRANSCRIPT_COLUMNS} FROM sealed
"""
"""Seal an open transcript (after any append holding its row lock commits) with its
audit entry; no row when it is missing or already sealed."""

DELETE = f"""
WITH gone AS (
    DELETE FROM transcripts WHERE namespace = %(namespace)s::text AND id = %(id)s::text
    RETURNING id, next_seq
), {_audited("delete", "[]", "gone")}
SELECT count(*) FROM gone
"""
"""Delete the transcript row (waiting for an append that holds its lock) with its
audit entry. The entries go in a second statement, DELETE_ENTRIES: under READ
COMMITTED it takes a new snapshot, which sees the entries of an append that
committed while this one waited for the row."""

DELETE_ENTRIES = """
DELETE FROM transcript_entries WHERE namespace = %s AND transcript_id = %s
"""


def _list(owner: bool, parent: bool, after: bool) -> LiteralString:
    where: LiteralString = " AND owner = %(owner)s::text" if owner else ""
    if parent:
        where += (
            " AND parent_collection = %(parent_collection)s::text"
            " AND parent_id = %(parent_id)s::text"
        )
    keyset: LiteralString = (
        " AND (create_time, id) < (%(after_time)s::timestamptz, %(after_id)s::text)"
        if after
        else ""
    )
    return (
        f"SELECT {TRANSCRIPT_COLUMNS} FROM transcripts "
        f"WHERE namespace = %(namespace)s::text{where}{keyset} "
        "ORDER BY create_time DESC, id DESC LIMIT %(limit)s"
    )


LIST: dict[tuple[bool, bool, bool], LiteralString] = {
    (owner, parent, after): _list(owner, parent, after)
    for owner in (False, True)
    for parent in (False, True)
    for after in (False, True)
}
"""ListTranscripts by (owner filter given, parent filter given, page key given)."""


def _search(one: bool) -> LiteralString:
    scope: LiteralString = " AND e.transcript_id = %(id)s::text" if one else ""
    return (
        "WITH hits AS ("
        " SELECT e.transcript_id, e.seq, e.role, e.create_time, e.content,"
        " ts_rank(e.search, q) AS score"
        " FROM transcript_entries AS e, plainto_tsquery('simple', %(query)s::text) AS q"
        f" WHERE e.namespace = %(namespace)s::text{scope} AND e.search @@ q"
        " UNION ALL"
        " SELECT e.transcript_id, e.seq, e.role, e.create_time, e.content,"
        " ts_rank(e.search, q) AS score"
        " FROM archived_entries AS e, plainto_tsquery('simple', %(query)s::text) AS q"
        f" WHERE e.namespace = %(namespace)s::text{scope} AND e.search @@ q"
        " ORDER BY score DESC, transcript_id, seq"
        " OFFSET %(offset)s LIMIT %(limit)s"
        ")"
        " SELECT transcript_id, seq, role, create_time,"
        " ts_headline('simple', content, plainto_tsquery('simple', %(query)s::text),"
        " 'StartSel=**, StopSel=**, MaxWords=24, MinWords=8, MaxFragments=2,"
        ' FragmentDelimiter=" … "\'),'
        " score FROM hits ORDER BY score DESC, transcript_id, seq"
    )


SEARCH_ALL = _search(False)
SEARCH_ONE = _search(True)
"""Search every transcript of a namespace, or one, hot entries and archived
transcripts' search rows alike; snippets (ts_headline, the costly part) only for
the page's hits."""
