"""Cache benchmark: GetRecord served from the record cache (a hit), GetRecord that
misses it (a lease, the database read and the fill), and a direct redis-py GET of
the same cached value, side by side in one run.

Why these three: the hit and miss paths differ only by the cache, so their ratio
is what the cache buys a caller (the target: a hit's p50 at least 50% below a
miss's); the redis-py GET is the floor of any Redis-backed read from Python, so the
gap between it and a hit is what the gRPC hop and the server cost.

Strata runs the production shape: PostgreSQL 15 (fsync off) and one redis-server,
both throwaway, and one `strata serve` with STRATA_REDIS_URL. Every miss reads a
record nobody read before (a preloaded collection is walked in order), so it is a
real miss; the server's own hit/miss counters are printed to prove it.

Run with `make bench` (or `.venv/bin/python bench/cache.py`); prints a table and
rewrites the `## cache` section of bench/RESULTS.md. Nothing here asserts speed.
"""

from __future__ import annotations

import asyncio
import itertools
import random

import grpc
from _harness import (
    WORK,
    Row,
    Stats,
    machine_info,
    machine_markdown,
    markdown_table,
    noop_server,
    strata_stack,
    text_table,
)
from _results import write_section
from records import NAMESPACE, floor_ops, load, measured, ms, rate, settle, verdict
from redis.asyncio import Redis

from strata.v1 import admin_pb2, admin_pb2_grpc, records_pb2, records_pb2_grpc, transaction_pb2_grpc
from strata_server.storage.redis.cache import RedisCache
from tests.support.redis import RedisServer

HIT_COLLECTION, HIT_RECORDS = "bench_hit", 1_000
MISS_COLLECTION, MISS_RECORDS = "bench_miss", 40_000
CONCURRENCY = (1, 32)
BASELINE = "redis-py GET"


def record_id(i: int) -> str:
    """The ids `records.load` gives its records."""
    return f"r{i:06d}"


async def bench(
    records: records_pb2_grpc.RecordServiceStub,
    redis: Redis,
    concurrency: int,
    misses: itertools.count[int],
    floors: tuple[str, str] | None = None,
) -> dict[str, Stats]:
    """The three paths at `concurrency`, warmed up, then timed in alternating slices.
    With `floors` (the no-op server's address, the database URL), also the floor of
    any hit (GetRecord from a gRPC servicer that does nothing) and the read a hit
    saves (psycopg's SELECT by key of a record, prepared, autocommit)."""
    rng = random.Random(concurrency)

    async def hit() -> None:
        await records.GetRecord(
            records_pb2.GetRecordRequest(
                namespace=NAMESPACE,
                collection=HIT_COLLECTION,
                id=record_id(rng.randrange(HIT_RECORDS)),
            )
        )

    async def miss() -> None:
        i = next(misses)
        if i >= MISS_RECORDS:
            raise RuntimeError("ran out of unread records: raise MISS_RECORDS")
        await records.GetRecord(
            records_pb2.GetRecordRequest(
                namespace=NAMESPACE, collection=MISS_COLLECTION, id=record_id(i)
            )
        )

    async def redis_get() -> None:
        key = RedisCache.key(
            NAMESPACE, f"r:{HIT_COLLECTION}/{record_id(rng.randrange(HIT_RECORDS))}"
        )
        if await redis.get(key) is None:
            raise RuntimeError("a hit record is not in Redis")

    ops = {"hit": hit, "miss": miss, "redis": redis_get}
    if floors is None:
        return await measured(concurrency, ops)
    noop_address, url = floors

    def any_miss_record() -> str:
        return record_id(rng.randrange(MISS_RECORDS))

    async with floor_ops(url, concurrency, noop_address, MISS_COLLECTION, any_miss_record) as more:
        return await measured(concurrency, {**ops, **more})


def rows_for(concurrency: int, stats: dict[str, Stats]) -> list[Row]:
    """Throughput, p50 and p99 of each path, and the hit-vs-miss p50 verdict."""
    hit, miss, direct = stats["hit"], stats["miss"], stats["redis"]
    name = f"GetRecord c={concurrency}"
    saved = 1 - hit.p50_ms / miss.p50_ms
    rows = [
        Row(
            f"{name}, cache hit throughput",
            rate(hit),
            rate(direct),
            f"{hit.ops_per_s / direct.ops_per_s:.2f}x",
        ),
        Row(f"{name}, cache hit p50", ms(hit.p50_ms), ms(direct.p50_ms)),
        Row(f"{name}, cache hit p99", ms(hit.p99_ms), ms(direct.p99_ms)),
        Row(f"{name}, cache miss throughput", rate(miss)),
        Row(f"{name}, cache miss p50", ms(miss.p50_ms)),
        Row(f"{name}, cache miss p99", ms(miss.p99_ms)),
        Row(
            f"{name}, hit p50 below miss p50",
            f"{saved:.0%}",
            target="≥ 50%",
            result=verdict(saved >= 0.5),
        ),
    ]
    if "noop" in stats:
        floor, read = stats["noop"], stats["psycopg"]
        best = 1 - (floor.p50_ms + direct.p50_ms) / miss.p50_ms
        rows += [
            Row(f"{name}, no-op grpc.aio servicer (floor of any hit) p50", ms(floor.p50_ms)),
            Row(f"{name}, psycopg SELECT by key (the read a hit saves) p50", ms(read.p50_ms)),
            Row(
                f"{name}, most a hit could save: 1 - (floor + redis-py GET) / miss p50",
                f"{best:.0%}",
            ),
        ]
    return rows


async def run(
    target: str, url: str, redis_url: str, noop_address: str
) -> tuple[list[Row], list[str]]:
    """Load both collections, warm the hit one, then measure at each concurrency."""
    rows: list[Row] = []
    async with grpc.aio.insecure_channel(target) as channel:
        records = records_pb2_grpc.RecordServiceStub(channel)
        txn = transaction_pb2_grpc.TransactionServiceStub(channel)
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        await load(txn, HIT_COLLECTION, HIT_RECORDS)
        await load(txn, MISS_COLLECTION, MISS_RECORDS)
        await settle(url)
        ids = [record_id(i) for i in range(HIT_RECORDS)]
        for start in range(0, HIT_RECORDS, 500):  # every hit record into the cache
            await records.BatchGetRecords(
                records_pb2.BatchGetRecordsRequest(
                    namespace=NAMESPACE, collection=HIT_COLLECTION, ids=ids[start : start + 500]
                )
            )
        before = (await admin.GetServerInfo(admin_pb2.GetServerInfoRequest())).cache_stats
        misses = itertools.count()
        redis = Redis.from_url(redis_url, max_connections=max(CONCURRENCY))
        try:
            for concurrency in CONCURRENCY:
                floors = (noop_address, url) if concurrency == 1 else None
                stats = await bench(records, redis, concurrency, misses, floors)
                rows += rows_for(concurrency, stats)
        finally:
            await redis.aclose()
        after = (await admin.GetServerInfo(admin_pb2.GetServerInfoRequest())).cache_stats
    served = next(misses)
    note = (
        f"Server counters over the measurements: {after.hits - before.hits:,} hits, "
        f"{after.misses - before.misses:,} misses ({served:,} miss-path calls, each of a "
        f"record never read before), {after.bypassed - before.bypassed} bypassed."
    )
    return rows, [note]


def main() -> None:
    info = machine_info()
    redis = RedisServer(WORK / "redis")
    redis.start()
    try:
        with (
            noop_server() as noop_address,
            strata_stack(
                "bench_cache", STRATA_DB_POOL_MAX="32", STRATA_REDIS_URL=redis.url
            ) as stack,
        ):
            rows, notes = asyncio.run(
                run(stack.target, stack.database_url, redis.url, noop_address)
            )
    finally:
        redis.stop()
    print(text_table(rows, BASELINE))
    for note in notes:
        print(note)
    method = (
        "All three paths run from one asyncio process: grpc.aio over one channel to one "
        "`strata serve` (PostgreSQL 15 with fsync off, STRATA_DB_POOL_MAX=32, "
        "STRATA_REDIS_URL set) vs redis.asyncio (hiredis parser) to the same redis-server, "
        f"N tasks for concurrency N; 1 s warm-up each, then 5 s per path in 5 alternating "
        f"slices. Hits: random ids of {HIT_RECORDS:,} records, all cached first. Misses: "
        f"{MISS_RECORDS:,} preloaded records read in order, each once. redis-py GET: the "
        "cached entry of a random hit record, the bytes a hit reads. At c=1 also, in the same "
        "slices: GetRecord to bench/_noop_server.py (a grpc.aio servicer returning one "
        "constant Record: the floor of any hit through a Python gRPC server here), and "
        "psycopg's prepared SELECT by key of a random miss-collection record (the database "
        "read a hit saves). A hit costs at least that floor plus one Redis round trip, so "
        "`1 - (floor + redis-py GET) / miss` is the most any hit path could save against "
        "the measured miss."
    )
    write_section(
        "cache",
        "\n\n".join([machine_markdown(info), markdown_table(rows, BASELINE), method, *notes]),
    )


if __name__ == "__main__":
    main()
