"""The PostgreSQL ReadTranscript batch query reads only its batch's rows, and sends
the entries' stored wire forms, which are what the protobuf library would write.

A database of the session's PostgreSQL 15 (tests/support/pg.py) with every
migration (the adapter writes what later ones add). The batch query once joined a
CTE holding the first entry's offset, and PostgreSQL walked the transcript's whole
offset index for every batch, filtering (the reads still came out right, only each
batch cost the transcript's length).
This checks the plan the server runs, generic and custom, by the rows it touches.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from strata_server import protowire
from strata_server.core.errors import Unavailable
from strata_server.core.models import Actor
from strata_server.core.transcript_rules import (
    AppendEntries,
    NewTranscript,
    new_entry,
)
from strata_server.storage import entry_wire
from strata_server.storage.composite import Storage
from strata_server.storage.ports.write_context import WriteContext
from strata_server.storage.postgres import open_postgres
from strata_server.storage.postgres import transcript_queries as q
from tests.storage.conftest import Database, database_with, every_migration
from tests.support.wire import sent

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations" / "postgres"
ACTOR = Actor("tester")
ENTRIES = 100_000
"""Long enough for the old plan: at 20k entries PostgreSQL still chose a range scan
and a sort, at 100k it walked the whole index (a range's estimate is 1/9 of the rows)."""
ENTRY_SIZE = 230
BATCH_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def pg(pg: Database) -> Database:
    return database_with(pg, *every_migration())


@pytest.fixture(scope="module")
async def db(pg: Database) -> AsyncIterator[Storage]:
    database = await open_postgres(pg.dsn, max_record_bytes=64 * 1024)
    yield database
    await database.close()


async def sql(pg: Database, query: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(pg.dsn, autocommit=True) as conn:
        cursor = await conn.execute(query, params)
        return await cursor.fetchall() if cursor.description else []


def rows_touched(node: dict[str, Any]) -> int:
    """Rows every scan of transcript_entries in an EXPLAIN ANALYZE JSON plan produced
    or filtered away, over all its loops."""
    total = 0
    if node.get("Relation Name") == "transcript_entries":
        per_loop = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
        total += per_loop * node["Actual Loops"]
    for child in node.get("Plans", ()):
        total += rows_touched(child)
    return total + node.get("Rows Removed by Join Filter", 0)


async def test_a_batch_reads_only_its_rows(pg: Database, db: Storage) -> None:
    ns, id = f"t{uuid.uuid4().hex[:12]}", "long"
    await db.transcripts.create_transcript(ns, NewTranscript(id), WriteContext(ACTOR))
    # The first entries through the adapter, the rest in one statement (appending
    # 100k entries through it takes seconds) with the offsets an append would give.
    head = [new_entry("assistant", f"{i:06} " + "x" * 182, None, 4096) for i in range(1000)]
    assert {entry.size for entry in head} == {ENTRY_SIZE}
    await db.transcripts.append_entries(ns, AppendEntries(id, head), WriteContext(ACTOR))
    # Their stored forms built as the append statement builds them.
    time = datetime(2026, 12, 3, 11, 0, 0, 250000, tzinfo=UTC)
    await sql(
        pg,
        "INSERT INTO transcript_entries (namespace, transcript_id, seq, start_offset, size,"
        " role, content, create_time, wire_head, wire_tail)"
        " SELECT %(ns)s, %(id)s, n, (n - 1) * %(size)s, %(size)s, 'assistant', c.content,"
        " %(time)s, '\\x0a'::bytea || strata_varint(octet_length(f.seq_field) + f.rest)"
        " || f.seq_field || %(role)s::bytea || '\\x1a' || strata_varint(f.length),"
        " %(time_field)s::bytea"
        " FROM generate_series(1001, %(entries)s) AS n,"
        " LATERAL (SELECT lpad((n - 1)::text, 6, '0') || ' ' || repeat('x', 182) AS content) c,"
        " LATERAL (SELECT '\\x08'::bytea || strata_varint(n) AS seq_field,"
        " octet_length(c.content) AS length,"
        " octet_length(%(role)s::bytea) + 1 + octet_length(strata_varint(octet_length(c.content)))"
        " + octet_length(c.content) + octet_length(%(time_field)s::bytea) AS rest) f",
        {
            "ns": ns,
            "id": id,
            "size": ENTRY_SIZE,
            "entries": ENTRIES,
            "time": time,
            "role": entry_wire.entry_body("assistant", "", None),
            "time_field": entry_wire.time_field(time),
        },
    )
    await sql(
        pg,
        "UPDATE transcripts SET next_seq = %(next)s, size_bytes = %(bytes)s"
        " WHERE namespace = %(ns)s AND id = %(id)s",
        {"ns": ns, "id": id, "next": ENTRIES + 1, "bytes": ENTRIES * ENTRY_SIZE},
    )
    async with await psycopg.AsyncConnection.connect(pg.dsn, autocommit=True) as conn:
        await conn.execute("ANALYZE transcript_entries")
        for mode in ("force_custom_plan", "force_generic_plan"):
            await conn.execute(f"SET plan_cache_mode = {mode}")
            for seq in (1, ENTRIES // 2, ENTRIES - 5):
                params = {
                    "namespace": ns,
                    "id": id,
                    "seq": seq,
                    "bytes": BATCH_BYTES,
                    "limit": 2049,
                }
                cursor = await conn.execute(
                    "EXPLAIN (ANALYZE, FORMAT JSON) " + q.READ_WIRE, params, prepare=True
                )
                [[explained]] = await cursor.fetchall()
                batch = sent(await db.transcripts.read_batch(ns, id, seq, BATCH_BYTES))
                assert [entry.seq for entry in batch] == list(range(seq, seq + len(batch)))
                assert len(batch) == min(ENTRIES - seq + 1, BATCH_BYTES // ENTRY_SIZE)
                first = batch[0]
                assert (first.role, first.HasField("data")) == ("assistant", False)
                assert first.content.startswith(f"{seq - 1:06} ")
                # The batch's rows, three primary-key lookups of entry `seq` (InitPlans),
                # and the one row past the end.
                assert rows_touched(explained[0]["Plan"]) <= len(batch) + 4, (mode, seq)


async def test_varints_in_sql_are_the_servers(pg: Database) -> None:
    values = [0, 1, 127, 128, 300, 16383, 16384, 2**21 - 1, 2**21, 2**28, 2**35 - 1]
    values += [2**42, 2**49 + 5, 2**56 - 1, 2**56, 2**62, 2**63 - 1]
    rows = await sql(
        pg, "SELECT strata_varint(v) FROM unnest(%(values)s::bigint[]) AS v", {"values": values}
    )
    assert [bytes(row[0]) for row in rows] == [protowire.varint(v) for v in values]


async def test_appended_entries_are_read_as_they_would_be_encoded(
    pg: Database, db: Storage
) -> None:
    ns, id = f"t{uuid.uuid4().hex[:12]}", "mixed"
    await db.transcripts.create_transcript(ns, NewTranscript(id), WriteContext(ACTOR))
    for n in range(3):  # three appends: three create_times
        entries = [
            new_entry("user", f"question {n}", None, 4096),
            new_entry("tool", "", {"calls": [n, "x"], "ok": True}, 4096),
            new_entry("", "héllo ✓ " * 50, None, 4096),
        ]
        await db.transcripts.append_entries(ns, AppendEntries(id, entries), WriteContext(ACTOR))
    rows = await sql(
        pg,
        "SELECT e.seq, e.role, e.content, e.data, e.create_time, e.size, e.wire_tail"
        " FROM transcript_entries AS e WHERE namespace = %(ns)s ORDER BY seq",
        {"ns": ns},
    )
    # The data is in the wire tail alone (migration 0023): the column is NULL.
    assert [row[3] for row in rows] == [None] * 9
    entries = [(*row[:3], entry_wire.stored_data(None, row[6]), *row[4:6]) for row in rows]
    # Compared as messages: a Struct's keys may come in another order.
    expected = sent(entry_wire.encoded_batch(entries))
    stored = await db.transcripts.read_batch(ns, id, 1, 1 << 20)
    assert sent(stored) == expected and len(expected) == 9
    assert [(e.seq, e.role, dict(e.data)) for e in sent(stored)][:2] == [
        (1, "user", {}),
        (2, "tool", {"calls": [0, "x"], "ok": True}),
    ]
    # Entries stored before migration 0009 have no stored form, and their data in
    # the column: encoded on read, beside the stored forms of the others.
    await sql(
        pg,
        "UPDATE transcript_entries SET wire_head = NULL, wire_tail = NULL,"
        " data = jsonb_build_object('calls', jsonb_build_array(seq / 4, 'x'), 'ok', true)"
        " WHERE namespace = %(ns)s AND seq IN (2, 8)",
        {"ns": ns},
    )
    assert sent(await db.transcripts.read_batch(ns, id, 1, 1 << 20)) == expected
    assert sent(await db.transcripts.read_batch(ns, id, 8, 1 << 20)) == expected[7:]
    assert await db.transcripts.read_batch(ns, id, 10, 1 << 20) is None


async def test_an_append_is_not_run_again_on_a_connection_lost_under_it(
    pg: Database,
) -> None:
    db = await open_postgres(pg.dsn, max_record_bytes=4096, min_size=1, max_size=1)
    try:
        ns, id = f"t{uuid.uuid4().hex[:12]}", "once"
        await db.transcripts.create_transcript(ns, NewTranscript(id), WriteContext(ACTOR))
        entry = new_entry("user", "hello", None, 4096)
        await db.transcripts.append_entries(ns, AppendEntries(id, [entry]), WriteContext(ACTOR))

        async def cut() -> None:  # the pool's connection dies while idle
            await sql(
                pg,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'strata' AND pid <> pg_backend_pid()",
                {},
            )

        # A read is safe to run again, on a fresh connection: it succeeds.
        await cut()
        assert (await db.transcripts.get_transcript(ns, id)).next_seq == 2
        # A write without a transaction may have committed when its connection is
        # lost: it is not run again, so it can't append twice. Here it never ran.
        await cut()
        with pytest.raises(Unavailable):
            await db.transcripts.append_entries(ns, AppendEntries(id, [entry]), WriteContext(ACTOR))
        assert (await db.transcripts.get_transcript(ns, id)).next_seq == 2
        await db.transcripts.append_entries(ns, AppendEntries(id, [entry]), WriteContext(ACTOR))
        assert (await db.transcripts.get_transcript(ns, id)).next_seq == 3
    finally:
        await db.close()
