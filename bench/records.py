"""Records benchmark: Strata's RecordService and Commit against direct psycopg.

Why side by side: a figure like "8k gets/s" says little on its own, but "half of
what the same Python client gets straight from the same PostgreSQL" says how much
the gRPC hop and the server cost. Both sides run in this one process on asyncio
(grpc.aio vs psycopg's AsyncConnectionPool with prepared statements), so the
client-side cost is comparable; on a 2-core machine the client, the server and
PostgreSQL share the CPUs, which is part of what is measured.

Figures (targets from /work/shared/DESIGN.md):
  1. GetRecord vs SELECT by key, concurrency 1 and 32: ops/s, p50, p99, ratio.
  2. CreateRecord p50/p99, one at a time.
  3. Commit of 100 creates p50/p99.
  4. ListRecords `data.status = "sNN"` (1% of 100k match), page_size 50, vs the
     SQL Strata generates for it, run directly.

Run with `make bench` (or `.venv/bin/python bench/records.py`); prints a table and
rewrites the `## records` section of bench/RESULTS.md. Nothing here asserts speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import grpc
import psycopg
from _harness import (
    Row,
    Stats,
    machine_info,
    machine_markdown,
    markdown_table,
    noop_server,
    run_for,
    run_side_by_side,
    run_times,
    strata_stack,
    text_table,
)
from _results import write_section
from google.protobuf import struct_pb2
from psycopg_pool import AsyncConnectionPool

from strata.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    records_pb2,
    records_pb2_grpc,
    transaction_pb2,
    transaction_pb2_grpc,
)
from strata_server.core.filters import parse_filter, parse_order_by
from strata_server.core.models import ListQuery
from strata_server.storage.postgres import queries
from strata_server.storage.postgres.dialect import PostgresDialect
from strata_server.storage.sqlquery import compile_list

NAMESPACE = "bench"
GET_COLLECTION, GET_RECORDS = "bench_get", 10_000
LIST_COLLECTION, LIST_RECORDS, STATUSES = "bench_list", 100_000, 100  # 1% per status
LOAD_BATCH, LOAD_TASKS = 1000, 4
SECONDS, WARMUP = 5.0, 1.0
CONCURRENCY = (1, 32)
CREATES, COMMITS, COMMIT_SIZE, PAGE_SIZE = 1000, 50, 100, 50

COLUMNS = "namespace, collection, id, data, version, create_time, update_time, expire_time"
GET_SQL = f"SELECT {COLUMNS} FROM records WHERE namespace = %s AND collection = %s AND id = %s"
# What the PostgreSQL adapter (storage/postgres/queries.py) runs for ListRecords with
# filter 'data.status = "sNN"', default order and page_size 50: one extra row tells
# whether a next page exists. Params: namespace, collection, now, {"status": ...}, 51.


def list_sql(status: str) -> tuple[str, list[Any]]:
    """The exact SQL and parameters Strata runs for the list figure, built by the
    server's own compiler so the baseline cannot drift from it."""
    query = ListQuery(
        LIST_COLLECTION, parse_filter(f'data.status = "{status}"'), parse_order_by(""), PAGE_SIZE
    )
    sql = compile_list(PostgresDialect(frozenset({("status",)})), query)
    params = [NAMESPACE, LIST_COLLECTION, utcnow(), *sql.params, PAGE_SIZE + 1]
    return queries.list_records(sql.key_columns, sql.where, sql.order_by), params


Op = Callable[[], Awaitable[object]]


def utcnow() -> datetime:
    """The `now` parameter Strata passes for its expiry check."""
    return datetime.now(UTC)


def document(i: int, rng: random.Random) -> dict[str, Any]:
    """A small, realistic record: a few fields, one of them the 1%-selective status."""
    return {
        "title": f"record number {i}",
        "n": i,
        "status": f"s{rng.randrange(STATUSES):02d}",
        "tags": ["bench", "records"],
        "owner": {"name": "bench", "team": i % 7},
    }


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    """A dict as the protobuf Struct the API carries."""
    message = struct_pb2.Struct()
    message.update(value)
    return message


def commit_request(
    collection: str, ids: range, rng: random.Random
) -> transaction_pb2.CommitRequest:
    """One Commit creating records `r<i>` (zero-padded) for i in `ids`."""
    return transaction_pb2.CommitRequest(
        namespace=NAMESPACE,
        writes=[
            transaction_pb2.Write(
                create=transaction_pb2.CreateRecordWrite(
                    collection=collection, record_id=f"r{i:06d}", data=struct(document(i, rng))
                )
            )
            for i in ids
        ],
    )


async def load(
    txn: transaction_pb2_grpc.TransactionServiceStub, collection: str, count: int
) -> Stats:
    """Create `count` records through Strata, LOAD_BATCH per Commit, LOAD_TASKS
    Commits in flight (never a direct COPY: loading is part of what Strata offers)."""
    rng = random.Random(collection)
    batches = iter(range(0, count, LOAD_BATCH))
    started = time.perf_counter()

    async def worker() -> None:
        for start in batches:
            await txn.Commit(commit_request(collection, range(start, start + LOAD_BATCH), rng))

    await asyncio.gather(*(worker() for _ in range(LOAD_TASKS)))
    return Stats(ops=count, seconds=time.perf_counter() - started, p50_ms=0.0, p99_ms=0.0)


async def settle(url: str) -> None:
    """VACUUM (ANALYZE) after a bulk load, as autovacuum soon would.

    Without it the figures depend on when autovacuum happens to run: a fresh table
    has no planner statistics, and the GIN index's pending list (fastupdate) holds
    up to 4 MB of unmerged entries that every indexed query scans in full. Measured
    here, the same list query took 57 ms with no stats, 5.4 ms after ANALYZE and
    2.7 ms after VACUUM. The steady state is the figure worth comparing.
    """
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("VACUUM (ANALYZE) records")


async def measured(concurrency: int, ops: dict[str, Op]) -> dict[str, Stats]:
    """Each op warmed up untimed (connections, prepared statements, caches), then all
    timed in alternating slices for SECONDS each."""
    for op in ops.values():
        await run_for(WARMUP, concurrency, op)
    return await run_side_by_side(SECONDS, concurrency, ops)


def pool(url: str, size: int) -> AsyncConnectionPool:
    """The baseline's connections: autocommit (no COMMIT round trip after a
    SELECT) and server-side prepared statements from the first execution."""
    return AsyncConnectionPool(
        url,
        min_size=size,
        max_size=size,
        open=False,
        kwargs={"autocommit": True, "prepare_threshold": 0},
    )


def ms(value: float) -> str:
    return f"{value:.2f} ms"


def rate(stats: Stats, unit: str = "ops/s") -> str:
    return f"{stats.ops_per_s:,.0f} {unit}"


def verdict(ok: bool) -> str:
    return "pass" if ok else "miss"


def latency_rows(name: str, strata: Stats, limit_ms: float | None, base: Stats | None) -> list[Row]:
    """p50 (with its target, if any) and p99 rows for one measurement."""
    return [
        Row(
            f"{name} p50",
            ms(strata.p50_ms),
            ms(base.p50_ms) if base else "",
            target=f"< {limit_ms:g} ms" if limit_ms is not None else "",
            result=verdict(strata.p50_ms < limit_ms) if limit_ms is not None else "",
        ),
        Row(f"{name} p99", ms(strata.p99_ms), ms(base.p99_ms) if base else ""),
    ]


def throughput_row(name: str, strata: Stats, base: Stats, min_ratio: float | None) -> Row:
    ratio = strata.ops_per_s / base.ops_per_s
    return Row(
        f"{name} throughput",
        rate(strata),
        rate(base),
        f"{ratio:.2f}x",
        f"≥ {min_ratio:g}x" if min_ratio is not None else "",
        verdict(ratio >= min_ratio) if min_ratio is not None else "",
    )


@contextlib.asynccontextmanager
async def floor_ops(
    url: str, concurrency: int, noop_address: str, collection: str, next_id: Callable[[], str]
) -> AsyncIterator[dict[str, Op]]:
    """What a GetRecord through Strata is measured against: "psycopg", the same
    read by key straight from the database (prepared, autocommit), and "noop",
    GetRecord to a gRPC servicer that does nothing, the floor of any Python gRPC
    server here."""
    async with (
        pool(url, concurrency) as connections,
        grpc.aio.insecure_channel(noop_address) as noop_channel,
    ):
        await connections.wait()
        noop = records_pb2_grpc.RecordServiceStub(noop_channel)

        async def psycopg_get() -> None:
            async with connections.connection() as conn:
                cursor = await conn.execute(GET_SQL, (NAMESPACE, collection, next_id()))
                if await cursor.fetchone() is None:
                    raise RuntimeError("preloaded record missing")

        async def noop_get() -> None:
            await noop.GetRecord(records_pb2.GetRecordRequest(id=next_id()))

        yield {"psycopg": psycopg_get, "noop": noop_get}


async def bench_get(
    records: records_pb2_grpc.RecordServiceStub, url: str, concurrency: int, noop_address: str
) -> list[Row]:
    """GetRecord vs the equivalent SELECT, random ids, `concurrency` tasks each; and a
    servicer that does nothing (bench/_noop_server.py), the ceiling of any Python
    grpc.aio server here."""
    rng = random.Random(concurrency)

    def random_id() -> str:
        return f"r{rng.randrange(GET_RECORDS):06d}"

    async def strata_get() -> None:
        await records.GetRecord(
            records_pb2.GetRecordRequest(
                namespace=NAMESPACE, collection=GET_COLLECTION, id=random_id()
            )
        )

    async with floor_ops(url, concurrency, noop_address, GET_COLLECTION, random_id) as floors:
        stats = await measured(concurrency, {"strata": strata_get, **floors})
    strata, base, floor = stats["strata"], stats["psycopg"], stats["noop"]
    name = f"GetRecord c={concurrency}"
    # p50 < 1 ms is a single-caller figure: at c=32 queueing alone puts the p50
    # near 32 / throughput, for the baseline as much as for Strata.
    limit = 1.0 if concurrency == 1 else None
    return [
        throughput_row(name, strata, base, 0.5),
        *latency_rows(name, strata, limit, base),
        throughput_row(f"{name}, no-op grpc.aio servicer (ceiling)", floor, base, None),
    ]


async def bench_writes(
    records: records_pb2_grpc.RecordServiceStub, txn: transaction_pb2_grpc.TransactionServiceStub
) -> list[Row]:
    """CreateRecord one at a time, then Commits of 100 creates, each timed alone."""
    rng = random.Random(2)
    create_ids, commit_ids = itertools.count(), itertools.count()

    async def create() -> None:
        await records.CreateRecord(
            records_pb2.CreateRecordRequest(
                namespace=NAMESPACE,
                collection="bench_create",
                record_id=f"c{next(create_ids):07d}",
                data=struct(document(0, rng)),
            )
        )

    async def commit() -> None:
        start = next(commit_ids) * COMMIT_SIZE
        await txn.Commit(commit_request("bench_commit", range(start, start + COMMIT_SIZE), rng))

    await run_times(CREATES // 10, create)
    created = await run_times(CREATES, create)
    await run_times(5, commit)
    committed = await run_times(COMMITS, commit)
    return [
        *latency_rows("CreateRecord c=1", created, 2.0, None),
        *latency_rows(f"Commit of {COMMIT_SIZE} creates", committed, 20.0, None),
    ]


async def declare_status_index(channel: grpc.aio.Channel) -> None:
    """Declare the index the list figure filters on, as an operator would, with
    AdminService.CreateIndex (the server uses it as soon as the stream ends)."""
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    request = admin_pb2.CreateIndexRequest(collection=LIST_COLLECTION, field="data.status")
    async for event in admin.CreateIndex(request):
        if event.HasField("index"):
            assert event.index.ready, event.index


def plan_nodes(lines: list[str]) -> str:
    """An EXPLAIN's plan nodes, one per arrow, without costs and conditions."""
    nodes = [line.split("  (cost")[0].strip().removeprefix("->").strip() for line in lines]
    return " → ".join(node for node in nodes if ":" not in node)


async def list_plan(url: str) -> str:
    """The list query's plan, so a reader sees which index served it."""
    sql, params = list_sql("s42")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cursor = await conn.execute(f"EXPLAIN {sql}", params)
        plan = plan_nodes([str(row[0]) for row in await cursor.fetchall()])
    return f"ListRecords plan: {plan}"


async def bench_list(records: records_pb2_grpc.RecordServiceStub, url: str) -> list[Row]:
    """An indexed equality filter, 1% selective, first page of 50, vs the same SQL."""
    rng = random.Random(3)

    def status() -> str:
        return f"s{rng.randrange(STATUSES):02d}"

    async def strata_list() -> None:
        response = await records.ListRecords(
            records_pb2.ListRecordsRequest(
                namespace=NAMESPACE,
                collection=LIST_COLLECTION,
                filter=f'data.status = "{status()}"',
                page_size=PAGE_SIZE,
            )
        )
        if len(response.records) != PAGE_SIZE:
            raise RuntimeError(f"expected a full page, got {len(response.records)}")

    async with pool(url, 1) as connections:
        await connections.wait()

        async def psycopg_list() -> None:
            sql, params = list_sql(status())
            async with connections.connection() as conn:
                # Unprepared, as Strata runs it: planned for its values every time.
                cursor = await conn.execute(sql, params, prepare=False)
                if len(await cursor.fetchall()) != PAGE_SIZE + 1:
                    raise RuntimeError("expected more than a page of matches")

        stats = await measured(1, {"strata": strata_list, "psycopg": psycopg_list})
    strata, base = stats["strata"], stats["psycopg"]
    name = f"ListRecords 1% of {LIST_RECORDS // 1000}k"
    return [throughput_row(name, strata, base, None), *latency_rows(name, strata, 3.0, base)]


async def run(url: str, target: str) -> tuple[list[Row], list[str]]:
    """Every measurement, in an order where each one's data is already loaded."""
    rows: list[Row] = []
    notes: list[str] = []
    async with grpc.aio.insecure_channel(target) as channel:
        records = records_pb2_grpc.RecordServiceStub(channel)
        txn = transaction_pb2_grpc.TransactionServiceStub(channel)
        await load(txn, GET_COLLECTION, GET_RECORDS)
        await settle(url)
        with noop_server() as noop_address:
            for concurrency in CONCURRENCY:
                rows += await bench_get(records, url, concurrency, noop_address)
        rows += await bench_writes(records, txn)
        loaded = await load(txn, LIST_COLLECTION, LIST_RECORDS)
        rows.append(
            Row(
                f"Load {LIST_RECORDS // 1000}k records, Commits of {LOAD_BATCH} "
                f"({LOAD_TASKS} in flight)",
                f"{rate(loaded, 'records/s')} ({loaded.seconds:.1f} s)",
            )
        )
        await declare_status_index(channel)
        await settle(url)
        rows += await bench_list(records, url)
        notes.append(await list_plan(url))
    return rows, notes


BASELINE = "psycopg direct"

WHERE_TIME_GOES = (
    "Where the time goes (bench/records_profile.py, not re-measured by each run; "
    "2026-12-07, host at load average ~13, so compare within a line, not with the table). "
    "Server CPU per call from /proc over 3,000-5,000 calls, the servers measured in "
    "alternating slices, five runs: GetRecord (cache off) c=1 1,080-1,310 us, c=32 800-930 us; "
    "the no-op grpc.aio servicer in the same slices 460-510 and 350-430 us, so the transport "
    "alone is 0.40-0.46 of Strata's CPU per GetRecord. ListRecords (1% of 100k, page 50) "
    "3,000-3,800 us. "
    "py-spy on the server's event-loop thread (samples taken with the process paused), "
    "GetRecord c=1 / c=32 / ListRecords: native code under the loop (grpc's core and its "
    "Cython, uvloop, the kernel's socket calls for both the client's and PostgreSQL's "
    "sockets) 68 / 64 / 41%; psycopg (pool checkout, query conversion, prepared-statement "
    "send, the async wait, fetch) 20 / 21 / 17%; grpc.aio's own per-RPC task (an asyncio.wait "
    "with no Strata frame above it) 3 / 6 / 2%; the interceptors, the status wrapper and the "
    "Prometheus metrics 3 / 3 / 3%; row -> domain (psycopg's loaders, json.loads of the jsonb) "
    "2 / 3 / 9%; JSON -> google.protobuf.Struct 1 / 1 / 10%; the rest of record_to_proto "
    "(Record, timestamps) and the page token 1 / 1 / 11%; request parsing and validation, "
    "the record service, the servicer itself under 1% each for a get (filter parse, SQL "
    "compile and the list's own loop 7% for a list). Linux perf by shared object agrees: for a "
    "GetRecord at c=1 the interpreter is 39% of the server's samples (21% in the no-op), the "
    "kernel 34% (48%), grpc's cygrpc 13% (20%), libpq and psycopg's C 2%, protobuf 1%; "
    "against the no-op, Strata adds interpreter time (psycopg's Python layer first) and "
    "kernel time (the PostgreSQL socket). Cuts so far: record_to_proto parses Struct bytes "
    "encoded in api/struct_wire.py instead of calling Struct.update (process CPU per record of "
    "the bench document: 9.6-9.8 us with Struct.update, 6.0 us encoding + 0.8 us parsing), and "
    "the per-RPC request id comes from the process PRNG instead of a getrandom system call "
    "(secrets.token_hex). Measured against the previous commit on the same database in "
    "alternating slices (records_profile.py --against 3c35c89), two runs: ListRecords -3% and "
    "-15% CPU per call; GetRecord c=32 -2% and 0%; GetRecord c=1 +14% and +12%, while a control "
    "run with the same code on both servers (--against HEAD) put them within 1-4% of each other. "
    "In-process CPU says a get saves about 2.5 us (record_to_proto of the bench record 12.3 -> "
    "10.2 us, the request id 0.84 -> 0.38 us), so the c=1 difference is not the code; at c=1 "
    "the server idles between calls and what it spends in the background is charged to the "
    "calls, more to the slower side of a pair (the new code's slices ran slower in both runs): "
    "not explained yet, the first thing to look at next. What "
    "remains is not in Strata's own conversions: at c=1 a GetRecord can't reach 0.8x of the "
    "no-op while it makes a PostgreSQL round trip through psycopg in the same process, whose "
    "Python layer and socket calls cost about what the whole no-op call does. Next candidates: "
    "a record's Struct bytes cached (keyed by content, or by id, version and update_time once "
    "that is shown unique across deletes, re-creates and imports), the ListRecordsResponse "
    "filled in place (records.add) instead of copied, and a lighter connection checkout than "
    "psycopg_pool's for one-statement reads."
)


def main() -> None:
    info = machine_info()
    with strata_stack("bench_records", STRATA_DB_POOL_MAX="32") as stack:
        rows, notes = asyncio.run(run(stack.database_url, stack.target))
    print(text_table(rows, BASELINE))
    for note in notes:
        print(note)
    method = (
        f"Both sides run from one asyncio process: grpc.aio over one channel vs psycopg "
        f"AsyncConnectionPool (autocommit, prepared statements; the list baseline unprepared, "
        f"so planned for its values), N tasks for concurrency N; "
        f"{WARMUP:g} s warm-up, then {SECONDS:g} s per side in 5 alternating slices (so "
        f"background load on a shared machine hits both sides alike); "
        f"{CREATES} creates and {COMMITS} commits timed one at a time; ListRecords pages "
        f"of {PAGE_SIZE} with a filter matching 1% of {LIST_RECORDS:,} records. "
        f"Strata: one `strata serve` process, STRATA_DB_POOL_MAX=32, PostgreSQL 15 "
        f"with fsync off, all on the same machine."
    )
    write_section(
        "records",
        "\n\n".join(
            [
                machine_markdown(info),
                markdown_table(rows, BASELINE),
                method,
                *notes,
                WHERE_TIME_GOES,
            ]
        ),
    )


if __name__ == "__main__":
    main()
