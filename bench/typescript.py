"""TypeScript client benchmark: the Node client (@strata/client) beside the Python
client, against one server, in one run.

Figures (target from /work/shared/DESIGN.md: the TypeScript client reads
transcripts at least as fast as the Python client):
  1. ReadTranscript of ENTRIES entries of about 200 bytes (no follow, the default
     64 KiB batches), every seq checked: entries/s and CPU per entry of the
     reading process, through the Node client (`client.transcripts.read`, in a
     node process: bench/typescript_client.mjs, timed inside it after its
     imports) and the Python client (the blocking `Client.read_transcript` and
     the asyncio `AsyncClient.read_transcript`, in this process). READ_ROUNDS
     rounds, each reading once through each client in turn, after one untimed
     read each; medians. The ratio is Node over the faster Python client.
  2. Enqueue → delivery to a consumer already waiting in SubscribeJobs
     (maxInFlight 1) on a connection of its own, one job at a time, GAP apart:
     t0 just before the enqueue is called, t1 when the consumer has the job; it
     acks before the next. Node: `queue.subscribe()`; Python: `AsyncClient`'s
     `queue(...).subscribe()`. DELIVERY_JOBS samples each after DELIVERY_WARMUP,
     p50 and p99.

The server: one `strata serve` on a throwaway PostgreSQL 15 (fsync off). Run with
`make bench` (after `make ts-build`) or `.venv/bin/python bench/typescript.py`;
prints a table and rewrites the `## typescript` section of bench/RESULTS.md.
Nothing here asserts speed. BENCH_TS_ENTRIES overrides ENTRIES for a quick run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import statistics
import subprocess
import time
from dataclasses import dataclass

import grpc
import psycopg
from _harness import (
    ROOT,
    Row,
    Stats,
    latency_stats,
    load_average,
    machine_info,
    machine_markdown,
    markdown_table,
    strata_stack,
    text_table,
)
from _results import write_section

import strata
from strata.v1 import transcripts_pb2, transcripts_pb2_grpc

NAMESPACE = "bench"
ENTRIES = int(os.environ.get("BENCH_TS_ENTRIES", "300000"))
ENTRY_BYTES = 200
PER_APPEND, WRITERS = 1000, 4
READ_ROUNDS = 5
DELIVERY_JOBS, DELIVERY_WARMUP = 300, 30
GAP = 0.01
"""Pause before each enqueue, so that the consumer is parked again."""
NODE_SCRIPT = ROOT / "bench" / "typescript_client.mjs"
BASELINE = "Python client"

WHERE_TIME_GOES = (
    "Where the time goes (CPU profiles of the Node read and of 3,000 GetRecord calls, "
    "`node --cpu-prof`, at commit dfc1591; not re-measured by each run). Reads: the "
    "first version read 89k entries/s where the blocking Python client read 157k, at "
    "9 us of CPU per entry, and idled a quarter of the time. Two causes. (1) protobuf-es "
    "decodes by reflection, building a message per entry and per Timestamp: 7.5 us per "
    "entry for a 64 KiB batch of 290 entries, plus 2.7 us to turn it into plain values "
    "(microbenchmark of one batch). The client now opens the stream through a copy of "
    "TranscriptService whose `Batch.entries` is `repeated bytes` (an embedded message and "
    "a bytes field are the same on the wire) and decodes each entry's bytes by hand "
    "straight into its plain Entry (src/entry-wire.ts): 2 us, int64s read without a "
    "bigint. (2) Node grants HTTP/2's default 64 KiB flow-control windows, so the server "
    "sent one 64 KiB batch and waited for a window update from this process's event "
    "loop, held back further by Nagle's algorithm; gRPC's own clients widen their "
    "windows. With 4 MiB per stream and 8 MiB per connection, and TCP_NODELAY, 200k "
    "entries took 0.74-0.92 s instead of 1.6-2.4 s (SQLite, same host; 1.17-1.33 s with "
    "the windows but without TCP_NODELAY). What is left, 2.6-2.8 us an entry: UTF-8 "
    "decoding of role and content, a BinaryReader and a Date per entry, one "
    "async-generator step per entry, and GC (6%). Delivery is per call, not per entry: "
    "Connect's unary path costs about 1 ms of client CPU per call on this host "
    "(1,000 sequential GetRecord: 1.37-1.42 s of CPU, p50 1.35-1.40 ms, against 0.85 ms "
    "through the blocking Python client, whose gRPC core is C), spread over its "
    "async-iterable pipeline, an AbortController and a ConnectError per call, and "
    "header conversion; an enqueue is one such call, the push one stream message. Not "
    "tried: @grpc/grpc-js in place of Connect (see the client README for why Connect)."
)

WORDS = ["the", "user", "asked", "about", "the", "refund", "status", "of", "order", "number"]


@dataclass(frozen=True, slots=True)
class Read:
    """One timed read of the whole transcript."""

    seconds: float
    cpu_seconds: float

    @property
    def entries_per_s(self) -> float:
        return ENTRIES / self.seconds

    @property
    def cpu_us_per_entry(self) -> float:
        return self.cpu_seconds / ENTRIES * 1e6


def entry_text(i: int) -> str:
    words = [WORDS[(i * 7 + k) % len(WORDS)] for k in range(60)]
    return " ".join(words)[:ENTRY_BYTES]


async def load(target: str, transcript: str) -> float:
    """Append ENTRIES entries, PER_APPEND per call, WRITERS calls in flight."""
    started = time.perf_counter()
    async with strata.AsyncClient(target, namespace=NAMESPACE) as client:
        await client.create_transcript(transcript)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = transcripts_pb2_grpc.TranscriptServiceStub(channel)
        batches = asyncio.Queue[int]()
        for start in range(0, ENTRIES, PER_APPEND):
            batches.put_nowait(start)

        async def writer() -> None:
            while not batches.empty():
                start = batches.get_nowait()
                entries = [
                    transcripts_pb2.Entry(role="assistant", content=entry_text(i))
                    for i in range(start, min(start + PER_APPEND, ENTRIES))
                ]
                await stub.AppendEntries(
                    transcripts_pb2.AppendEntriesRequest(
                        namespace=NAMESPACE, id=transcript, entries=entries
                    )
                )

        await asyncio.gather(*(writer() for _ in range(WRITERS)))
    return time.perf_counter() - started


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def python_read(target: str, transcript: str) -> Read:
    """The blocking client's read, every seq checked."""
    with strata.Client(target, namespace=NAMESPACE) as client:
        cpu, started = cpu_seconds(), time.perf_counter()
        expected = 1
        for entry in client.read_transcript(transcript):
            if entry.seq != expected:
                raise RuntimeError(f"seq {entry.seq} where {expected} was due")
            expected += 1
        seconds = time.perf_counter() - started
        used = cpu_seconds() - cpu
    if expected - 1 != ENTRIES:
        raise RuntimeError(f"read {expected - 1} entries, not {ENTRIES}")
    return Read(seconds, used)


async def python_async_read(target: str, transcript: str) -> Read:
    """The asyncio client's read, every seq checked."""
    async with strata.AsyncClient(target, namespace=NAMESPACE) as client:
        cpu, started = cpu_seconds(), time.perf_counter()
        expected = 1
        async for entry in client.read_transcript(transcript):
            if entry.seq != expected:
                raise RuntimeError(f"seq {entry.seq} where {expected} was due")
            expected += 1
        seconds = time.perf_counter() - started
        used = cpu_seconds() - cpu
    if expected - 1 != ENTRIES:
        raise RuntimeError(f"read {expected - 1} entries, not {ENTRIES}")
    return Read(seconds, used)


def node(*args: str) -> dict[str, object]:
    """One measurement of bench/typescript_client.mjs: its JSON line."""
    result = subprocess.run(
        ["node", str(NODE_SCRIPT), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"node {' '.join(args)} failed:\n{result.stderr}")
    parsed: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def node_read(target: str, transcript: str) -> Read:
    """The Node client's read (timed inside the node process, after its imports)."""
    measured = node("read", target, NAMESPACE, transcript, str(ENTRIES))
    return Read(float(str(measured["seconds"])), float(str(measured["cpu_seconds"])))


async def python_delivery(target: str, queue: str) -> Stats:
    """Enqueue → delivery through the Python client (AsyncClient), as the Node side does."""
    arrivals: asyncio.Queue[tuple[str, float]] = asyncio.Queue()
    async with (
        strata.AsyncClient(target, namespace=NAMESPACE) as producer,
        strata.AsyncClient(target, namespace=NAMESPACE) as consumer,
    ):

        async def consume() -> None:
            async with consumer.queue(queue).subscribe(max_in_flight=1) as jobs:
                async for job in jobs:
                    received = time.perf_counter()
                    await jobs.ack(job)
                    await arrivals.put((job.id, received))

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.2)
        durations: list[float] = []
        try:
            for i in range(DELIVERY_JOBS + DELIVERY_WARMUP):
                await asyncio.sleep(GAP)
                sent = time.perf_counter()
                job = await producer.enqueue(queue, {"n": i})
                job_id, received = await asyncio.wait_for(arrivals.get(), 10)
                if job_id != job.id:
                    raise RuntimeError("the consumer received another job")
                if i >= DELIVERY_WARMUP:
                    durations.append(received - sent)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return latency_stats(durations)


def node_delivery(target: str, queue: str) -> Stats:
    """Enqueue → delivery through the Node client."""
    measured = node(
        "deliver",
        target,
        NAMESPACE,
        queue,
        str(DELIVERY_JOBS),
        str(DELIVERY_WARMUP),
        str(int(GAP * 1000)),
    )
    milliseconds = measured["milliseconds"]
    assert isinstance(milliseconds, list)
    return latency_stats([float(ms) / 1000 for ms in milliseconds])


def median_read(reads: list[Read]) -> Read:
    return Read(
        statistics.median(r.seconds for r in reads),
        statistics.median(r.cpu_seconds for r in reads),
    )


def rate(read: Read) -> str:
    return f"{read.entries_per_s:,.0f} entries/s"


def run() -> tuple[list[Row], str]:
    info = machine_info()
    with strata_stack("bench_typescript") as stack:
        transcript = "long"
        load_seconds = asyncio.run(load(stack.target, transcript))
        # Settled as autovacuum soon would be (see bench/README.md, records).
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE) transcript_entries")
        print(f"loaded {ENTRIES:,} entries in {load_seconds:.0f} s")
        # One untimed read through each, so every side starts warm.
        node_read(stack.target, transcript)
        python_read(stack.target, transcript)
        asyncio.run(python_async_read(stack.target, transcript))
        reads: dict[str, list[Read]] = {"node": [], "python": [], "python_async": []}
        load_before = load_average()
        for round_ in range(READ_ROUNDS):
            reads["node"].append(node_read(stack.target, transcript))
            reads["python"].append(python_read(stack.target, transcript))
            reads["python_async"].append(asyncio.run(python_async_read(stack.target, transcript)))
            print(
                f"read round {round_ + 1}: "
                + ", ".join(f"{name} {rate(r[-1])}" for name, r in reads.items())
            )
        node_r, python_r, python_async_r = (median_read(reads[k]) for k in reads)
        fastest_python = max(python_r, python_async_r, key=lambda r: r.entries_per_s)
        ratio = node_r.entries_per_s / fastest_python.entries_per_s

        node_latency = node_delivery(stack.target, "delivered_node")
        python_latency = asyncio.run(python_delivery(stack.target, "delivered_python"))

    rows = [
        Row(
            f"ReadTranscript of {ENTRIES:,} entries (~{ENTRY_BYTES} B, 64 KiB batches), "
            f"median of {READ_ROUNDS}",
            rate(node_r),
            f"{rate(python_r)} (Client), {rate(python_async_r)} (AsyncClient)",
            f"{ratio:.2f}x",
            "≥ 1x",
            "pass" if ratio >= 1 else "miss",
        ),
        Row(
            "CPU per entry of the reading process",
            f"{node_r.cpu_us_per_entry:.2f} us",
            f"{python_r.cpu_us_per_entry:.2f} us (Client), "
            f"{python_async_r.cpu_us_per_entry:.2f} us (AsyncClient)",
        ),
        Row(
            "Enqueue → delivery to a waiting subscriber, p50",
            f"{node_latency.p50_ms:.2f} ms",
            f"{python_latency.p50_ms:.2f} ms",
            f"{node_latency.p50_ms / python_latency.p50_ms:.2f}x the time",
            "< 5 ms",
            "pass" if node_latency.p50_ms < 5 else "miss",
        ),
        Row(
            "Enqueue → delivery to a waiting subscriber, p99",
            f"{node_latency.p99_ms:.2f} ms",
            f"{python_latency.p99_ms:.2f} ms",
        ),
    ]
    notes = (
        f"One throwaway PostgreSQL 15 (fsync off) and one `strata serve`. Load: {ENTRIES:,} "
        f"entries of about {ENTRY_BYTES} bytes into one transcript (AppendEntries of "
        f"{PER_APPEND}, {WRITERS} in flight) in {load_seconds:.0f} s, then `VACUUM (ANALYZE)`. "
        f"Read: after one untimed read each, {READ_ROUNDS} rounds of one read through each "
        "client in turn, medians; "
        "every seq checked. Node: `client.transcripts.read(id)` in its own node process "
        "(bench/typescript_client.mjs), timed inside it after its imports and an untimed "
        "read of the first 50,000 entries (V8's warm-up; the Python side's process is warm "
        "too); CPU is that process's user + system time over the read. "
        "Python: `Client.read_transcript` and "
        "`AsyncClient.read_transcript` in this process, its CPU time over the read. "
        f"Delivery: {DELIVERY_JOBS} jobs after {DELIVERY_WARMUP} warm-up ones, "
        f"{GAP * 1000:.0f} ms apart, producer and consumer on connections of their own; "
        f"Node first, then Python, each on a queue of its own. Load average before the "
        f"reads: {load_before}."
    )
    markdown = (
        f"{machine_markdown(info)}\n\n{markdown_table(rows, BASELINE)}\n\n{notes}\n\n"
        f"{WHERE_TIME_GOES}"
    )
    return rows, markdown


def main() -> None:
    rows, markdown = run()
    print(text_table(rows, BASELINE))
    write_section("typescript", markdown)


if __name__ == "__main__":
    main()
