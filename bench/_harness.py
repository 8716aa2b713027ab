"""Shared pieces of the benchmarks: the services under test, timing, machine facts.

Every benchmark measures Strata and its baseline in the same process, on the same
machine, in the same run, so the ratio means something even on a noisy box. The
timing helpers here are therefore used for both sides alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / ".work"
for _path in (ROOT / "clients" / "python", ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from tests.support.server import StrataProcess  # noqa: E402

try:
    from tests.support.pg import PgServer
except ImportError:  # still in its first home while tests/support is being filled
    from tests.support.pg import PgServer


@dataclass(frozen=True, slots=True)
class Stats:
    """One measurement: how many ops, how fast, and the latency spread."""

    ops: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def ops_per_s(self) -> float:
        """Completed ops per wall-clock second."""
        return self.ops / self.seconds if self.seconds else 0.0


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]


def latency_stats(durations: Sequence[float], seconds: float | None = None) -> Stats:
    """Stats from per-op durations in seconds; `seconds` is the wall time they took
    (their sum when not given, which is right for one op at a time)."""
    ordered = sorted(durations)
    return Stats(
        ops=len(ordered),
        seconds=sum(ordered) if seconds is None else seconds,
        p50_ms=percentile(ordered, 0.50) * 1000,
        p99_ms=percentile(ordered, 0.99) * 1000,
    )


async def _timed(
    seconds: float, concurrency: int, op: Callable[[], Awaitable[object]]
) -> tuple[list[float], float]:
    """Per-op durations and wall time of `concurrency` tasks calling `op` back to
    back for `seconds`; the wall time runs until the last in-flight op finishes, so
    ops started just before the deadline are not free."""
    durations: list[float] = []
    start = time.perf_counter()
    deadline = start + seconds

    async def worker() -> None:
        clock = time.perf_counter
        while clock() < deadline:
            began = clock()
            await op()
            durations.append(clock() - began)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return durations, time.perf_counter() - start


async def run_for(seconds: float, concurrency: int, op: Callable[[], Awaitable[object]]) -> Stats:
    """Run `op` from `concurrency` tasks back to back for `seconds`; time every call."""
    durations, elapsed = await _timed(seconds, concurrency, op)
    return latency_stats(durations, elapsed)


async def run_side_by_side(
    seconds: float,
    concurrency: int,
    ops: dict[str, Callable[[], Awaitable[object]]],
    rounds: int = 5,
) -> dict[str, Stats]:
    """run_for each of `ops` for `seconds` in total, alternating in `rounds` slices.

    On a shared machine the background load drifts within a run; alternating
    short slices exposes every side to the same drift, so their ratio holds.
    """
    durations: dict[str, list[float]] = {name: [] for name in ops}
    elapsed = dict.fromkeys(ops, 0.0)
    for _ in range(rounds):
        for name, op in ops.items():
            taken, wall = await _timed(seconds / rounds, concurrency, op)
            durations[name] += taken
            elapsed[name] += wall
    return {name: latency_stats(durations[name], elapsed[name]) for name in ops}


async def run_times(count: int, op: Callable[[], Awaitable[object]]) -> Stats:
    """Run `op` `count` times one after another; for ops too slow to time by duration."""
    durations: list[float] = []
    for _ in range(count):
        began = time.perf_counter()
        await op()
        durations.append(time.perf_counter() - began)
    return latency_stats(durations)


def _run(*command: str) -> str:
    try:
        return subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory() -> str:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    return "unknown"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time process `pid` has used so far (/proc/<pid>/stat; it
    counts in clock ticks). Raises OSError once the process has gone."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    """1-minute load average: other work on a shared box skews every figure."""
    with contextlib.suppress(OSError):
        return Path("/proc/loadavg").read_text().split()[0]
    return "unknown"


def machine_info() -> dict[str, str]:
    """What a reader needs to judge the figures: machine, date and code measured.

    Computed before anything is written; bench/RESULTS.md is left out of `dirty`,
    so that in one `make bench` the sections after the first are not marked as run
    on uncommitted code because the first one wrote its results.
    """
    commit = _run("git", "rev-parse", "--short", "HEAD")
    status = _run("git", "status", "--porcelain", "--", ".", ":(exclude)bench/RESULTS.md")
    dirty = status not in ("", "unknown")
    return {
        "machine": _run("uname", "-srm"),
        "cpu": f"{_cpu_model()}, {os.cpu_count()} cores",
        "memory": _memory(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit + (" (plus uncommitted changes)" if dirty else ""),
        "load average before the run": load_average(),
    }


def machine_markdown(info: dict[str, str]) -> str:
    """machine_info as a markdown list."""
    return "\n".join(f"- {key}: {value}" for key, value in info.items())


@dataclass(frozen=True, slots=True)
class Stack:
    """A running Strata server and the PostgreSQL database it serves from."""

    database_url: str
    target: str
    server_pid: int


@contextlib.contextmanager
def strata_stack(database: str, **env: str) -> Iterator[Stack]:
    """A throwaway PostgreSQL under bench/.work and one `strata serve` on a fresh
    database of it; both are stopped (by PID) and deleted however the block ends."""
    WORK.mkdir(parents=True, exist_ok=True)
    pg = PgServer(WORK)
    try:
        pg.start()
        url = pg.create_database(database)
        server = StrataProcess(url, pg.base / "strata", **env)
        try:
            server.start(timeout=60)
            assert server.process is not None
            yield Stack(database_url=url, target=server.target, server_pid=server.process.pid)
        finally:
            server.stop()
    finally:
        pg.cleanup()


@contextlib.contextmanager
def noop_server() -> Iterator[str]:
    """bench/_noop_server.py on a free port; yields its address, stops it by PID."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("_noop_server.py")), address]
    )
    try:
        with grpc.insecure_channel(address) as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
        yield address
    finally:
        process.kill()
        process.wait()


@dataclass(frozen=True, slots=True)
class Row:
    """One figure of the results table."""

    figure: str
    strata: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    result: str = ""


def _headings(baseline: str) -> tuple[str, ...]:
    return ("figure", "strata", baseline, "ratio", "target", "result")


def text_table(rows: list[Row], baseline: str) -> str:
    """Aligned plain-text table for the terminal; `baseline` heads the baseline column."""
    headings = _headings(baseline)
    cells = [
        headings,
        *((r.figure, r.strata, r.baseline, r.ratio, r.target, r.result) for r in rows),
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headings))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def markdown_table(rows: list[Row], baseline: str) -> str:
    """The same table in markdown, empty cells shown as a dash."""
    headings = _headings(baseline)
    lines = ["| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    for r in rows:
        cells = (r.figure, r.strata, r.baseline, r.ratio, r.target, r.result)
        lines.append("| " + " | ".join(cell or "—" for cell in cells) + " |")
    return "\n".join(lines)
