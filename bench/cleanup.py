"""Cleanup benchmark: RunCleanup of 1M expired records against a hand-rolled DELETE.

Figure (the admin issue: "cleanup time for 1M expired records"; DESIGN.md sets no
target):
  RECORDS records (about 150 B of JSON each) that expired a moment ago, in one
  collection of the database a `strata serve` process serves, removed by
  AdminService.RunCleanup(all_namespaces) over gRPC: batches of 1000 rows, each
  one statement that deletes with FOR UPDATE SKIP LOCKED and writes one `expire`
  audit row for the batch listing its records' ids and versions (migration 0024),
  the record cache told of each. Beside it, the same rows
  in a second database of the same PostgreSQL server, same schema, removed the
  way a homemade table usually is: one `DELETE FROM records WHERE expire_time <=
  now()` (one transaction, no audit, writers on those rows blocked throughout).
  The target (issue 23): Strata within 5x that DELETE.

Two more references: the floor of a per-record audit trail (the same DELETE with its
RETURNING rows inserted as one `expire` audit entry each, as the purge wrote them
before migration 0024, in the same statement), and the floor of the batch rows
Strata writes now (the same DELETE with its rows aggregated into one audit row per
1000, in the same statement). Each reference runs in a transaction rolled back
(the two audited ones, then the plain one twice: the figure is the second, warm).
The server's CPU time during RunCleanup (user + system) says how much of Strata's
time is its own Python rather than the database's.

The rows are loaded with one INSERT ... SELECT generate_series per database (the
figure is the cleanup, not the load), then VACUUM (ANALYZE), as autovacuum would.

Run with `make bench` (or `.venv/bin/python bench/cleanup.py`); prints a table and
rewrites the `## cleanup` section of bench/RESULTS.md. Nothing here asserts speed.
BENCH_CLEANUP_RECORDS overrides RECORDS for a quick run.
"""

from __future__ import annotations

import asyncio
import os
import time
from urllib.parse import urlsplit, urlunsplit

import grpc
import psycopg
from _harness import Row, machine_info, machine_markdown, markdown_table, strata_stack, text_table
from _results import write_section
from auth import cpu_seconds

from strata.v1 import admin_pb2, admin_pb2_grpc
from strata_server.settings.backend_settings import DatabaseTarget
from strata_server.storage import migrations
from strata_server.storage.postgres.purges import DATA_FIELDS

RECORDS = int(os.environ.get("BENCH_CLEANUP_RECORDS", "1000000"))
EXPIRE_AFTER = 5.0
"""Seconds after the load's start at which every row expires."""
BASELINE = "one DELETE (psycopg)"
TARGET = 5.0
"""Strata's time at most this many times the one DELETE's (issue 23)."""

DELETE = "DELETE FROM records WHERE expire_time <= now()"
AUDITED_DELETE = f"""
WITH gone AS (
    DELETE FROM records WHERE expire_time <= now()
    RETURNING namespace, collection, id, version, data
)
INSERT INTO audit_log
    (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
SELECT namespace, now(), 'system', 'expire', 'record', collection || '/' || id, version,
       {DATA_FIELDS}, NULL
FROM gone
"""
"""The floor of a per-record audit trail: the DELETE and its audit entries (as the
expiry purge wrote them before migration 0024) in one set-based statement."""

BATCH = 1000
"""services/cleanup_service.BATCH: the rows of one purge batch."""
BATCH_AUDITED_DELETE = f"""
WITH gone AS (
    DELETE FROM records WHERE expire_time <= now()
    RETURNING namespace, collection, id, version
), numbered AS (
    SELECT *, (row_number() OVER (ORDER BY id) - 1) / {BATCH} AS batch FROM gone
)
INSERT INTO audit_log
    (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id,
     entity_ids, entity_versions)
SELECT namespace, now(), 'system', 'expire', 'record', collection || '/', 0, '[]'::jsonb, NULL,
       array_agg(collection || '/' || id ORDER BY id), array_agg(version ORDER BY id)
FROM numbered
GROUP BY namespace, collection, batch
"""
"""The floor of the audit trail Strata writes: the DELETE and one audit row per
{BATCH} records listing them, in one set-based statement."""

BATCH_ROWS = """
SELECT count(*), coalesce(sum(cardinality(entity_ids)), 0) FROM audit_log
WHERE namespace = 'bench' AND action = 'expire'
"""

LOAD = """
INSERT INTO records (namespace, collection, id, data, version, create_time, update_time,
                     expire_time)
SELECT 'bench', 'sessions', 's' || lpad(g::text, 7, '0'),
       jsonb_build_object('user', 'u' || (g %% 5000), 'n', g,
                          'agent', 'Mozilla/5.0 (X11; Linux x86_64) session token',
                          'ip', '10.0.' || (g %% 250) || '.' || (g %% 200)),
       1, now(), now(), to_timestamp(%s)
FROM generate_series(1, %s) AS g
"""


def sibling(url: str, name: str) -> str:
    """The URL of database `name` on the same server as `url`."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def load(url: str, expire: float) -> None:
    """RECORDS rows expiring at `expire` (Unix seconds), then VACUUM (ANALYZE)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(LOAD, (expire, RECORDS))
        await conn.execute("VACUUM (ANALYZE) records")


async def run(url: str, target: str, server_pid: int) -> tuple[list[Row], str]:
    baseline_url = sibling(url, "bench_cleanup_baseline")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("CREATE DATABASE bench_cleanup_baseline")
    migrations.up(DatabaseTarget(kind="postgres", dsn=baseline_url))
    expire = time.time() + EXPIRE_AFTER
    started = time.perf_counter()
    await asyncio.gather(load(url, expire), load(baseline_url, expire))
    loaded = time.perf_counter() - started
    await asyncio.sleep(max(0.0, expire - time.time()) + 0.5)

    load_before = f"{os.getloadavg()[0]:.2f}"
    async with grpc.aio.insecure_channel(target) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        cpu = cpu_seconds(server_pid)
        started = time.perf_counter()
        removed = 0
        async for event in admin.RunCleanup(admin_pb2.RunCleanupRequest(all_namespaces=True)):
            if event.HasField("report"):
                removed = sum(s.count for s in event.report.steps if s.target == "expired_records")
        strata_seconds = time.perf_counter() - started
        server_cpu = cpu_seconds(server_pid) - cpu

    async with await psycopg.AsyncConnection.connect(url) as conn:
        cursor = await conn.execute(BATCH_ROWS)
        audit_rows, listed = await cursor.fetchone() or (0, 0)
    audited_seconds, _ = await timed(baseline_url, AUDITED_DELETE, commit=False)
    batched_seconds, _ = await timed(baseline_url, BATCH_AUDITED_DELETE, commit=False)
    await timed(baseline_url, DELETE, commit=False)
    baseline_seconds, deleted = await timed(baseline_url, DELETE, commit=False)
    assert removed == deleted == listed == RECORDS, (removed, deleted, listed)
    assert audit_rows == -(-RECORDS // BATCH), audit_rows

    ratio = strata_seconds / baseline_seconds
    rows = [
        Row(
            f"Remove {RECORDS:,} expired records",
            f"{strata_seconds:.1f} s ({RECORDS / strata_seconds:,.0f} records/s)",
            f"{baseline_seconds:.1f} s ({RECORDS / baseline_seconds:,.0f} records/s)",
            f"{ratio:.1f}x the time",
            f"<= {TARGET:.0f}x",
            "met" if ratio <= TARGET else "missed",
        ),
        Row(
            "  the floor of a per-record audit trail: one DELETE + INSERT ... SELECT of "
            "its audit entries",
            f"{audited_seconds:.1f} s",
            f"{baseline_seconds:.1f} s",
            f"{audited_seconds / baseline_seconds:.1f}x the time",
        ),
        Row(
            f"  the floor of one audit row per {BATCH} records: one DELETE + INSERT ... "
            "SELECT of the batch rows",
            f"{batched_seconds:.1f} s",
            f"{baseline_seconds:.1f} s",
            f"{batched_seconds / baseline_seconds:.1f}x the time",
        ),
        Row(
            "  Strata against that floor",
            f"{strata_seconds:.1f} s",
            f"{batched_seconds:.1f} s (the floor)",
            f"{strata_seconds / batched_seconds:.1f}x the time",
        ),
        Row(
            "  the server's CPU during RunCleanup (user + system)",
            f"{server_cpu:.1f} s ({server_cpu / strata_seconds:.0%} of its wall time)",
        ),
    ]
    method = (
        f"{RECORDS:,} records of ~150 B JSON loaded into each database with one INSERT ... "
        f"SELECT generate_series ({loaded:.1f} s for both, concurrently), VACUUM (ANALYZE), "
        f"all expiring at once. Load average before the cleanup: {load_before}. Strata: "
        f"AdminService.RunCleanup(all_namespaces) over grpc.aio to one `strata serve` "
        f"(PostgreSQL 15, fsync off): batches of {BATCH} rows, each one short autocommit "
        f"statement (FOR UPDATE SKIP LOCKED, DELETE by ctid and primary key, RETURNING into "
        f"one `expire` audit row per batch and collection listing the batch's ids and "
        f"versions, migration 0024) that never blocks a writer for long; the run wrote "
        f"{audit_rows:,} audit rows listing {listed:,} records. Every reader expands those "
        f"rows (WatchRecords sends one delete per record, ListAuditEntries finds a row by any "
        f"id it lists, exports carry the lists). Baselines in a second database of the same "
        f"server and schema, each one long transaction rolled back: one DELETE with no audit; "
        f"the same DELETE with one audit entry per record (the per-record floor, what the "
        f"purge wrote before 0024); the same DELETE with one audit row per {BATCH} (the "
        f"floor of what it writes now).\n\n"
        f"Where the time goes, measured apart as CPU time of the PostgreSQL backend so "
        f"that the host's load counts less (100k rows, a direct psycopg loop of the purge "
        f"statement, min of 2 runs, load 6-15): the purge statement 0.58 s against 0.16 s "
        f"for one DELETE (3.6x); the same batches with no audit at all 0.41-0.48 s "
        f"(2.6-3x: each row is found by the expire_time index, locked by FOR UPDATE SKIP "
        f"LOCKED, then deleted, two heap writes and their WAL per row where the DELETE "
        f"makes one); so the batch audit rows cost about 0.6-1x the DELETE. Finding the "
        f"picked rows by ctid instead of a primary key probe took about a quarter off the "
        f"purge; batches of 5000 instead of 1000 changed the CPU per row by nothing "
        f"measurable. The rest of the wall time is not CPU: each batch's round trips (the "
        f"statement, the watch wakeup's NOTIFY, the progress message) wait for a core on a "
        f"loaded host where the one DELETE waits once, and each batch's index scan steps "
        f"over the dead entries of the batches before it. The server's own CPU is the "
        f"last row of the table.\n\n"
        f"The embedded shape, measured before 0024 (storage.records.purge_expired in batches "
        f"of 1000 on a SQLite file of 100k such records, load 12-15): 12.8-19.4 s against "
        f"one DELETE of the same rows, 4.0 s (the FTS index's delete trigger runs per row in "
        f"both); since 0024 a batch writes one audit row per collection instead of one per "
        f"record (not measured again)."
    )
    return rows, method


async def timed(url: str, statement: str, *, commit: bool) -> tuple[float, int]:
    """Seconds `statement` takes in a transaction of its own, and its row count;
    rolled back unless `commit`."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        started = time.perf_counter()
        cursor = await conn.execute(statement)
        seconds = time.perf_counter() - started
        count = cursor.rowcount
        await (conn.commit() if commit else conn.rollback())
    return seconds, count


def main() -> None:
    info = machine_info()
    # The scheduler off: its runs would share the rows with the measured one.
    with strata_stack("bench_cleanup", STRATA_CLEANUP_INTERVAL_SECONDS="86400") as stack:
        rows, method = asyncio.run(run(stack.database_url, stack.target, stack.server_pid))
    print(text_table(rows, BASELINE))
    write_section(
        "cleanup",
        "\n\n".join([machine_markdown(info), markdown_table(rows, BASELINE), method]),
    )


if __name__ == "__main__":
    main()
