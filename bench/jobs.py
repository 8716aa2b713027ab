"""Queue benchmark: Strata's QueueService against procrastinate 3.10 on the same PostgreSQL.

Why procrastinate: it is a mature PostgreSQL job queue for asyncio Python, so "jobs
per second next to procrastinate" says what the gRPC hop and Strata's design cost or
save against a library that talks to the database itself. Both run in this one
process, on one asyncio loop, against one throwaway PostgreSQL 15 server (fsync
off): Strata's server on one database of it, procrastinate on another.

Figures (target from /work/shared/DESIGN.md and the queue issue):
  1. Enqueue ENQUEUE_JOBS no-op jobs in batches of BATCH, one batch in flight:
     Strata BatchEnqueue over grpc.aio vs procrastinate `batch_defer_async`.
  2. Drain DRAIN_JOBS of them with K workers, K in WORKERS: Strata K asyncio tasks
     each looping LeaseJobs(max_jobs=10, lease 30 s) and acking what it got in one
     AckJobs call (how a Strata worker batch-works; at K=SINGLE_ACKS_AT also with one
     AckJob per job), vs procrastinate's own worker,
     `run_worker_async(concurrency=K, wait=False)` on a no-op task. Target ≥ 2x.
     Also Strata with max_jobs=1 at K=1: the cost of one job alone.
  3. Enqueue → delivery latency to a consumer already waiting in a SubscribeJobs
     stream (target p50 < 5 ms), and in a long-polling LeaseJobs(wait=5 s): t0 just
     before Enqueue is called, t1 when the job reaches the consumer; LATENCY_JOBS
     jobs one at a time.

The enqueued jobs are the drained jobs: ENQUEUE_JOBS go into QUEUES queues of
DRAIN_JOBS each, filled in queue order, and each drain measurement takes one queue.
Queue by queue matters for procrastinate: its fetch walks one index of every 'todo'
job ordered by id and filters the queue, so todo jobs of another queue with smaller
ids would be walked on every fetch; drained in id order, none ever are (the queues
left undrained hold the largest ids).

Run with `make bench` (or `.venv/bin/python bench/jobs.py`); prints a table and
rewrites the `## queue` section of bench/RESULTS.md. Nothing here asserts speed.
With BENCH_PYSPY=<file.svg> set, py-spy records the Strata server for the whole run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import grpc
import procrastinate
import psycopg
from _harness import (
    Row,
    Stats,
    latency_stats,
    machine_info,
    machine_markdown,
    markdown_table,
    strata_stack,
    text_table,
)
from _results import write_section
from google.protobuf import duration_pb2, struct_pb2

from strata.v1 import queue_pb2, queue_pb2_grpc

NAMESPACE = "bench"
ENQUEUE_JOBS, BATCH = 100_000, 1000
QUEUES = 20
DRAIN_JOBS = ENQUEUE_JOBS // QUEUES
"""5k jobs per drain measurement, not 100k (nor 20k): on 2 cores both sides drain
a few hundred jobs/s, and the whole run has to stay near 4 minutes."""
WORKERS = (1, 8, 32)
LEASE_BATCH, LEASE_SECONDS = 10, 30
WARMUP_JOBS = 2 * BATCH
LATENCY_JOBS, LATENCY_WAIT_SECONDS = 200, 5
POOL_MAX = 32
"""Both sides get the same PostgreSQL connection pool: Strata's server pool
(STRATA_DB_POOL_MAX) and procrastinate's psycopg pool (max_size)."""

LEASE = duration_pb2.Duration(seconds=LEASE_SECONDS)

WHERE_TIME_GOES = (
    "Where the time goes (py-spy on the server at commit 734148d, before leases and "
    "acks became one statement each; not re-measured by each run): the drain is bound "
    "by the one `strata serve` process, and about half of its CPU is the grpc.aio "
    "transport, paid per RPC. With one AckJob per job every job costs an RPC and a "
    "statement of its own; AckJobs completes a whole lease batch in one RPC and one "
    "statement (the ids and tokens unnested, rows locked in id order), so a worker "
    "that leases 10 at a time makes 2 RPCs per 10 jobs. procrastinate makes 2 "
    "autocommit statements per job and no RPC, which is why Strata with max_jobs=1 "
    "(2 RPCs and 2 statements per job) is slower than it at K=1. The enqueue→delivery "
    "latency is the Enqueue RPC (insert + audit) plus the woken consumer's lease "
    "statement."
)
SINGLE_ACKS_AT = 8
"""The K at which the drain also runs with one AckJob per job, for comparison."""
T = TypeVar("T")


def payload(i: int) -> struct_pb2.Struct:
    """The job's payload: as small as procrastinate's task kwargs {"n": i}."""
    message = struct_pb2.Struct()
    message.update({"n": i})
    return message


def queue_name(index: int) -> str:
    return f"q{index}"


# --- Strata ---------------------------------------------------------------------------


def progress(row: Row) -> None:
    """One line as each figure is measured, so a long run shows where it is."""
    print(f"  {row.figure}: {row.strata} vs {row.baseline or '-'}", flush=True)


async def strata_enqueue(
    stub: queue_pb2_grpc.QueueServiceStub, queue: str, start: int, count: int
) -> None:
    """BatchEnqueue `count` jobs into `queue`, BATCH per call, one call in flight."""
    for first in range(start, start + count, BATCH):
        response = await stub.BatchEnqueue(
            queue_pb2.BatchEnqueueRequest(
                namespace=NAMESPACE,
                jobs=[
                    queue_pb2.EnqueueRequest(queue=queue, payload=payload(i))
                    for i in range(first, min(first + BATCH, start + count))
                ],
            )
        )
        if len(response.jobs) != min(BATCH, start + count - first):
            raise RuntimeError("BatchEnqueue returned the wrong number of jobs")


async def strata_drain(
    stub: queue_pb2_grpc.QueueServiceStub,
    queue: str,
    workers: int,
    max_jobs: int,
    *,
    batch_ack: bool = True,
) -> int:
    """`workers` tasks each lease up to `max_jobs` at a time (no wait), ack them
    (one AckJobs call, or with `batch_ack=False` one AckJob per job, concurrently),
    and stop at the first empty lease; returns the jobs acked."""
    done = 0

    async def ack(job: queue_pb2.Job) -> None:
        await stub.AckJob(
            queue_pb2.AckJobRequest(namespace=NAMESPACE, id=job.id, lease_token=job.lease_token)
        )

    async def ack_all(jobs: Sequence[queue_pb2.Job]) -> None:
        if not batch_ack:
            await asyncio.gather(*(ack(job) for job in jobs))
            return
        response = await stub.AckJobs(
            queue_pb2.AckJobsRequest(
                namespace=NAMESPACE,
                acks=[queue_pb2.JobAck(id=job.id, lease_token=job.lease_token) for job in jobs],
            )
        )
        failed = [result.error_message for result in response.results if result.error_code]
        if failed:
            raise RuntimeError(f"acks failed: {failed[:3]}")

    async def worker() -> None:
        nonlocal done
        while True:
            leased = await stub.LeaseJobs(
                queue_pb2.LeaseJobsRequest(
                    namespace=NAMESPACE, queue=queue, max_jobs=max_jobs, lease_duration=LEASE
                )
            )
            if not leased.jobs:
                return
            await ack_all(leased.jobs)
            done += len(leased.jobs)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return done


async def strata_latency(target: str, subscribe: bool) -> Stats:
    """Enqueue → delivery, one job at a time, to a consumer already waiting: a
    SubscribeJobs(max_in_flight=1) stream, or (subscribe=False) a LeaseJobs long poll
    (wait=...). Producer and consumer have their own channels, as separate processes
    would; the consumer acks each job before the next is enqueued."""
    queue = "subscribed" if subscribe else "polled"
    wait = duration_pb2.Duration(seconds=LATENCY_WAIT_SECONDS)
    arrivals: asyncio.Queue[tuple[str, float]] = asyncio.Queue()
    parked = asyncio.Event()
    async with (
        grpc.aio.insecure_channel(target) as producer_channel,
        grpc.aio.insecure_channel(target) as consumer_channel,
    ):
        producer = queue_pb2_grpc.QueueServiceStub(producer_channel)
        consumer = queue_pb2_grpc.QueueServiceStub(consumer_channel)

        async def settle(job: queue_pb2.Job, received: float) -> None:
            await consumer.AckJob(
                queue_pb2.AckJobRequest(namespace=NAMESPACE, id=job.id, lease_token=job.lease_token)
            )
            await arrivals.put((job.id, received))

        async def poll() -> None:
            while True:
                call = consumer.LeaseJobs(
                    queue_pb2.LeaseJobsRequest(
                        namespace=NAMESPACE,
                        queue=queue,
                        max_jobs=1,
                        lease_duration=LEASE,
                        wait=wait,
                    )
                )
                parked.set()
                leased = await call
                received = time.perf_counter()
                for job in leased.jobs:
                    await settle(job, received)

        async def stream() -> None:
            call = consumer.SubscribeJobs(
                queue_pb2.SubscribeJobsRequest(
                    namespace=NAMESPACE, queue=queue, max_in_flight=1, lease_duration=LEASE
                )
            )
            parked.set()
            async for job in call:
                received = time.perf_counter()
                await settle(job, received)
                parked.set()

        consumer_task = asyncio.create_task(stream() if subscribe else poll())
        durations: list[float] = []
        try:
            for i in range(LATENCY_JOBS + LATENCY_JOBS // 10):  # the first 10% warm up
                await parked.wait()
                # Let the consumer's next wait reach the server (a new LeaseJobs, or
                # the stream's re-check after the ack) before enqueuing.
                await asyncio.sleep(0.01)
                parked.clear()
                sent = time.perf_counter()
                job = await producer.Enqueue(
                    queue_pb2.EnqueueRequest(namespace=NAMESPACE, queue=queue, payload=payload(i))
                )
                job_id, received = await asyncio.wait_for(arrivals.get(), 10)
                if job_id != job.id:
                    raise RuntimeError("the consumer received another job")
                if i >= LATENCY_JOBS // 10:
                    durations.append(received - sent)
        finally:
            consumer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer_task
    return latency_stats(durations)


# --- procrastinate --------------------------------------------------------------------


def procrastinate_app(url: str) -> procrastinate.App:
    """An app with one no-op task, on a pool the size of Strata's."""
    # Its warning about an App in __main__ concerns workers started by the CLI,
    # which import tasks by path; this worker runs in this process.
    logging.getLogger("procrastinate.blueprints").setLevel(logging.ERROR)
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=url, min_size=2, max_size=POOL_MAX)
    )

    @app.task(name="noop")
    async def noop(n: int) -> None:
        return None

    return app


async def procrastinate_enqueue(app: procrastinate.App, queue: str, start: int, count: int) -> None:
    """batch_defer_async `count` jobs into `queue`, BATCH per call, one in flight."""
    deferrer = app.tasks["noop"].configure(queue=queue)
    for first in range(start, start + count, BATCH):
        ids = await deferrer.batch_defer_async(
            *({"n": i} for i in range(first, min(first + BATCH, start + count)))
        )
        if len(ids) != min(BATCH, start + count - first):
            raise RuntimeError("batch_defer_async returned the wrong number of jobs")


async def procrastinate_drain(app: procrastinate.App, url: str, queue: str, workers: int) -> int:
    """procrastinate's worker at concurrency `workers`, until the queue is empty;
    returns the jobs that succeeded."""
    await app.run_worker_async(
        queues=[queue],
        concurrency=workers,
        wait=False,
        listen_notify=False,  # nothing to wait for: wait=False stops when drained
        install_signal_handlers=False,
    )
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM procrastinate_jobs"
            " WHERE queue_name = %s AND status = 'succeeded'",
            (queue,),
        )
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def analyze(url: str, table: str) -> None:
    """VACUUM (ANALYZE) `table` of the database at `url`."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(f"VACUUM (ANALYZE) {table}")


async def procrastinate_database(strata_url: str) -> str:
    """A second database on the PostgreSQL server Strata uses, with procrastinate's
    schema applied; returns its URL."""
    base, _, _ = strata_url.rpartition("/")
    async with await psycopg.AsyncConnection.connect(f"{base}/postgres", autocommit=True) as conn:
        await conn.execute('CREATE DATABASE "bench_procrastinate" TEMPLATE template0')
    url = f"{base}/bench_procrastinate"
    logging.getLogger("procrastinate.blueprints").setLevel(logging.ERROR)
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
    return url


# --- the run --------------------------------------------------------------------------


def rate(jobs: int, seconds: float) -> str:
    return f"{jobs / seconds:,.0f} jobs/s ({seconds:.1f} s)"


def verdict(ok: bool) -> str:
    return "pass" if ok else "miss"


def compared(
    figure: str, jobs: int, strata_seconds: float, base_seconds: float, min_ratio: float | None
) -> Row:
    """A throughput row: both rates, their ratio, and the target if there is one."""
    ratio = base_seconds / strata_seconds
    return Row(
        figure,
        rate(jobs, strata_seconds),
        rate(jobs, base_seconds),
        f"{ratio:.2f}x",
        f"≥ {min_ratio:g}x" if min_ratio is not None else "",
        verdict(ratio >= min_ratio) if min_ratio is not None else "",
    )


async def timed(work: Awaitable[T]) -> tuple[T, float]:
    """`work`'s result and how long it took, in seconds."""
    began = time.perf_counter()
    result = await work
    return result, time.perf_counter() - began


async def run(strata_url: str, target: str) -> list[Row]:
    """Warm up both, enqueue into every queue (alternating sides queue by queue, so
    drift on a shared machine hits both), drain queue by queue, then latency."""
    rows: list[Row] = []
    base_url = await procrastinate_database(strata_url)
    app = procrastinate_app(base_url)
    async with (
        grpc.aio.insecure_channel(target) as channel,
        app.open_async(),
    ):
        stub = queue_pb2_grpc.QueueServiceStub(channel)

        # Warm-up, untimed: connections, prepared statements, code paths; drained so
        # no todo job is left in front of the measured ones.
        await strata_enqueue(stub, "warmup", 0, WARMUP_JOBS)
        await strata_drain(stub, "warmup", 8, LEASE_BATCH)
        await procrastinate_enqueue(app, "warmup", 0, WARMUP_JOBS)
        await procrastinate_drain(app, base_url, "warmup", 8)

        strata_enqueue_s = base_enqueue_s = 0.0
        for index in range(QUEUES):
            start = index * DRAIN_JOBS
            _, seconds = await timed(strata_enqueue(stub, queue_name(index), start, DRAIN_JOBS))
            strata_enqueue_s += seconds
            _, seconds = await timed(
                procrastinate_enqueue(app, queue_name(index), start, DRAIN_JOBS)
            )
            base_enqueue_s += seconds
        rows.append(
            compared(
                f"Enqueue {ENQUEUE_JOBS // 1000}k, batches of {BATCH}",
                ENQUEUE_JOBS,
                strata_enqueue_s,
                base_enqueue_s,
                None,
            )
        )
        progress(rows[-1])
        # Statistics for the 200k fresh rows on both sides, as autovacuum soon
        # would: without them the first drain (K=1) measured plans made for a
        # near-empty table (Strata 120-140 jobs/s in two runs, against 1,310 for
        # the same drain of a 30k-job table in a separate run).
        await analyze(strata_url, "jobs")
        await analyze(base_url, "procrastinate_jobs")

        base_k1 = 0.0
        for index, workers in enumerate(WORKERS):
            queue = queue_name(index)
            acked, strata_s = await timed(strata_drain(stub, queue, workers, LEASE_BATCH))
            succeeded, base_s = await timed(procrastinate_drain(app, base_url, queue, workers))
            if acked != DRAIN_JOBS or succeeded != DRAIN_JOBS:
                raise RuntimeError(f"drained {acked} / {succeeded} of {DRAIN_JOBS} jobs")
            if workers == 1:
                base_k1 = base_s
            rows.append(
                compared(
                    f"Drain {DRAIN_JOBS // 1000}k, K={workers} "
                    f"(Strata LeaseJobs max_jobs={LEASE_BATCH} + AckJobs)",
                    DRAIN_JOBS,
                    strata_s,
                    base_s,
                    2.0,
                )
            )
            progress(rows[-1])
            if workers == SINGLE_ACKS_AT:
                queue = queue_name(len(WORKERS) + 1)
                acked, single_s = await timed(
                    strata_drain(stub, queue, workers, LEASE_BATCH, batch_ack=False)
                )
                if acked != DRAIN_JOBS:
                    raise RuntimeError(f"drained {acked} of {DRAIN_JOBS} jobs")
                rows.append(
                    compared(
                        f"Drain {DRAIN_JOBS // 1000}k, K={workers} (Strata LeaseJobs "
                        f"max_jobs={LEASE_BATCH} + one AckJob per job; procrastinate above)",
                        DRAIN_JOBS,
                        single_s,
                        base_s,
                        None,
                    )
                )
                progress(rows[-1])

        queue = queue_name(len(WORKERS))
        acked, strata_s = await timed(strata_drain(stub, queue, 1, 1))
        if acked != DRAIN_JOBS:
            raise RuntimeError(f"drained {acked} of {DRAIN_JOBS} jobs")
        rows.append(
            compared(
                f"Drain {DRAIN_JOBS // 1000}k, K=1 (Strata LeaseJobs max_jobs=1; "
                "procrastinate K=1 above)",
                DRAIN_JOBS,
                strata_s,
                base_k1,
                None,
            )
        )
        progress(rows[-1])

    for subscribe, consumer in (
        (True, "SubscribeJobs(max_in_flight=1) stream"),
        (False, f"LeaseJobs(wait={LATENCY_WAIT_SECONDS} s)"),
    ):
        latency = await strata_latency(target, subscribe)
        rows += [
            Row(
                f"Enqueue → delivery to a waiting {consumer}, p50",
                f"{latency.p50_ms:.2f} ms",
                target="< 5 ms" if subscribe else "—",
                result=verdict(latency.p50_ms < 5.0) if subscribe else "—",
            ),
            Row(f"Enqueue → delivery to a waiting {consumer}, p99", f"{latency.p99_ms:.2f} ms"),
        ]
        progress(rows[-2])
    return rows


BASELINE = "procrastinate 3.10"


@contextlib.contextmanager
def profiled(pid: int) -> Iterator[None]:
    """py-spy on the server for the block when BENCH_PYSPY names an output file;
    stopped by its PID (SIGINT makes it write the file)."""
    output = os.environ.get("BENCH_PYSPY")
    if not output:
        yield
        return
    spy = Path(sys.executable).with_name("py-spy")
    process = subprocess.Popen(
        [str(spy), "record", "--pid", str(pid), "--output", output, "--rate", "200"]
    )
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(60)


def main() -> None:
    info = machine_info()
    began = time.perf_counter()
    with (
        strata_stack("bench_queue", STRATA_DB_POOL_MAX=str(POOL_MAX)) as stack,
        profiled(stack.server_pid),
    ):
        rows = asyncio.run(run(stack.database_url, stack.target))
    took = time.perf_counter() - began
    print(text_table(rows, BASELINE))
    print(f"whole run {took:.0f} s")
    method = (
        f"Both sides run from one asyncio process against one PostgreSQL 15 server (fsync "
        f"off), each on its own database; both get a connection pool of at most {POOL_MAX}. "
        f"Strata: one `strata serve` process (STRATA_DB_POOL_MAX={POOL_MAX}) over one grpc.aio "
        f"channel. procrastinate {procrastinate.__version__}: PsycopgConnector, a no-op "
        f"async task, default options (finished jobs kept, as Strata keeps completed ones). "
        f"Enqueue: {ENQUEUE_JOBS:,} jobs per side into {QUEUES} queues of {DRAIN_JOBS:,}, "
        f"batches of {BATCH} (BatchEnqueue / batch_defer_async), one batch in flight, the "
        f"two sides alternating queue by queue. Drain: **{DRAIN_JOBS:,} jobs per "
        f"measurement** (one of those queues, not all {ENQUEUE_JOBS:,}, to keep the run "
        f"short), Strata as K asyncio tasks each looping LeaseJobs(max_jobs={LEASE_BATCH}, "
        f"lease {LEASE_SECONDS} s) and acking what it leased in one AckJobs call (and, "
        f"at K={SINGLE_ACKS_AT}, once more with one AckJob per job, concurrently, on "
        f"another queue), procrastinate as `run_worker_async(concurrency=K, wait=False)`; both "
        f"stop when the queue is empty, and every job is checked done. {WARMUP_JOBS:,} "
        f"jobs enqueued and drained per side first as warm-up. Latency: a consumer on its own "
        f"channel waiting in a SubscribeJobs(max_in_flight=1) stream, and then in a "
        f"LeaseJobs(max_jobs=1, wait={LATENCY_WAIT_SECONDS} s) long poll; t0 just before "
        f"Enqueue is called, t1 when the job reaches the consumer, which acks it before "
        f"the next is enqueued; {LATENCY_JOBS} jobs one at a time after "
        f"{LATENCY_JOBS // 10} warm-up ones. "
        f"Whole run {took:.0f} s."
    )
    write_section(
        "queue",
        "\n\n".join(
            [machine_markdown(info), markdown_table(rows, BASELINE), method, WHERE_TIME_GOES]
        ),
    )


if __name__ == "__main__":
    main()
