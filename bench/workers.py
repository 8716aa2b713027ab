"""Workers benchmark: what a second server process (`strata serve --workers 2`,
SO_REUSEPORT) buys over one `strata serve` on this machine, for GetRecord with
the record cache off.

Why side by side: both servers run at once on the same PostgreSQL database and
are called in alternating slices from this one process, so background load on a
shared machine hits both alike and their ratio holds. At c=32 the question is
throughput (can two processes use the cores one cannot?); at c=1 it is the cost of
the supervisor, which is on no call's path, so the two should match.

The client opens CHANNELS channels (one connection each) to either server and,
at c=32, spreads its calls over them: SO_REUSEPORT spreads connections, not calls,
so one connection would keep every call on one worker. At c=1 it keeps to one.
Then each server is run alone for a few seconds with the CPU time of the client,
the server processes and PostgreSQL read from /proc, which says where the time
goes when they share two cores.

Run with `make bench` (or `.venv/bin/python bench/workers.py`); prints a table and
rewrites the `## workers` section of bench/RESULTS.md. Nothing here asserts speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from _harness import (
    WORK,
    Row,
    Stats,
    cpu_seconds,
    load_average,
    machine_info,
    machine_markdown,
    markdown_table,
    run_for,
    run_side_by_side,
    text_table,
)
from _results import write_section
from records import NAMESPACE, load, ms, rate, settle

from strata.v1 import records_pb2, records_pb2_grpc, transaction_pb2_grpc
from tests.support.pg import PgServer
from tests.support.ports import free_port
from tests.support.processes import children, connections, tree
from tests.support.server import StrataProcess

COLLECTION, RECORDS = "bench_workers", 2_000
CONCURRENCY = (1, 32)
CHANNELS = 8
CPU_SECONDS = 3.0
SECONDS, ROUNDS, WARMUP = 10.0, 20, 1.0
"""Per side: many short alternating slices, as the two sides differ by less than
the drift of a shared machine's load."""
BASELINE = "one process"
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]
"""Each channel its own connection (else channels to one address share one)."""
SINGLE_CALLER = (
    "At c=1 the one connection takes the same path through one worker as through the "
    "one process, the supervisor being on no call's path; on a busy host that ratio "
    "swings from run to run by more than any cost of the supervisor could, so the "
    "supervisor's own CPU (below) is the figure for that cost."
)


def _cpu(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used so far (gone ones: 0)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


@dataclass(frozen=True, slots=True)
class Side:
    """One server under test: its address and the processes whose CPU is its own."""

    name: str
    target: str
    pid: int

    def processes(self) -> list[int]:
        return tree(self.pid)


@dataclass(frozen=True, slots=True)
class CpuUse:
    """Where the CPU went while one server alone was called at c=32."""

    per_call_ms: dict[str, float]
    """CPU milliseconds per call of "client", "server" (all its processes), "postgres"."""
    server_split: list[float]
    """Each server process's CPU seconds: the supervisor (or the one process) first."""
    calls_per_s: float

    def cores(self) -> float:
        """How many cores' worth of CPU the three used together."""
        return sum(self.per_call_ms.values()) / 1000 * self.calls_per_s


async def cpu_use(side: Side, postmaster: int, op: Callable[[], Awaitable[object]]) -> CpuUse:
    """CPU time of the client, the server's processes and PostgreSQL while `side`
    alone is called at c=32 for CPU_SECONDS."""
    server = side.processes()
    groups = {"client": [os.getpid()], "server": server, "postgres": tree(postmaster)}
    before = {name: _cpu(pids) for name, pids in groups.items()}
    each = [_cpu([pid]) for pid in server]
    stats = await run_for(CPU_SECONDS, 32, op)
    groups["postgres"] = tree(postmaster)  # backends opened meanwhile count too
    return CpuUse(
        {name: (_cpu(pids) - before[name]) * 1000 / stats.ops for name, pids in groups.items()},
        [_cpu([pid]) - used for pid, used in zip(server, each, strict=True)],
        stats.ops_per_s,
    )


@contextlib.contextmanager
def servers(url: str, workdir: Path) -> Iterator[tuple[Side, Side]]:
    """One `strata serve` and one `strata serve --workers 2` on database `url`, no
    Redis (so no record cache), both stopped by PID however the block ends."""
    single = StrataProcess(url, workdir / "single", STRATA_DB_POOL_MAX="32")
    workers = StrataProcess(url, workdir / "workers", STRATA_DB_POOL_MAX="32", STRATA_WORKERS="2")
    try:
        single.start(timeout=60)
        workers.start(timeout=60, port=free_port())
        assert single.process is not None and workers.process is not None
        yield (
            Side("one process", single.target, single.process.pid),
            Side("--workers 2", workers.target, workers.process.pid),
        )
    finally:
        single.stop()
        workers.stop()


async def bench(one: Side, two: Side, url: str, postmaster: int) -> tuple[list[Row], list[str]]:
    """The rows (and notes) of every figure."""
    rng = random.Random(23)
    async with contextlib.AsyncExitStack() as stack:
        stubs: dict[str, list[records_pb2_grpc.RecordServiceStub]] = {}
        for side in (one, two):
            channels = [
                await stack.enter_async_context(
                    grpc.aio.insecure_channel(side.target, options=CHANNEL_OPTIONS)
                )
                for _ in range(CHANNELS)
            ]
            stubs[side.name] = [records_pb2_grpc.RecordServiceStub(c) for c in channels]
        txn = transaction_pb2_grpc.TransactionServiceStub(
            await stack.enter_async_context(grpc.aio.insecure_channel(one.target))
        )
        await load(txn, COLLECTION, RECORDS)
        await settle(url)

        def get(side: Side, concurrency: int) -> Callable[[], Awaitable[object]]:
            # One caller keeps to one connection, so that c=1 compares the same
            # path (one worker) and shows what the supervisor costs: nothing, or
            # little. Callers spread over the connections (and so the workers).
            cycle = itertools.cycle(stubs[side.name][: 1 if concurrency == 1 else CHANNELS])

            async def call() -> None:
                await next(cycle).GetRecord(
                    records_pb2.GetRecordRequest(
                        namespace=NAMESPACE,
                        collection=COLLECTION,
                        id=f"r{rng.randrange(RECORDS):06d}",
                    )
                )

            return call

        rows: list[Row] = []
        notes: list[str] = []
        for concurrency in CONCURRENCY:
            sides = {side.name: get(side, concurrency) for side in (one, two)}
            for op in sides.values():
                await run_for(WARMUP, concurrency, op)
            stats = await run_side_by_side(SECONDS, concurrency, sides, rounds=ROUNDS)
            rows += _rows(concurrency, one=stats[one.name], two=stats[two.name])
            notes.append(f"c={concurrency} measured with load average {load_average()}.")
        notes.append(SINGLE_CALLER)
        port = int(two.target.rpartition(":")[2])
        spread = [len(connections(pid, port)) for pid in children(two.pid)]
        notes.append(
            f"--workers 2: the kernel gave the workers {' / '.join(map(str, spread))} of "
            f"the client's {CHANNELS} connections (SO_REUSEPORT hashes each connection's "
            f"addresses and ports, so a few connections can split unevenly; calls follow "
            f"their connection)."
        )
        single = await cpu_use(one, postmaster, get(one, 32))
        pair = await cpu_use(two, postmaster, get(two, 32))
        for group in ("client", "server", "postgres"):
            mine, base = pair.per_call_ms[group], single.per_call_ms[group]
            ratio = f"{mine / base:.2f}x"
            rows.append(Row(f"GetRecord c=32, CPU per call: {group}", ms(mine), ms(base), ratio))
        notes.append(f"CPU per call measured with load average {load_average()}.")
        notes.append(_where_time_goes(single, pair))
    return rows, notes


def _rows(concurrency: int, *, one: Stats, two: Stats) -> list[Row]:
    name = f"GetRecord c={concurrency} (cache off)"
    return [
        Row(
            f"{name} throughput",
            rate(two),
            rate(one),
            f"{two.ops_per_s / one.ops_per_s:.2f}x",
        ),
        Row(f"{name} p50", ms(two.p50_ms), ms(one.p50_ms)),
        Row(f"{name} p99", ms(two.p99_ms), ms(one.p99_ms)),
    ]


def _where_time_goes(one: CpuUse, two: CpuUse) -> str:
    def split(costs: dict[str, float]) -> str:
        total = sum(costs.values())
        return ", ".join(f"{group} {cost / total:.0%}" for group, cost in costs.items())

    supervisor, *workers = two.server_split
    return (
        f"Where the CPU goes per GetRecord at c=32 (client, server processes, PostgreSQL), "
        f"one process: {split(one.per_call_ms)}; --workers 2: {split(two.per_call_ms)}. "
        f"With --workers 2 the workers used "
        f"{' / '.join(f'{used / sum(workers):.0%}' for used in workers)} of the workers' CPU "
        f"(as their connections), and the supervisor "
        f"{supervisor * 1000:.0f} ms in {CPU_SECONDS:g} s (it is on no call's path). A "
        f"call cost the server processes "
        f"{two.per_call_ms['server'] / one.per_call_ms['server']:.2f}x the CPU with two "
        f"workers (not profiled; each event loop wakes for its share of the calls, so it gathers "
        f"fewer per wakeup, and two processes keep two pools, caches and loops). "
        f"Together the three used {one.cores():.2f} cores with one process "
        f"({one.calls_per_s:,.0f} calls/s) and {two.cores():.2f} with --workers 2 "
        f"({two.calls_per_s:,.0f} calls/s). "
        f"They share the machine's {os.cpu_count()} cores, so a second worker can only "
        f"use CPU that the client, PostgreSQL and the first worker leave idle: the ratio "
        f"at c=32 is what a second process buys here. With a load average above the core "
        f"count, other work takes part of that idle CPU, and the kernel shares the CPU by "
        f"runnable process, so two workers also win a larger share from that other work "
        f"than one does: a ratio measured on a busy host overstates what a quiet one gives."
    )


def main() -> None:
    info = machine_info()
    WORK.mkdir(parents=True, exist_ok=True)
    pg = PgServer(WORK)
    try:
        pg.start()
        url = pg.create_database("bench_workers")
        postmaster = int((pg.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        with servers(url, pg.base) as (one, two):
            rows, notes = asyncio.run(bench(one, two, url, postmaster))
    finally:
        pg.cleanup()
    print(text_table(rows, BASELINE))
    for note in notes:
        print(note)
    method = (
        "Both servers run at once on one PostgreSQL 15 database (fsync off), without "
        "Redis (so the record cache is off), STRATA_DB_POOL_MAX=32 per process. The "
        f"client is this one asyncio process: {CHANNELS} grpc.aio channels (a connection "
        "each) per server, calls spread over them in turn at c=32 (c=1 keeps to one), "
        f"N tasks for concurrency N, GetRecord of random ids among {RECORDS:,} records; "
        f"a warm-up, then {SECONDS:g} s per server in {ROUNDS} alternating slices. The "
        "strata column is `--workers 2`, the baseline one process; then each alone for "
        f"{CPU_SECONDS:g} s at c=32 with CPU time read from /proc."
    )
    write_section(
        "workers",
        "\n\n".join([machine_markdown(info), markdown_table(rows, BASELINE), method, *notes]),
    )


if __name__ == "__main__":
    main()
