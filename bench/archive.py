"""Archive tier benchmark: ReadTranscript of an archived transcript beside the same
transcript read hot, on both shapes.

Figure (issue 22: "ReadTranscript from the archive tier vs hot", target ≥ 0.5x hot):
  ENTRIES entries of about 200 B (bench/transcripts.py's content) appended to one
  transcript through AppendEntries (PER_APPEND per call, WRITERS in flight), then
  sealed. READS untimed-then-timed reads of the whole transcript hot (default 64 KiB
  batches, every seq checked), then an archive_transcripts policy with a short
  max_age and RunCleanup move it to the archive tier (timed: the archive itself),
  then READS reads of it archived, in the same run, on the same server:
    production: one `strata serve` on PostgreSQL 15 (fsync off) + moto S3
    embedded:   one `strata serve` on a SQLite file + local disk
  The batch boundaries of every read are compared: archived reads must give the
  same batches as hot ones. The median read of each tier is reported, with the
  server's CPU per entry; with BENCH_ARCHIVE_PROFILE=DIR the server is recorded
  under py-spy during one more (untimed) read of each tier (DIR/<shape>-<tier>.txt)
  and the share of samples per stage is printed (bench/RESULTS.md quotes it under
  "where the time goes").

Run with `make bench` (or `.venv/bin/python bench/archive.py`); prints a table and
rewrites the `## archive` section of bench/RESULTS.md. Nothing here asserts speed.
BENCH_ARCHIVE_ENTRIES overrides ENTRIES, BENCH_ARCHIVE_SHAPES ("production,embedded")
picks the shapes, for a quick run.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from _harness import (
    WORK,
    PgServer,
    Row,
    load_average,
    machine_info,
    machine_markdown,
    markdown_table,
    text_table,
)
from _results import write_section
from google.protobuf import duration_pb2
from transcripts import PER_APPEND, WRITERS, cpu_seconds, load

from strata.v1 import admin_pb2, admin_pb2_grpc, transcripts_pb2, transcripts_pb2_grpc
from tests.support.s3 import S3Server
from tests.support.server import StrataProcess

NAMESPACE = "bench"
ENTRIES = int(os.environ.get("BENCH_ARCHIVE_ENTRIES", "1000000"))
SHAPES = os.environ.get("BENCH_ARCHIVE_SHAPES", "production,embedded").split(",")
PROFILE_DIR = os.environ.get("BENCH_ARCHIVE_PROFILE", "")

READS = 3
"""Timed reads per tier (after one untimed warm-up read); the median is reported."""
MAX_AGE_SECONDS = 1
"""The archive policy's max_age: the transcript is sealed longer than this when
the cleanup runs."""
BASELINE = "hot (same server, same run)"

STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("segment fetch (blob store: S3 / disk)", ("blobs/s3", "blobs/fs", "minio", "urllib3")),
    ("decompress (zstd)", ("zstandard", "zstd")),
    ("segment parse (records)", ("transcript_segments",)),
    ("batching (archive_service)", ("archive_service",)),
    ("database (hot batches; the segment list)", ("transcript_archive", "aiosqlite", "psycopg")),
    ("gRPC send + servicer", ("grpc", "api/")),
]

WAITS = ("_worker (concurrent/futures", "_connection_worker_thread (aiosqlite", "Thread.run (")
"""Leaf frames of worker threads waiting for work, which py-spy does not see as idle."""


# --- the servers ------------------------------------------------------------------------


@contextlib.contextmanager
def shape_server(shape: str) -> Iterator[StrataProcess]:
    """One `strata serve` of the shape on throwaway backends, stopped by PID."""
    WORK.mkdir(parents=True, exist_ok=True)
    workdir = WORK / f"archive-{shape}"
    env = {"STRATA_CLEANUP_INTERVAL_SECONDS": "86400"}
    if shape == "embedded":
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        server = StrataProcess(
            f"sqlite:///{workdir / 'strata.db'}",
            workdir / "server",
            STRATA_DATA_DIR=str(workdir / "data"),
            **env,
        )
        try:
            server.start(timeout=60)
            yield server
        finally:
            server.stop()
            shutil.rmtree(workdir, ignore_errors=True)
        return
    pg = PgServer(WORK)
    s3 = S3Server(pg.base)
    try:
        pg.start()
        s3.start()
        url = pg.create_database("bench_archive")
        server = StrataProcess(url, pg.base / "strata", **env, **s3.env("bench-archive"))
        try:
            server.start(timeout=60)
            yield server
        finally:
            server.stop()
    finally:
        s3.stop()
        pg.cleanup()


# --- load, read, archive ----------------------------------------------------------------


@dataclass(frozen=True)
class Read:
    """One full read: seconds, entry bytes (role + content), server CPU, and a digest
    of its batch boundaries (equal digests: equal batches)."""

    seconds: float
    bytes: int
    server_cpu: float
    batches: str


async def read(stub: transcripts_pb2_grpc.TranscriptServiceStub, id: str, pid: int) -> Read:
    """ReadTranscript of the whole transcript, 64 KiB batches; checks every seq."""
    expected, size = 1, 0
    boundaries = hashlib.sha256()
    cpu = cpu_seconds(pid)
    started = time.perf_counter()
    call = stub.ReadTranscript(transcripts_pb2.ReadTranscriptRequest(namespace=NAMESPACE, id=id))
    async for message in call:
        entries = message.batch.entries
        if entries:
            boundaries.update(f"{entries[0].seq}-{message.batch.next_seq};".encode())
        for entry in entries:
            if entry.seq != expected:
                raise RuntimeError(f"got seq {entry.seq}, expected {expected}")
            expected += 1
            size += len(entry.role) + len(entry.content)
    seconds = time.perf_counter() - started
    if expected != ENTRIES + 1:
        raise RuntimeError(f"read {expected - 1} of {ENTRIES} entries")
    return Read(seconds, size, cpu_seconds(pid) - cpu, boundaries.hexdigest())


async def reads(stub: transcripts_pb2_grpc.TranscriptServiceStub, id: str, pid: int) -> list[Read]:
    """One untimed warm-up read, then READS timed ones."""
    await read(stub, id, pid)
    return [await read(stub, id, pid) for _ in range(READS)]


async def archive(channel: grpc.aio.Channel, id: str) -> float:
    """An archive_transcripts policy with a short max_age, then RunCleanup; seconds
    the cleanup took (the archive of the one transcript)."""
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    await admin.SetRetentionPolicy(
        admin_pb2.SetRetentionPolicyRequest(
            namespace=NAMESPACE,
            target=admin_pb2.RETENTION_TARGET_ARCHIVE_TRANSCRIPTS,
            max_age=duration_pb2.Duration(seconds=MAX_AGE_SECONDS),
        )
    )
    await asyncio.sleep(MAX_AGE_SECONDS + 0.5)
    started = time.perf_counter()
    async for _ in admin.RunCleanup(admin_pb2.RunCleanupRequest(namespace=NAMESPACE), timeout=1800):
        pass
    seconds = time.perf_counter() - started
    got = await transcripts_pb2_grpc.TranscriptServiceStub(channel).GetTranscript(
        transcripts_pb2.GetTranscriptRequest(namespace=NAMESPACE, id=id)
    )
    if got.tier != transcripts_pb2.TRANSCRIPT_TIER_ARCHIVED:
        raise RuntimeError(f"the cleanup left transcript {id} in tier {got.tier}")
    return seconds


# --- profile ----------------------------------------------------------------------------


@contextlib.contextmanager
def profiled(pid: int, shape: str) -> Iterator[Path | None]:
    """py-spy recording the server while the block runs, when BENCH_ARCHIVE_PROFILE is
    set (as bench/records_profile.py records it)."""
    if not PROFILE_DIR:
        yield None
        return
    output = Path(PROFILE_DIR) / f"{shape}.txt"
    output.parent.mkdir(parents=True, exist_ok=True)
    py_spy = str(Path(sys.executable).with_name("py-spy"))
    command = [py_spy, "record", "-p", str(pid), "-r", "250", "-f", "raw", "-o", str(output)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)  # py-spy attaches
        yield output
    finally:
        process.send_signal(2)  # SIGINT: py-spy writes its file and exits
        process.wait(30)


def stage_shares(path: Path) -> list[tuple[str, float]]:
    """Share of non-idle samples per stage; a stack counts for its innermost stage."""
    counts: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or "idle" in stack.rsplit(";", 1)[-1]:
            continue
        frames = stack.split(";")
        if any(frames[-1].startswith(wait) for wait in WAITS):
            continue
        stage = "other Python (event loop, interpreter)"
        if frames[-1].startswith("Runner.run"):
            stage = "native under the event loop (gRPC core, uvloop)"
        for frame in reversed(frames):
            named = [name for name, marks in STAGES if any(mark in frame for mark in marks)]
            if named:
                stage = named[0]
                break
        counts[stage] += int(count)
    total = sum(counts.values()) or 1
    return [(stage, count / total) for stage, count in counts.most_common()]


async def profile(
    stub: transcripts_pb2_grpc.TranscriptServiceStub, id: str, pid: int, label: str
) -> list[str]:
    """With BENCH_ARCHIVE_PROFILE, one more read under py-spy (never a timed one:
    py-spy pauses the server for every sample); its share of samples per stage."""
    with profiled(pid, label.replace(", ", "-")) as output:
        if output is None:
            return []
        await read(stub, id, pid)
    shares = ", ".join(f"{stage} {share:.0%}" for stage, share in stage_shares(output))
    return [f"py-spy, {label} read: {shares}"]


# --- the run ----------------------------------------------------------------------------


def rate(result: Read) -> str:
    return (
        f"{ENTRIES / result.seconds:,.0f} entries/s, {result.bytes / result.seconds / 1e6:.1f} MB/s"
    )


def median(results: list[Read]) -> Read:
    return sorted(results, key=lambda r: r.seconds)[len(results) // 2]


async def measure(shape: str, server: StrataProcess) -> tuple[list[Row], list[str]]:
    assert server.process is not None
    pid = server.process.pid
    notes: list[str] = []
    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = transcripts_pb2_grpc.TranscriptServiceStub(channel)
        created = await stub.CreateTranscript(
            transcripts_pb2.CreateTranscriptRequest(namespace=NAMESPACE, title="bench")
        )
        loaded = await load(stub, created.id, ENTRIES, call_timeout=300)
        await stub.SealTranscript(
            transcripts_pb2.SealTranscriptRequest(namespace=NAMESPACE, id=created.id)
        )
        load_hot = load_average()
        hot = await reads(stub, created.id, pid)
        notes += await profile(stub, created.id, pid, f"{shape}, hot")
        archived_in = await archive(channel, created.id)
        load_archived = load_average()
        cold = await reads(stub, created.id, pid)
        notes += await profile(stub, created.id, pid, f"{shape}, archived")
        if len({r.batches for r in hot + cold}) != 1:
            raise RuntimeError("the archived reads gave other batches than the hot reads")
    h, c = median(hot), median(cold)
    ratio = h.seconds / c.seconds
    rows = [
        Row(
            f"{shape}: load {ENTRIES:,} entries (AppendEntries of {PER_APPEND}, {WRITERS} in "
            f"flight), then archive them (RunCleanup)",
            f"{ENTRIES / loaded:,.0f} entries/s ({loaded:.0f} s); archive {archived_in:.1f} s",
        ),
        Row(
            f"{shape}: ReadTranscript of {ENTRIES:,} entries, 64 KiB batches, archived vs hot "
            f"(median of {READS}; load average {load_archived} / {load_hot})",
            rate(c),
            rate(h),
            f"{ratio:.2f}x",
            "≥ 0.5x",
            "pass" if ratio >= 0.5 else "miss",
        ),
        Row(
            f"{shape}: server CPU per entry during those reads",
            f"{c.server_cpu / ENTRIES * 1e6:.2f} us",
            f"{h.server_cpu / ENTRIES * 1e6:.2f} us",
        ),
    ]
    for row in rows:
        print(f"  {row.figure}: {row.strata} vs {row.baseline or '-'}", flush=True)
    return rows, notes


WHERE_TIME_GOES = (
    "Where the time goes (py-spy of one more, untimed, read of each tier at 250 Hz, "
    "worker threads' waits left out, and CPU per entry; not re-measured by each run "
    "unless BENCH_ARCHIVE_PROFILE is set). The first figures (f2271fd, 50,000 entries, "
    "load average 9) missed: 0.36x on the production shape, 0.30x embedded, with "
    "5.6 / 8.6 us of server CPU per archived entry against 2.4 / 5.0 hot; py-spy was then "
    "attached to the timed archived reads, which pauses the server for every sample, so "
    "those ratios are biased against the archive (since 81927df the profile is an extra "
    "read). The read then parsed each segment into one object per record "
    "(transcript_segments.parse: a generator, three varint calls and a dataclass per "
    "entry) on the event loop, and fetched the next segment only after the last batch of "
    "the one before was sent. Two changes: (1) transcript_segments.read_spans gives a "
    "segment's sizes and wire forms as two lists, its one- and two-byte varints read "
    "inline, and the batches are fitted over the sizes and joined from slices of the "
    "wire list: less than half the CPU per record of parse (a loop over a 1 MiB segment of "
    "4,500 records on this host, noisy); (2) the next segment is fetched (on S3 two ranged "
    "GETs, the seek table then the frames; zstd decoding in the blob store's threads) "
    "while the batches of this one are sent, as the hot read asks for its next batch "
    "while it writes one: at most two segments in memory. After them, the archived read "
    "costs the server 2.9 us per entry on PostgreSQL + S3 (hot: 2.1) and 2.1 us on SQLite "
    "+ disk (hot: 5.4). Production, archived: 44% of the samples are native code under "
    "the event loop (gRPC writing the batches, uvloop), 24% the S3 fetch (minio and "
    "urllib3 in worker threads), 17% read_spans, 10% the batch fitting and joins; hot: "
    "55% native, 41% psycopg (a batch is one string_agg in PostgreSQL). Embedded, "
    "archived: 48% native, 22% read_spans, 17% batching, 8% reading and decoding the "
    "segment files; hot: 72% native, 20% aiosqlite, whose query and thread hop per 64 KiB "
    "batch is why the archive tier reads faster than the hot rows on SQLite. The "
    "production ratio above is flattered by the load: the hot reads ran at load 17, the "
    "archived ones at 10; CPU per entry (1.4x the hot read's) is the steadier measure. "
    "Archiving itself (not a target) took 365 s for 1M entries on PostgreSQL at load "
    "10-17 and 91 s on SQLite; on PostgreSQL its first run failed: copying the search "
    "rows and deleting the hot rows are one statement each over 1M rows and ran past the "
    "30 s STRATA_DB_STATEMENT_TIMEOUT_SECONDS, so since 7f779ba the archive and restore "
    "transactions run without it, as index builds do. Not tried: one GET for a whole "
    "segment instead of two ranged ones (the blob store's read path, shared with "
    "downloads)."
)
"""bench/RESULTS.md's "where the time goes" for this section, measured while fixing the
read path."""


def main() -> None:
    info = machine_info()
    began = time.perf_counter()
    rows: list[Row] = []
    notes: list[str] = []
    for shape in SHAPES:
        with shape_server(shape) as server:
            got_rows, got_notes = asyncio.run(measure(shape, server))
        rows += got_rows
        notes += got_notes
    took = time.perf_counter() - began
    print(text_table(rows, BASELINE))
    for note in notes:
        print(note)
    print(f"whole run {took:.0f} s")
    method = (
        f"Per shape, one `strata serve` (production: PostgreSQL 15 with fsync off and moto "
        f"S3; embedded: a SQLite file and the local disk), one transcript of {ENTRIES:,} "
        f"entries of about 200 bytes (bench/transcripts.py's content) appended through "
        f"AppendEntries, then sealed. Hot: one untimed read, then {READS} timed "
        f"ReadTranscript reads from seq 1 (no follow, 64 KiB batches, every seq checked) over "
        f"one grpc.aio channel. Then an archive_transcripts retention policy (max_age "
        f"{MAX_AGE_SECONDS} s) and RunCleanup archive it, and the same reads run against the "
        f"archive tier; every read's batch boundaries are compared, hot and archived (equal). "
        f"Ratio: the median hot read's time over the median archived read's time. MB/s count "
        f"role + content bytes. CPU: user + system time of the server (/proc) over each "
        f"read, per entry. Load average (1 min) noted before each tier's reads, archived / "
        f"hot. Whole run {took:.0f} s."
    )
    write_section(
        "archive",
        "\n\n".join(
            [machine_markdown(info), markdown_table(rows, BASELINE), method, *notes]
            + ([WHERE_TIME_GOES] if WHERE_TIME_GOES else [])
        ),
    )


if __name__ == "__main__":
    main()
