"""The PostgreSQL ReadTranscript batch query reads only its batch's rows.

A real throwaway PostgreSQL 15 (tests/support/pg.py) with the migrations up to
transcripts. The batch query once joined a CTE holding the first entry's offset, and
PostgreSQL walked the transcript's whole offset index for every batch, filtering
(the reads still came out right, only each batch cost the transcript's length).
This checks the plan the server runs, generic and custom, by the rows it touches.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from strata_server.core.models import Actor
from strata_server.core.transcripts import AppendEntries, NewTranscript, new_entry
from strata_server.storage.postgres import PostgresDatabase
from strata_server.storage.postgres import transcript_queries as q
from tests.support.pg import PgServer

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations" / "postgres"
ACTOR = Actor("tester")
ENTRIES = 100_000
"""Long enough for the old plan: at 20k entries PostgreSQL still chose a range scan
and a sort, at 100k it walked the whole index (a range's estimate is 1/9 of the rows)."""
ENTRY_SIZE = 230
BATCH_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    server = PgServer()
    server.start()
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        for name in ("0001_records.sql", "0002_queue.sql", "0003_transcripts.sql"):
            conn.execute((MIGRATIONS / name).read_text())
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
async def db(pg: PgServer) -> AsyncIterator[PostgresDatabase]:
    database = await PostgresDatabase.open(pg.dsn, max_record_bytes=64 * 1024)
    yield database
    await database.close()


async def sql(pg: PgServer, query: str, params: dict[str, Any]) -> None:
    async with await psycopg.AsyncConnection.connect(pg.dsn, autocommit=True) as conn:
        await conn.execute(query, params)


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


async def test_a_batch_reads_only_its_rows(pg: PgServer, db: PostgresDatabase) -> None:
    ns, id = f"t{uuid.uuid4().hex[:12]}", "long"
    await db.create_transcript(ns, NewTranscript(id), actor=ACTOR, idempotency=None)
    # The first entries through the adapter, the rest in one statement (appending
    # 100k entries through it takes seconds) with the offsets an append would give.
    head = [new_entry("assistant", f"{i:06} " + "x" * 182, None, 4096) for i in range(1000)]
    assert {entry.size for entry in head} == {ENTRY_SIZE}
    await db.append_entries(ns, AppendEntries(id, head), actor=ACTOR)
    await sql(
        pg,
        "INSERT INTO transcript_entries"
        " (namespace, transcript_id, seq, start_offset, size, role, content, create_time)"
        " SELECT %(ns)s, %(id)s, n, (n - 1) * %(size)s, %(size)s, 'assistant',"
        " lpad((n - 1)::text, 6, '0') || ' ' || repeat('x', 182), now()"
        " FROM generate_series(1001, %(entries)s) AS n",
        {"ns": ns, "id": id, "size": ENTRY_SIZE, "entries": ENTRIES},
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
                    "EXPLAIN (ANALYZE, FORMAT JSON) " + q.READ, params, prepare=True
                )
                [[explained]] = await cursor.fetchall()
                batch = await db.read_entries(ns, id, seq, BATCH_BYTES)
                seqs = [entry_seq for entry_seq, *_ in batch]
                assert seqs == list(range(seq, seq + len(batch)))
                assert len(batch) == min(ENTRIES - seq + 1, BATCH_BYTES // ENTRY_SIZE)
                _, role, content, data, _, size = batch[0]
                assert (role, data, size) == ("assistant", None, ENTRY_SIZE)
                assert content.startswith(f"{seq - 1:06} ")
                # The batch's rows, two primary-key lookups and the one row past the end.
                assert rows_touched(explained[0]["Plan"]) <= len(batch) + 3, (mode, seq)
