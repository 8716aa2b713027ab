"""What 4,000 idle streams cost a server: its CPU with them open and nothing
happening, against the same server with none, in one run (issue 17, item 10).

One throwaway PostgreSQL 15 and redis-server (the production shape: Redis carries
the wakeups) and one `strata serve`. The streams, over 8 channels from this asyncio
process: 2,000 ReadTranscript follows (one per transcript), 1,500 SubscribeJobs
(150 on each of 10 queues) and 500 WatchRecords (50 on each of 10 collections);
then, measured with them, 500 LeaseJobs long polls (wait 60 s, asked again when one
returns; 50 on each of those queues). Figures: the server's user + system CPU time
(/proc/<pid>/stat) over a window, as a fraction of one core; PostgreSQL's (every
process of the cluster); the database reads the server ran (strata_db_requests);
and an unrelated GetRecord at concurrency 1 after each window, p50 and p99.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import grpc
from _harness import (
    WORK,
    PgServer,
    Row,
    StrataProcess,
    cpu_seconds,
    latency_stats,
    machine_info,
    machine_markdown,
    markdown_table,
    text_table,
)
from _results import write_section
from google.protobuf import duration_pb2, struct_pb2

from strata.v1 import (
    queue_pb2,
    queue_pb2_grpc,
    records_pb2,
    records_pb2_grpc,
    transcripts_pb2,
    transcripts_pb2_grpc,
)
from tests.support.ports import free_port
from tests.support.redis import RedisServer

FOLLOWS = 2_000
SUBSCRIPTIONS = 1_500
WATCHES = 500
LONG_POLLS = 500
"""Added after the 4,000 streams are measured, and measured with them."""
QUEUES = 10
COLLECTIONS = 10
CHANNELS = 8
WAVE = 500
"""Streams opened at a time: all 4,000 at once can wait past the pool's 5 s on a
busy host (UNAVAILABLE), and opening is not what this measures."""
REFERENCE_WINDOW = 60.0
"""Seconds of the measurement without streams."""
STREAMS_WINDOW = 310.0
"""Seconds of the measurement with the streams: longer than one round of the
transcripts' safety re-check (STRATA_STREAM_RECHECK_SECONDS, 300), so it is in the
average."""
POLLS_WINDOW = 130.0
"""Seconds of the measurement with the long polls too: two rounds of them (60 s)."""
SETTLE = 5.0
"""Seconds between the last stream opening and the measurement."""
GETS = 2_000
"""GetRecord calls timed one at a time after each window."""
TARGET = 0.05
"""Server CPU with the streams open, as a fraction of a core (DESIGN.md targets)."""
WHERE = (
    "Where the time goes (measured while fixing it: 60 s windows with this benchmark's "
    "4,000 streams, opened 200 at a time, on 2 cores shared with other work; not "
    "re-measured by each run). Before (826cf27: 5.1% of a core over 310 s), most of the "
    "cost was the heartbeats, not the database: the same streams cost 5.0% of a core, "
    "and 1.2% with heartbeats turned off (STRATA_TRANSCRIPT_HEARTBEAT_SECONDS 3600), so "
    "the 2,000 follows' 133 heartbeats/s took 3.8% (about 0.29 ms of CPU each, not the "
    "2% estimated before), and the 10 queues' and 10 collections' re-checks (20 reads/s) "
    "most of the rest. Changes since, in the order they were measured: (1) heartbeats "
    "fall due on shared ticks (core/idle.py heartbeat_at: 1/16 of the interval, 1 s at "
    "most, so at most a tick late), so a tick's heartbeats are written in one pass of "
    "the event loop. gRPC's cost is mostly per pass (the write through its core, the "
    "completion handed back from its poller thread, the thread wake-ups), so this about "
    "halves them: 3.1% in all (ticks of 1 s: 3.1-3.6%, of 0.25 s: 3.4%). (2) A queue or "
    "a watched collection is re-checked only while time alone may change its answer: a "
    "queue holding ready or leased jobs (QueueStore.availability), a collection with "
    "committed changes PostgreSQL cannot hand out yet (RecordStore.changes_pending); "
    "otherwise it rests until a write on it, whose wakeup brings a probe within the "
    "interval (storage/event_rechecks.py): 20 reads/s to none here. (3) The "
    "transcripts' safety re-checks fall due together (probe times on multiples of the "
    "interval) and share one query (TranscriptStore.transcript_states through "
    "core.idle.Batched): 2,000 reads every 300 s become one. With (1) to (3): 2.3%. "
    "(4) Every wait ending in the same millisecond shares one loop timer instead of an "
    "asyncio.timeout each (storage/memory/events.py): 1.8%, 0.2 reads/s (the server's "
    "own); the same replacement without the ticks changed nothing (5.3%). What is left "
    "is the heartbeats' gRPC writes and the wake-ups around them: perf puts about 40% "
    "of the server's samples in the kernel, most in context switches, and 5% in "
    "Python's garbage collector. Left out: one burst per heartbeat interval for all "
    "streams (the loop would stall for the whole burst, showing in an unrelated call's "
    "p99). The long polls cost about what they did (8 LeaseJobs/s, two lease "
    "statements each); the queue they wait on now rests like the others."
)


def cluster_cpu_seconds(postmaster: int) -> float:
    """User + system CPU time of a PostgreSQL cluster: the postmaster and its
    children (backends, background workers) alive now."""
    total = cpu_seconds(postmaster)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                total += cpu_seconds(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return total


def db_requests(metrics_port: int) -> float:
    """The server's strata_db_requests."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith("strata_db_requests "):
                return float(line.split()[1])
    return 0.0


class Window:
    """Server and PostgreSQL CPU, and the server's database reads, over a window."""

    def __init__(self, server_pid: int, postmaster: int, metrics_port: int) -> None:
        self._pids = (server_pid, postmaster)
        self._metrics = metrics_port

    async def measure(self, seconds: float) -> tuple[float, float, float]:
        """(server CPU, PostgreSQL CPU) as fractions of a core, database reads/s, over
        the next `seconds`."""
        server, postmaster = self._pids
        reads0 = db_requests(self._metrics)
        start = time.monotonic()
        s0, p0 = cpu_seconds(server), cluster_cpu_seconds(postmaster)
        await asyncio.sleep(seconds)
        s1, p1 = cpu_seconds(server), cluster_cpu_seconds(postmaster)
        elapsed = time.monotonic() - start
        reads = db_requests(self._metrics) - reads0
        return (s1 - s0) / elapsed, (p1 - p0) / elapsed, reads / elapsed


async def get_record_latency(stub: records_pb2_grpc.RecordServiceStub) -> tuple[float, float]:
    """p50 and p99 in ms of GETS GetRecord calls one at a time."""
    request = records_pb2.GetRecordRequest(collection="unrelated", id="r")
    durations = []
    for _ in range(GETS):
        began = time.perf_counter()
        await stub.GetRecord(request)
        durations.append(time.perf_counter() - began)
    stats = latency_stats(durations)
    return stats.p50_ms, stats.p99_ms


async def open_streams(channels: list[grpc.aio.Channel], prefix: str) -> list[asyncio.Task[None]]:
    """Open every stream, WAVE at a time; returns the tasks that hold them, once each
    follow and watch has said it waits (and each subscription has been sent)."""
    waiting = asyncio.Semaphore(0)
    tasks: list[asyncio.Task[None]] = []

    def channel(i: int) -> grpc.aio.Channel:
        return channels[i % len(channels)]

    async def drain(call: grpc.aio.UnaryStreamCall) -> None:  # type: ignore[type-arg]
        async for _ in call:
            waiting.release()

    def follow(i: int) -> grpc.aio.UnaryStreamCall:  # type: ignore[type-arg]
        stub = transcripts_pb2_grpc.TranscriptServiceStub(channel(i))
        return stub.ReadTranscript(
            transcripts_pb2.ReadTranscriptRequest(id=f"{prefix}-t{i}", follow=True)
        )

    def subscribe(i: int) -> grpc.aio.UnaryStreamCall:  # type: ignore[type-arg]
        queues = queue_pb2_grpc.QueueServiceStub(channel(i))
        return queues.SubscribeJobs(
            queue_pb2.SubscribeJobsRequest(queue=f"{prefix}-q{i % QUEUES}", max_in_flight=1)
        )

    def watch(i: int) -> grpc.aio.UnaryStreamCall:  # type: ignore[type-arg]
        records = records_pb2_grpc.RecordServiceStub(channel(i))
        return records.WatchRecords(
            records_pb2.WatchRecordsRequest(collection=f"{prefix}-c{i % COLLECTIONS}")
        )

    # A follow says up_to_date and a watch started; a subscription says nothing.
    for count, call, answers in (
        (FOLLOWS, follow, True),
        (SUBSCRIPTIONS, subscribe, False),
        (WATCHES, watch, True),
    ):
        for start in range(0, count, WAVE):
            wave = range(start, min(count, start + WAVE))
            tasks += [asyncio.create_task(drain(call(i))) for i in wave]
            if answers:
                for _ in wave:
                    await asyncio.wait_for(waiting.acquire(), 120)
            else:
                await asyncio.sleep(0.5)
    await asyncio.sleep(1)
    failed = [task for task in tasks if task.done()]
    if failed:
        raise RuntimeError(f"{len(failed)} streams failed: {failed[0].exception()}")
    return tasks


def open_long_polls(channels: list[grpc.aio.Channel], prefix: str) -> list[asyncio.Task[None]]:
    """LONG_POLLS LeaseJobs long polls of 60 s over the queues, each asked again as
    soon as it returns (empty)."""

    async def long_poll(stub: queue_pb2_grpc.QueueServiceStub, queue: str) -> None:
        request = queue_pb2.LeaseJobsRequest(
            queue=queue, max_jobs=1, wait=duration_pb2.Duration(seconds=60)
        )
        while True:
            await stub.LeaseJobs(request)

    return [
        asyncio.create_task(
            long_poll(
                queue_pb2_grpc.QueueServiceStub(channels[i % len(channels)]),
                f"{prefix}-q{i % QUEUES}",
            )
        )
        for i in range(LONG_POLLS)
    ]


async def run(target: str, window: Window) -> tuple[list[Row], list[str]]:
    channels = [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(CHANNELS)
    ]
    prefix = f"b{uuid.uuid4().hex[:8]}"  # names start with a letter
    records = records_pb2_grpc.RecordServiceStub(channels[0])
    transcripts = transcripts_pb2_grpc.TranscriptServiceStub(channels[0])
    await records.CreateRecord(
        records_pb2.CreateRecordRequest(
            collection="unrelated", record_id="r", data=struct_pb2.Struct()
        )
    )
    for i in range(FOLLOWS):
        await transcripts.CreateTranscript(
            transcripts_pb2.CreateTranscriptRequest(transcript_id=f"{prefix}-t{i}")
        )
    await get_record_latency(records)  # warm-up
    await asyncio.sleep(SETTLE)
    idle_cpu, idle_pg, idle_reads = await window.measure(REFERENCE_WINDOW)
    idle_p50, idle_p99 = await get_record_latency(records)
    opened = time.monotonic()
    tasks = await open_streams(channels, prefix)
    open_seconds = time.monotonic() - opened
    await asyncio.sleep(SETTLE)
    busy_cpu, busy_pg, busy_reads = await window.measure(STREAMS_WINDOW)
    busy_p50, busy_p99 = await get_record_latency(records)
    tasks += open_long_polls(channels, prefix)
    await asyncio.sleep(SETTLE)
    polls_cpu, polls_pg, polls_reads = await window.measure(POLLS_WINDOW)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close()
    streams = FOLLOWS + SUBSCRIPTIONS + WATCHES
    rows = [
        Row(
            f"Server CPU, {streams:,} idle streams open",
            f"{busy_cpu:.1%} of a core",
            f"{idle_cpu:.1%} of a core",
            f"+{busy_cpu - idle_cpu:.1%}",
            "< 5% of a core",
            "pass" if busy_cpu < TARGET else "miss",
        ),
        Row(
            "PostgreSQL CPU (every process of the cluster)",
            f"{busy_pg:.1%} of a core",
            f"{idle_pg:.1%} of a core",
        ),
        Row("Database reads the server ran", f"{busy_reads:.1f}/s", f"{idle_reads:.1f}/s"),
        Row("Unrelated GetRecord c=1 p50", f"{busy_p50:.2f} ms", f"{idle_p50:.2f} ms"),
        Row("Unrelated GetRecord c=1 p99", f"{busy_p99:.2f} ms", f"{idle_p99:.2f} ms"),
        Row(
            f"Server CPU, those streams and {LONG_POLLS} LeaseJobs long polls (60 s, renewed)",
            f"{polls_cpu:.1%} of a core",
            f"{idle_cpu:.1%} of a core",
            f"+{polls_cpu - idle_cpu:.1%}",
        ),
        Row(
            "PostgreSQL CPU, with the long polls",
            f"{polls_pg:.1%} of a core",
            f"{idle_pg:.1%} of a core",
        ),
        Row("Database reads, with the long polls", f"{polls_reads:.1f}/s", f"{idle_reads:.1f}/s"),
    ]
    notes = [f"The {streams:,} streams took {open_seconds:.1f} s to open."]
    return rows, notes


def main() -> None:
    info = machine_info()
    WORK.mkdir(parents=True, exist_ok=True)
    redis = RedisServer(WORK / "redis")
    redis.start()
    pg = PgServer(WORK)
    try:
        pg.start()
        url = pg.create_database("bench_idle_streams")
        postmaster = int((pg.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        metrics_port = free_port()
        server = StrataProcess(
            url,
            pg.base / "strata",
            STRATA_REDIS_URL=redis.url,
            STRATA_METRICS_LISTEN=f"127.0.0.1:{metrics_port}",
        )
        try:
            server.start(timeout=60)
            assert server.process is not None
            window = Window(server.process.pid, postmaster, metrics_port)
            rows, notes = asyncio.run(run(server.target, window))
        finally:
            server.stop()
    finally:
        pg.cleanup()
        redis.stop()
    baseline = "same server, no streams"
    print(text_table(rows, baseline))
    for note in notes:
        print(note)
    method = (
        "One throwaway PostgreSQL 15 (fsync off) and one redis-server; one `strata serve` "
        "on them with its defaults (Redis carries the wakeups, STRATA_STREAM_RECHECK_SECONDS "
        f"300). From one asyncio process over {CHANNELS} grpc.aio channels: {FOLLOWS:,} "
        f"ReadTranscript follows, one per transcript; {SUBSCRIPTIONS:,} SubscribeJobs "
        f"(max_in_flight 1) over {QUEUES} queues; {WATCHES} WatchRecords over {COLLECTIONS} "
        f"collections, opened {WAVE} at a time; then, measured with them in a third window, "
        f"{LONG_POLLS} LeaseJobs "
        "long polls (wait 60 s, asked again when one returns) over the same queues. "
        "Nothing is written while they are open. "
        f"Windows: {REFERENCE_WINDOW:.0f} s without streams, {STREAMS_WINDOW:.0f} s with "
        f"them (one round of the transcripts' safety re-check), {POLLS_WINDOW:.0f} s with "
        f"the long polls too (two of their rounds), each starting {SETTLE:.0f} s after "
        "what it measures was in place; CPU is user + system time from "
        "/proc/<pid>/stat over the window's wall time, the server's process and every "
        "process of the PostgreSQL cluster; database reads from the server's "
        f"strata_db_requests. Then {GETS:,} GetRecord calls one at a time, on a record "
        "outside every stream's topic."
    )
    write_section(
        "idle streams",
        "\n\n".join(
            [machine_markdown(info), markdown_table(rows, baseline), method, *notes, WHERE]
        ),
    )


if __name__ == "__main__":
    main()
