"""Where a record read's time goes: server CPU per call, and py-spy profiles.

Wall-clock throughput on this shared 2-core host moves with whatever else runs;
the CPU a server process spends per call moves less, so each cut to the read
path is judged by it. Runs the three read figures of bench/records.py on the same
stack (one `strata serve` on PostgreSQL, cache off) and, for the same calls, the
no-op grpc.aio servicer (bench/_noop_server.py), the transport's share:

  get-c1, get-c32   GetRecord by random key, 1 or 32 callers
  list              ListRecords, 1% of 100k match, page of 50

Every figure alternates slices of calls between the servers measured (Strata, the
no-op servicer for GetRecord, and with `--against COMMIT` a second Strata started
from the server package as at COMMIT, on the same database), so a before/after of
a change is read in one run, under the same load. For each it prints user + system
CPU of each server (/proc/PID/stat) per call. With
`--py-spy DIR` it also records the server under py-spy during each figure
(collapsed stacks, DIR/<figure>.txt) and prints the share of samples per stage
(transport, interceptors, parsing, pool and statement, rows, Struct, response).

  .venv/bin/python bench/records_profile.py [--calls N] [--against COMMIT]
      [--py-spy DIR [--perf | --native]] [--no-list]

Not part of `make bench`; bench/RESULTS.md's records section quotes its figures.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from _harness import ROOT, StrataProcess, cpu_seconds, strata_stack
from records import (
    GET_COLLECTION,
    GET_RECORDS,
    LIST_COLLECTION,
    LIST_RECORDS,
    NAMESPACE,
    PAGE_SIZE,
    STATUSES,
    declare_status_index,
    load,
    settle,
)

from strata.v1 import records_pb2, records_pb2_grpc, transaction_pb2_grpc

ROUNDS = 5

# Stage of a sampled stack: the stage of its innermost frame that names one, so a
# psycopg frame under the servicer is "pool and statement", not "servicer". A stack
# whose innermost frame is the event loop's or a thread's own is native code that
# py-spy cannot see into: grpc's core and uvloop (and libpq's socket reads) under
# the loop, grpc.aio's completion-queue poller in its thread.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("Struct (JSON -> google.protobuf.Struct)", ("well_known_types", "struct_wire")),
    ("row -> domain (psycopg loaders, json.loads)", ("psycopg/types", "record_rows", "json/")),
    ("pool checkout + statement (psycopg)", ("psycopg_pool", "psycopg/", "storage/postgres")),
    ("response building (record_to_proto, page token)", ("convert.py", "page_tokens", "paging")),
    ("parsing / validation", ("validation.py", "filters.py", "sqlquery.py")),
    ("record cache wrapper / service", ("cached_records", "records_service")),
    ("interceptors, status wrapper, metrics", ("interceptor", "auth.py", "admission", "decoding")),
    ("interceptors, status wrapper, metrics", ("status_codes", "metrics", "prometheus")),
    ("servicer", ("records_rpc",)),
    ("grpc.aio per-RPC tasks (asyncio.wait)", ("asyncio/tasks.py", "grpc/")),
]
NATIVE = {
    "Runner.run (asyncio/runners.py": "native under the event loop (grpc core, uvloop, libpq)",
    "Thread.run (threading.py": "native, grpc.aio poller thread",
}


async def calls(count: int, concurrency: int, op: Callable[[], Awaitable[object]]) -> float:
    """Run `op` `count` times from `concurrency` tasks; the wall time taken."""
    remaining = iter(range(count))
    started = time.perf_counter()

    async def worker() -> None:
        for _ in remaining:
            await op()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


def stage_of(stack: str) -> str:
    frames = stack.split(";")
    for prefix, stage in NATIVE.items():
        if frames[-1].startswith(prefix):
            return stage
    for frame in reversed(frames):
        for stage, marks in STAGES:
            if any(mark in frame for mark in marks):
                return stage
    return "other"


def summarize(path: Path) -> list[tuple[str, float]]:
    """Share of samples per stage in a py-spy collapsed-stack file."""
    counts: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "idle" in stack.rsplit(";", 1)[-1] or not count.isdigit():
            continue
        counts[stage_of(stack)] += int(count)
    total = sum(counts.values()) or 1
    return [(stage, 100 * n / total) for stage, n in counts.most_common()]


def start_py_spy(pid: int, output: Path, native: bool) -> subprocess.Popen[bytes]:
    """py-spy recording `pid` into `output` (collapsed stacks) until interrupted."""
    py_spy = str(Path(sys.executable).with_name("py-spy"))
    command = [py_spy, "record", "-p", str(pid), "-r", "250", "-f", "raw", "-o", str(output)]
    # Not --nonblocking: stacks read from a running process come out truncated, and
    # their samples would be counted as native code under the event loop.
    command += ["--native"] if native else []
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_perf(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """Linux perf sampling `pid` (every thread) into `output` until interrupted."""
    command = ["perf", "record", "-F", "999", "-p", str(pid), "-o", str(output), "--quiet"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def perf_shares(output: Path) -> list[tuple[str, float]]:
    """Share of perf samples per shared object (the interpreter, grpc's core,
    libpq, protobuf, uvloop, the kernel ...): what py-spy cannot see into."""
    report = subprocess.run(
        ["perf", "report", "-i", str(output), "--sort", "dso", "--stdio", "-q"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    shares = []
    for line in report.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0].endswith("%"):
            shares.append((fields[-1], float(fields[0].rstrip("%"))))
    return shares


@contextlib.contextmanager
def noop_process() -> Iterator[tuple[str, int]]:
    """bench/_noop_server.py on a free port: its address and PID (stopped by PID)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    script = Path(__file__).with_name("_noop_server.py")
    process = subprocess.Popen([sys.executable, str(script), address])
    try:
        with grpc.insecure_channel(address) as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
        yield address, process.pid
    finally:
        process.kill()
        process.wait()


@dataclass(frozen=True, slots=True)
class Side:
    """One server a figure is measured on, and the call it takes."""

    pid: int
    op: Callable[[], Awaitable[object]]


async def measure(
    name: str,
    count: int,
    concurrency: int,
    sides: dict[str, Side],
    args: argparse.Namespace,
) -> None:
    """Warm every side up, then `count` calls each, in ROUNDS alternating slices so
    that the host's drifting load hits every side alike, with each server's CPU
    taken around its own slices. The first side is the one profiled."""
    for side in sides.values():
        await calls(max(50, count // 10), concurrency, side.op)
    spy: Path | None = args.py_spy
    profiled = next(iter(sides.values())).pid
    recorder = None
    if spy is not None:
        if args.perf:
            recorder = start_perf(profiled, spy / f"{name}.perf")
        else:
            recorder = start_py_spy(profiled, spy / f"{name}.txt", args.native)
        await asyncio.sleep(1.0)  # the profiler attaches
    used = dict.fromkeys(sides, 0.0)
    wall = dict.fromkeys(sides, 0.0)
    for _ in range(ROUNDS):
        for label, side in sides.items():
            before = cpu_seconds(side.pid)
            wall[label] += await calls(count // ROUNDS, concurrency, side.op)
            used[label] += cpu_seconds(side.pid) - before
    first = next(iter(sides))
    for label in sides:
        per_call = 1e6 * used[label] / count
        print(
            f"{name:8s} c={concurrency:<2d} {label:16s} server CPU {per_call:7.1f} us/call "
            f"({used[label] / used[first]:.2f}x), {count / wall[label]:6.0f} calls/s",
            flush=True,
        )
    if recorder is not None and spy is not None:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=60)
        shares = perf_shares(spy / f"{name}.perf") if args.perf else summarize(spy / f"{name}.txt")
        for stage, share in shares[:14]:
            print(f"    {share:5.1f}%  {stage}")


async def run(servers: dict[str, tuple[int, str]], url: str, args: argparse.Namespace) -> None:
    """Load through the first server, then each figure on every server."""
    rng = random.Random(1)
    channels = {label: grpc.aio.insecure_channel(target) for label, (_, target) in servers.items()}
    try:
        stubs = {label: records_pb2_grpc.RecordServiceStub(ch) for label, ch in channels.items()}
        first = next(iter(channels.values()))
        txn = transaction_pb2_grpc.TransactionServiceStub(first)
        await load(txn, GET_COLLECTION, GET_RECORDS)
        await settle(url)

        def get_request() -> records_pb2.GetRecordRequest:
            return records_pb2.GetRecordRequest(
                namespace=NAMESPACE,
                collection=GET_COLLECTION,
                id=f"r{rng.randrange(GET_RECORDS):06d}",
            )

        def getter(stub: records_pb2_grpc.RecordServiceStub) -> Callable[[], Awaitable[object]]:
            async def get() -> None:
                await stub.GetRecord(get_request())

            return get

        def lister(stub: records_pb2_grpc.RecordServiceStub) -> Callable[[], Awaitable[object]]:
            async def list_page() -> None:
                response = await stub.ListRecords(
                    records_pb2.ListRecordsRequest(
                        namespace=NAMESPACE,
                        collection=LIST_COLLECTION,
                        filter=f'data.status = "s{rng.randrange(STATUSES):02d}"',
                        page_size=PAGE_SIZE,
                    )
                )
                assert len(response.records) == PAGE_SIZE

            return list_page

        def sides_of(
            make: Callable[[records_pb2_grpc.RecordServiceStub], Callable[[], Awaitable[object]]],
        ) -> dict[str, Side]:
            return {label: Side(servers[label][0], make(stub)) for label, stub in stubs.items()}

        with noop_process() as (noop_address, noop_pid):
            async with grpc.aio.insecure_channel(noop_address) as noop_channel:
                noop = records_pb2_grpc.RecordServiceStub(noop_channel)
                for concurrency in (1, 32):
                    sides = sides_of(getter)
                    sides["no-op servicer"] = Side(noop_pid, getter(noop))
                    await measure(f"get-c{concurrency}", args.calls, concurrency, sides, args)
        if args.no_list:
            return
        await load(txn, LIST_COLLECTION, LIST_RECORDS)
        await declare_status_index(first)
        await settle(url)
        sides = sides_of(lister)
        await measure("list", max(200, args.calls // 10), 1, sides, args)
    finally:
        for channel in channels.values():
            await channel.close()


@contextlib.contextmanager
def server_at(commit: str, url: str, workdir: Path) -> Iterator[StrataProcess]:
    """`strata serve` from the server package (and migrations) as they were at
    `commit` (git archive into `workdir`, first on PYTHONPATH), on the same
    database; stopped by PID."""
    subprocess.run(
        f"git -C {ROOT} archive {commit} server/strata_server migrations | tar -x -C {workdir}",
        shell=True,
        check=True,
    )
    server = StrataProcess(
        url, workdir / "run", PYTHONPATH=str(workdir / "server"), STRATA_DB_POOL_MAX="32"
    )
    try:
        server.start(timeout=60)
        yield server
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000, help="GetRecord calls per figure")
    parser.add_argument("--py-spy", type=Path, help="record py-spy profiles into this folder")
    parser.add_argument("--native", action="store_true", help="py-spy --native (C frames)")
    parser.add_argument(
        "--perf", action="store_true", help="with --py-spy DIR: Linux perf by shared object instead"
    )
    parser.add_argument(
        "--against", metavar="COMMIT", help="also measure the server package as at COMMIT"
    )
    parser.add_argument("--no-list", action="store_true", help="skip the 100k load and list")
    args = parser.parse_args()
    if args.py_spy is not None:
        args.py_spy.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as started:
        stack = started.enter_context(
            strata_stack("bench_records_profile", STRATA_DB_POOL_MAX="32")
        )
        servers = {"strata": (stack.server_pid, stack.target)}
        if args.against:
            workdir = Path(started.enter_context(tempfile.TemporaryDirectory()))
            other = started.enter_context(server_at(args.against, stack.database_url, workdir))
            assert other.process is not None
            servers[f"strata@{args.against[:9]}"] = (other.process.pid, other.target)
        asyncio.run(run(servers, stack.database_url, args))


if __name__ == "__main__":
    sys.exit(main())
