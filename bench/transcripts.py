"""Transcript benchmark: reading a long transcript, and following one across replicas.

Figures (targets from /work/shared/DESIGN.md):
  1. Load ENTRIES entries of about ENTRY_BYTES bytes into one transcript through
     AppendEntries, PER_APPEND per call, WRITERS calls in flight (no target: the
     cost of getting the data in, and of the full-text index on every entry).
  2. ReadTranscript of all of them (no follow) over grpc.aio, with the default
     64 KiB batches and with 1 MiB batches: entries/s and MB/s of entry bytes,
     beside a direct psycopg server-side cursor (named cursor, itersize 2000) over
     the same rows in seq order in the same PostgreSQL. Target ≥ 200k entries/s.
     While Strata reads, /proc/<pid>/status of the server is sampled every 20 ms:
     the peak VmRSS minus the VmRSS before the read. Target < 50 MB.
  3. Append → follower delivery across two replicas: a follower on server A
     (ReadTranscript follow=true, grpc.aio), one entry appended at a time through
     server B, both on one PostgreSQL; t0 just before AppendEntries is called,
     t1 when the follower receives the batch holding it. Woken through PostgreSQL
     LISTEN/NOTIFY and through Redis pub/sub, each on pairs started for it,
     alternated, LATENCY_ROUNDS runs each. Target p50 < 5 ms, p99 < 20 ms.
     Beside it, the same shape done directly on the same Redis: XADD by a
     producer, XREAD BLOCK by a consumer already waiting on its own connection.
  4. Bytes per stored entry (bench/_storage_bytes.py): every byte PostgreSQL keeps
     for transcript_entries (heap, TOAST, indexes) over the loaded 1M entries, beside
     their role + content bytes; then STORAGE_ENTRIES chat-like entries on a fresh
     PostgreSQL database, and both kinds on SQLite files (no target: issue 22 asks
     for the figure before and after storing each entry once).

Run with `make bench` (or `.venv/bin/python bench/transcripts.py`); prints a table
and rewrites the `## transcripts` section of bench/RESULTS.md. Nothing here asserts
speed. BENCH_TRANSCRIPT_ENTRIES overrides ENTRIES for a quick run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import psycopg
import redis.asyncio as aioredis
from _harness import (
    WORK,
    PgServer,
    Row,
    Stats,
    cpu_seconds,
    latency_stats,
    machine_info,
    machine_markdown,
    markdown_table,
    text_table,
)
from _results import write_section
from _storage_bytes import (
    ENTRY_BYTES,
    chat_text,
    content,
    measure_postgres,
    measure_sqlite,
    postgres_entry_bytes,
)

from strata.v1 import transcripts_pb2, transcripts_pb2_grpc
from tests.support.redis import RedisServer
from tests.support.server import StrataProcess

NAMESPACE = "bench"
ENTRIES = int(os.environ.get("BENCH_TRANSCRIPT_ENTRIES", "1000000"))
PER_APPEND, WRITERS = 1000, 4
LATENCY_APPENDS = 300
LATENCY_WARMUP = 30
LATENCY_ROUNDS = 2
"""Latency runs per channel, each on a pair of its own, alternating the channels."""
LATENCY_GAP = 0.005
"""Pause between latency samples, so each append lands on an idle follower."""
BASELINE = "direct (psycopg / Redis Streams)"
STORAGE_ENTRIES = 20_000
"""Entries per bytes-per-entry figure other than the 1M-entry one."""

WHERE_TIME_GOES = (
    "Where the time goes (py-spy and CPU time per entry; not re-measured by each run). "
    "Since 16fe409 every entry is stored with its protobuf wire form (core/entry_wire.py, "
    "migration 0009) and a batch is one string_agg of those bytes in PostgreSQL: the "
    "server no longer decodes rows or encodes entries, and its CPU per entry fell from "
    "5.0-5.6 us (the quiet run before it, 2026-12-03 10:11 UTC: 133k and 154k entries/s) "
    "to 1.4-2.3 us. What is left is per message: the pool, psycopg's round trip, one copy "
    "of the batch and gRPC writing it, ~0.3 ms on this host, the same again in this "
    "client (its CPU row above). With 64 KiB batches the read is then paced by "
    "PostgreSQL: a batch query takes ~0.7 ms for ~290 entries (index range scan of the "
    "rows, and the aggregate), and the next batch can't be asked for before the previous "
    "one's next_seq is known, so one read runs ahead of the write, not more. With 1 MiB "
    "batches the per-message costs spread over ~4,500 entries. Tried and left out: an "
    "ORDER BY inside string_agg and a running sum of sizes to fit the batch (2.8x slower "
    "per 1 MiB batch than the offset bound and the subquery's own order). Follow latency "
    "is a chain of process wake-ups: client -> B -> PostgreSQL -> A (the wakeup) -> "
    "PostgreSQL (the entries) -> A -> client. Measured inside the servers before 3d40208 "
    "(a probe): B's commit at 3.0 ms after t0, A heard the wakeup at 4.3 ms (B's events "
    "sender sent it after the commit, one more round trip), its read returned at 5.7 ms, "
    "the client had it at 6.5 ms. Since 3d40208 the append's own statement sends the "
    "NOTIFY, so A hears at the commit: six probe runs 4.6-5.5 ms p50 against 5.7-6.5 "
    "before. Through Redis the wakeup is published after the commit (Redis is not in the "
    "transaction). Since 0a2a770 both of its Redis hops skip redis-py "
    "(storage/redis/wire.py): B writes the PUBLISH in notify's own step, and A's "
    "subscription wakes the follower in the step that reads the message. Probe inside the "
    "servers then, p50 after t0: B's handler 1.1 ms, its commit 2.5-2.7, PUBLISH written "
    "2.6-2.8 (was 3.3-3.4, from a sender task), A heard 2.8-3.1 (was 3.9-4.0), A's read "
    "returned 3.8-4.1, the client had it at 4.4-4.6 (was 5.8-6.0); PostgreSQL NOTIFY in "
    "the same runs 4.3-5.0. Until this run the two channels were measured on different "
    "pairs, the NOTIFY one on the pair that had just loaded and read the transcript; with "
    "the order swapped, the channels swapped places, ~1 ms apart, so both now run on "
    "fresh pairs, alternated. The spread between runs on this host is about +-1 ms at "
    "p50. Storage (issue 22, migration 0021): from 0009 each row held its content twice, "
    "as text and inside its wire form; since 0021 the wire form is kept as the bytes "
    "around the content (wire_head, wire_tail) and the batch query joins head, content "
    "and tail. Before and after, one run each on main's code and on 0021's, minutes apart "
    "on the same loaded host (load average 13-15 on 2 cores, so absolute rates are low; "
    "compare ratios): bytes per stored entry, PostgreSQL 1M benchmark entries 1,220 -> "
    "972 (payload 199), PostgreSQL 20k chat-like 2,854 -> 2,244 (payload 953), SQLite 20k "
    "benchmark 716 -> 519, SQLite 20k chat-like 2,759 -> 1,587; ReadTranscript vs "
    "psycopg, 64 KiB batches 52,425 vs 43,620 entries/s (1.20x) -> 93,701 vs 66,823 "
    "(1.40x), 1 MiB batches 59,353 vs 46,310 (1.28x) -> 98,805 vs 61,281 (1.61x); server "
    "CPU per entry 2.45 -> 2.05 us (64 KiB) and 1.36 -> 1.02 us (1 MiB). The largest "
    "structure left beside the content is the full-text index (a stored tsvector of ~1.8x "
    "the content of short prose, and its GIN index); content is compressed with lz4 on "
    "PostgreSQL, which touches only rows over ~2 KB (TOAST)."
)


# --- processes ------------------------------------------------------------------------


@dataclass
class Replicas:
    """Two servers on one PostgreSQL database."""

    a: StrataProcess
    b: StrataProcess


@contextlib.contextmanager
def replicas(url: str, workdir: Path, **env: str) -> Iterator[Replicas]:
    """Servers A and B on `url`, stopped by PID however the block ends."""
    a = StrataProcess(url, workdir / "a", **env)
    b = StrataProcess(url, workdir / "b", **env)
    try:
        a.start(timeout=60)
        b.start(timeout=60)
        yield Replicas(a, b)
    finally:
        for server in (a, b):
            server.stop()


def own_cpu_seconds() -> float:
    """User + system CPU time this (the client) process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_kib(pid: int) -> int:
    """The process's resident set size now, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class PeakRss:
    """Samples a process's RSS in a thread while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = rss_kib(pid)
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_kib(self.pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        """Peak minus the RSS before, in MB."""
        return (self.peak - self.before) * 1024 / 1e6


# --- load and read --------------------------------------------------------------------


async def load(
    stub: transcripts_pb2_grpc.TranscriptServiceStub,
    transcript_id: str,
    entries: int = ENTRIES,
    call_timeout: float = 120,
) -> float:
    """Append `entries` entries, PER_APPEND per call, WRITERS calls in flight;
    seconds (bench/archive.py loads its transcript the same way)."""
    chunks = list(range(0, entries, PER_APPEND))
    started = time.perf_counter()

    async def writer(w: int) -> None:
        for first in chunks[w::WRITERS]:
            await stub.AppendEntries(
                transcripts_pb2.AppendEntriesRequest(
                    namespace=NAMESPACE,
                    id=transcript_id,
                    entries=[
                        transcripts_pb2.Entry(role="assistant", content=content(i))
                        for i in range(first, min(first + PER_APPEND, entries))
                    ],
                ),
                timeout=call_timeout,
            )

    await asyncio.gather(*(writer(w) for w in range(WRITERS)))
    return time.perf_counter() - started


@dataclass(frozen=True)
class ReadResult:
    """One full read: entries, bytes of role + content, seconds."""

    entries: int
    bytes: int
    seconds: float

    @property
    def rate(self) -> str:
        """entries/s and MB/s."""
        return (
            f"{self.entries / self.seconds:,.0f} entries/s, "
            f"{self.bytes / self.seconds / 1e6:.1f} MB/s"
        )


async def strata_read(
    stub: transcripts_pb2_grpc.TranscriptServiceStub, transcript_id: str, batch_bytes: int
) -> ReadResult:
    """ReadTranscript of the whole transcript; checks every seq comes once, in order."""
    expected, size = 1, 0
    started = time.perf_counter()
    call = stub.ReadTranscript(
        transcripts_pb2.ReadTranscriptRequest(
            namespace=NAMESPACE, id=transcript_id, max_batch_bytes=batch_bytes
        )
    )
    async for message in call:
        for entry in message.batch.entries:
            if entry.seq != expected:
                raise RuntimeError(f"got seq {entry.seq}, expected {expected}")
            expected += 1
            size += len(entry.role) + len(entry.content)
    seconds = time.perf_counter() - started
    if expected != ENTRIES + 1:
        raise RuntimeError(f"read {expected - 1} of {ENTRIES} entries")
    return ReadResult(ENTRIES, size, seconds)


async def psycopg_read(url: str, transcript_id: str) -> ReadResult:
    """The same rows, in seq order, through a server-side cursor."""
    count, size = 0, 0
    started = time.perf_counter()
    async with await psycopg.AsyncConnection.connect(url) as conn, conn.transaction():
        cursor = conn.cursor("bench_read", binary=True)
        cursor.itersize = 2000
        await cursor.execute(
            "SELECT seq, role, content, data, create_time FROM transcript_entries "
            "WHERE namespace = %s AND transcript_id = %s ORDER BY seq",
            (NAMESPACE, transcript_id),
        )
        async for row in cursor:
            count += 1
            size += len(row[1]) + len(row[2])
        await cursor.close()
    seconds = time.perf_counter() - started
    if count != ENTRIES:
        raise RuntimeError(f"psycopg read {count} of {ENTRIES} rows")
    return ReadResult(count, size, seconds)


# --- follow latency -------------------------------------------------------------------


async def follow_latency(pair: Replicas) -> tuple[list[float], list[float]]:
    """Append on B → delivery to a follower on A, one entry at a time, warm-up ones
    left out: the seconds from the AppendEntries call, and from the entry's
    create_time (B stamps it just before the append's statement runs, so before its
    commit: an upper bound on commit → delivery, the figure the issue names; both
    ends read the wall clock of this one machine)."""
    async with (
        grpc.aio.insecure_channel(pair.a.target) as reading,
        grpc.aio.insecure_channel(pair.b.target) as writing,
    ):
        reader = transcripts_pb2_grpc.TranscriptServiceStub(reading)
        writer = transcripts_pb2_grpc.TranscriptServiceStub(writing)
        created = await writer.CreateTranscript(
            transcripts_pb2.CreateTranscriptRequest(namespace=NAMESPACE)
        )
        call = reader.ReadTranscript(
            transcripts_pb2.ReadTranscriptRequest(namespace=NAMESPACE, id=created.id, follow=True)
        )
        first = await call.read()
        if first.WhichOneof("event") != "up_to_date":
            raise RuntimeError(f"expected up_to_date first, got {first}")
        from_call: list[float] = []
        from_stamp: list[float] = []

        async def delivered() -> tuple[transcripts_pb2.ReadTranscriptResponse, float, float]:
            while True:
                message = await asyncio.wait_for(call.read(), 10)
                if message.WhichOneof("event") == "batch":
                    return message, time.perf_counter(), time.time()

        try:
            for i in range(LATENCY_APPENDS + LATENCY_WARMUP):
                # The follower waits in its read before the append, as the Redis
                # Streams consumer waits in XREAD BLOCK: its delivery is timed when it
                # lands, not after the append's own answer.
                waiting = asyncio.create_task(delivered())
                await asyncio.sleep(LATENCY_GAP)
                sent = time.perf_counter()
                await writer.AppendEntries(
                    transcripts_pb2.AppendEntriesRequest(
                        namespace=NAMESPACE,
                        id=created.id,
                        entries=[transcripts_pb2.Entry(role="user", content=f"message {i}")],
                    )
                )
                message, received, received_wall = await waiting
                entries = message.batch.entries
                if [e.seq for e in entries] != [i + 1]:
                    raise RuntimeError(f"follower got {message.batch}, expected seq {i + 1}")
                if i >= LATENCY_WARMUP:
                    from_call.append(received - sent)
                    stamp = entries[0].create_time
                    from_stamp.append(received_wall - (stamp.seconds + stamp.nanos / 1e9))
                # Drain the up_to_date that follows, so the next batch is next.
                tail = await asyncio.wait_for(call.read(), 10)
                if tail.WhichOneof("event") != "up_to_date":
                    raise RuntimeError(f"expected up_to_date after the batch, got {tail}")
        finally:
            call.cancel()
    return from_call, from_stamp


async def redis_streams_latency(url: str) -> Stats:
    """XADD by a producer → XREAD BLOCK returning in a consumer already waiting, each
    on its own connection, one entry at a time."""
    producer = aioredis.Redis.from_url(url)
    consumer = aioredis.Redis.from_url(url)
    stream = "bench:transcript"
    durations: list[float] = []
    try:
        await producer.delete(stream)
        last = "0-0"
        for i in range(LATENCY_APPENDS + LATENCY_WARMUP):
            waiting = asyncio.create_task(consumer.xread({stream: last}, count=100, block=10_000))
            await asyncio.sleep(LATENCY_GAP)  # the XREAD is parked on the server by now
            sent = time.perf_counter()
            await producer.xadd(stream, {"role": "user", "content": f"message {i}"})
            result = await waiting
            received = time.perf_counter()
            entries = result[0][1]
            if len(entries) != 1:
                raise RuntimeError(f"XREAD returned {len(entries)} entries")
            last = entries[-1][0]
            if i >= LATENCY_WARMUP:
                durations.append(received - sent)
    finally:
        await producer.aclose()
        await consumer.aclose()
    return latency_stats(durations)


# --- the run --------------------------------------------------------------------------


def progress(row: Row) -> None:
    """One line as each figure is measured."""
    print(f"  {row.figure}: {row.strata} vs {row.baseline or '-'}", flush=True)


def verdict(ok: bool) -> str:
    return "pass" if ok else "miss"


async def read_rows(pg_url: str, server: StrataProcess) -> list[Row]:
    rows: list[Row] = []
    assert server.process is not None
    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = transcripts_pb2_grpc.TranscriptServiceStub(channel)
        created = await stub.CreateTranscript(
            transcripts_pb2.CreateTranscriptRequest(namespace=NAMESPACE, title="bench")
        )
        seconds = await load(stub, created.id)
        rows.append(
            Row(
                f"Load {ENTRIES:,} entries of ~{ENTRY_BYTES} B (AppendEntries of "
                f"{PER_APPEND}, {WRITERS} in flight)",
                f"{ENTRIES / seconds:,.0f} entries/s ({seconds:.0f} s)",
            )
        )
        progress(rows[-1])
        stored, count = postgres_entry_bytes(pg_url)  # VACUUMs (ANALYZE) the table
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
            cursor = await conn.execute(
                "SELECT sum(octet_length(role) + octet_length(content)) FROM transcript_entries"
            )
            payload = await cursor.fetchone()
        assert payload is not None
        rows.append(storage_row("PostgreSQL", f"{count:,} benchmark", stored, count, payload[0]))
        progress(rows[-1])
        # Warm-up, untimed: plans, caches, the server's code paths.
        await strata_read(stub, created.id, 0)
        await psycopg_read(pg_url, created.id)

        for batch_bytes, label in ((0, "64 KiB batches"), (1024 * 1024, "1 MiB batches")):
            server_cpu, client_cpu = cpu_seconds(server.process.pid), own_cpu_seconds()
            with PeakRss(server.process.pid) as rss:
                strata = await strata_read(stub, created.id, batch_bytes)
            server_cpu = cpu_seconds(server.process.pid) - server_cpu
            client_cpu = own_cpu_seconds() - client_cpu
            direct = await psycopg_read(pg_url, created.id)
            ratio = strata.seconds and direct.seconds / strata.seconds
            rows.append(
                Row(
                    f"ReadTranscript of {ENTRIES:,} entries, {label}",
                    strata.rate,
                    direct.rate,
                    f"{ratio:.2f}x",
                    "≥ 200k entries/s",
                    verdict(strata.entries / strata.seconds >= 200_000),
                )
            )
            progress(rows[-1])
            rows.append(
                Row(
                    f"CPU per entry during that read ({label}): server / this client",
                    f"{server_cpu / ENTRIES * 1e6:.2f} / {client_cpu / ENTRIES * 1e6:.2f} us",
                )
            )
            progress(rows[-1])
            rows.append(
                Row(
                    f"Server RSS growth during that read ({label})",
                    f"{rss.growth_mb:.1f} MB (from {rss.before / 1024:.0f} MiB)",
                    target="< 50 MB",
                    result=verdict(rss.growth_mb < 50),
                )
            )
            progress(rows[-1])
    return rows


def storage_row(engine: str, what: str, stored: int, count: int, payload: int) -> Row:
    """Bytes per stored entry (bench/_storage_bytes.py says what is counted)."""
    return Row(
        f"Bytes per stored entry, {engine}, {what} entries (payload: role + content)",
        f"{stored / count:,.0f} B ({stored / payload:.2f}x the payload)",
        f"payload {payload / count:,.0f} B",
    )


def storage_rows(pg: PgServer) -> list[Row]:
    """Bytes per stored entry of chat-like text on PostgreSQL, and of both kinds on
    SQLite (the 1M-entry figure on PostgreSQL is read_rows')."""
    rows = []
    for engine, name, text in (
        ("PostgreSQL", "chat-like", chat_text),
        ("SQLite", "benchmark", content),
        ("SQLite", "chat-like", chat_text),
    ):
        workdir = pg.base / f"bytes-{engine}-{name}".lower()
        if engine == "PostgreSQL":
            url = pg.create_database(f"bytes_{name.replace('-', '_')}")
            cost = measure_postgres(url, workdir, STORAGE_ENTRIES, text)
        else:
            cost = measure_sqlite(workdir, STORAGE_ENTRIES, text)
        what = f"{STORAGE_ENTRIES:,} {name}"
        rows.append(storage_row(engine, what, cost.stored_bytes, cost.entries, cost.payload_bytes))
        progress(rows[-1])
    return rows


def latency_rows(channel: str, call: Stats, stamp: Stats, direct: Stats | None) -> list[Row]:
    """p50 and p99 from the call, then from the entry's create_time (see follow_latency)."""
    called, stamped = "AppendEntries called on B", "entry stamped on B (before commit)"
    rows = []
    for start, name, value, base, limit in (
        (called, "p50", call.p50_ms, direct.p50_ms if direct else None, 5.0),
        (called, "p99", call.p99_ms, direct.p99_ms if direct else None, 20.0),
        (stamped, "p50", stamp.p50_ms, None, 5.0),
        (stamped, "p99", stamp.p99_ms, None, 20.0),
    ):
        rows.append(
            Row(
                f"{start} → follower on A, {channel}, {name}",
                f"{value:.2f} ms",
                f"{base:.2f} ms (XADD → XREAD BLOCK)" if base is not None else "",
                f"{value / base:.1f}x the time" if base else "",
                f"< {limit:g} ms",
                verdict(value < limit),
            )
        )
        progress(rows[-1])
    return rows


def main() -> None:
    info = machine_info()
    began = time.perf_counter()
    WORK.mkdir(parents=True, exist_ok=True)
    pg = PgServer(WORK)
    redis_server = RedisServer(WORK / "redis")
    rows: list[Row] = []
    try:
        pg.start()
        redis_server.start()
        url = pg.create_database("bench_transcripts")
        with replicas(url, pg.base / "strata") as pair:
            rows += asyncio.run(read_rows(url, pair.a))
        rows += storage_rows(pg)
        # Each channel on pairs started afresh, the two alternated: measured on the pair
        # that had just loaded and read the transcript, a channel came out ~1 ms faster
        # than on a fresh pair, whichever channel it was (runs in both orders).
        streams = asyncio.run(redis_streams_latency(redis_server.url))
        channels = {"postgres": {}, "redis": {"STRATA_REDIS_URL": redis_server.url}}
        calls: dict[str, list[float]] = {channel: [] for channel in channels}
        stamps: dict[str, list[float]] = {channel: [] for channel in channels}
        for run in range(LATENCY_ROUNDS):
            for channel, env in channels.items():
                with replicas(url, pg.base / f"strata-{channel}-{run}", **env) as pair:
                    from_call, from_stamp = asyncio.run(follow_latency(pair))
                calls[channel] += from_call
                stamps[channel] += from_stamp
        for channel, name, direct in (
            ("postgres", "PostgreSQL LISTEN/NOTIFY", None),
            ("redis", "Redis pub/sub", streams),
        ):
            rows += latency_rows(
                name, latency_stats(calls[channel]), latency_stats(stamps[channel]), direct
            )
    finally:
        redis_server.stop()
        pg.cleanup()
    took = time.perf_counter() - began
    print(text_table(rows, BASELINE))
    print(f"whole run {took:.0f} s")
    method = (
        f"One throwaway PostgreSQL 15 (fsync off) and one redis-server; two `strata serve` "
        f"processes (A and B) on one database. Load: {ENTRIES:,} entries of about "
        f"{ENTRY_BYTES} bytes (role `assistant`, English-like words, no data) into one "
        f"transcript through A, AppendEntries of {PER_APPEND} entries with {WRITERS} in "
        f"flight, then `VACUUM (ANALYZE)`. Read: after one untimed read each, "
        f"ReadTranscript from seq 1 without follow over one grpc.aio channel, every seq "
        f"checked, vs a psycopg server-side cursor (itersize 2000, binary) over "
        f"`transcript_entries` in seq order, both in this one asyncio process; MB/s count "
        f"role + content bytes. CPU: user + system time of server A (/proc) and of this "
        f"client process over the Strata read, per entry; the client checks every seq and "
        f"sums role + content lengths, entry by entry. RSS: A's VmRSS sampled every 20 ms "
        f"during the Strata read, peak minus before. Latency: a follower on A (follow=true), "
        f"{LATENCY_APPENDS} single-entry appends through B one at a time, "
        f"{LATENCY_GAP * 1000:.0f} ms apart, after {LATENCY_WARMUP} warm-up ones, on a "
        f"pair of servers started for it; {LATENCY_ROUNDS} such runs per channel, the "
        f"channels alternated, their samples pooled. Two starts: the entry's create_time, "
        f"which B stamps just before the append's statement runs (so before its commit: an "
        f"upper bound on commit → delivery, the figure issue 4 names; wall clock of this "
        f"one machine at both ends), and the call, t0 "
        f"before AppendEntries is called (so its commit is inside the figure), t1 when "
        f"the batch reaches the follower, whose read was already waiting (as the XREAD "
        f"below), not after the append's answer. Redis Streams: XADD on one connection, an "
        f"XREAD BLOCK already parked on another, same spacing. Bytes per stored entry: "
        f"bench/_storage_bytes.py (PostgreSQL: pg_total_relation_size of "
        f"transcript_entries after VACUUM, so heap, TOAST and every index; SQLite: dbstat "
        f"pages of transcript_entries, its indexes and its FTS5 tables), over the 1M "
        f"entries above and over {STORAGE_ENTRIES:,} entries on fresh databases; chat-like "
        f"is prose of ~330-660 B an entry, every tenth 4-6 KB. Whole run {took:.0f} s."
    )
    write_section(
        "transcripts",
        "\n\n".join(
            [machine_markdown(info), markdown_table(rows, BASELINE), method, WHERE_TIME_GOES]
        ),
    )


if __name__ == "__main__":
    main()
