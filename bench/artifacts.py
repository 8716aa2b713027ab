"""Artifacts benchmark: 1 GiB through Strata next to the same bytes moved directly.

Figures (targets from /work/shared/DESIGN.md and the artifacts issue):
  1. S3 shape (PostgreSQL + moto's S3 server): upload then download of SIZE bytes
     with the Python client (`strata.Client.upload` / `download`, files on disk)
     vs the minio SDK's `fput_object` / `fget_object` straight to the same
     endpoint. MB/s of upload + download together, ratio (target ≥ 0.5x), and the
     server's peak RSS (VmHWM of the fresh server process; target < 150 MB).
  2. Disk shape (SQLite + local blobs): the same upload and download vs a plain
     file copy there and back (`shutil.copyfile`), for scale: DESIGN.md sets the
     ratio target against the S3 SDK only, and a copy in the kernel's page cache
     runs at memory speed while every Strata byte crosses gRPC twice.
  3. Identical re-upload: new blob bytes stored (target 0), and a text log's stored
     size (target ≥ 3x smaller).

The content is random (incompressible, so the worst case for throughput and the
common one for build outputs), written to bench/.work in 1 MiB pieces: nothing
holds it in memory. Run with `make bench` (or `.venv/bin/python bench/artifacts.py`);
prints a table and rewrites the `## artifacts` section of bench/RESULTS.md. Nothing
here asserts speed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from _harness import (
    WORK,
    Row,
    machine_info,
    machine_markdown,
    markdown_table,
    strata_stack,
    text_table,
)
from _results import write_section

import strata
from tests.support.s3 import S3Server
from tests.support.server import StrataProcess

MIB = 1 << 20
SIZE = 1024 * MIB
TEXT_LINES = 600_000
BASELINE = "direct"
RSS_TARGET_MB = 150


def make_file(path: Path, size: int) -> str:
    """Write `size` random bytes in 1 MiB pieces; return their sha256."""
    digest = hashlib.sha256()
    with path.open("wb") as file:
        for _ in range(size // MIB):
            piece = os.urandom(MIB)
            digest.update(piece)
            file.write(piece)
    return digest.hexdigest()


def text_log(path: Path) -> int:
    """A service log of TEXT_LINES lines; returns its size."""
    with path.open("w") as file:
        for i in range(TEXT_LINES):
            file.write(
                f"2026-03-{i % 28 + 1:02d}T12:{i % 60:02d}:{(i * 7) % 60:02d}Z INFO "
                f"worker-{i % 7} job={i} took {(i * 37) % 1000} ms status=ok\n"
            )
    return path.stat().st_size


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def timed(action: Callable[[], object]) -> float:
    """Seconds `action` takes."""
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def same(path: Path, sha: str) -> None:
    """Fail loudly if a round trip changed the bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while piece := file.read(MIB):
            digest.update(piece)
    if digest.hexdigest() != sha:
        raise SystemExit(f"{path} does not hash to the uploaded content")


def strata_round_trip(target: str, source: Path, sha: str, out: Path) -> tuple[float, float, str]:
    """Upload then download through Strata; (upload s, download s, artifact id)."""
    with strata.Client(target, timeout=600) as client:
        made: list[strata.Artifact] = []
        up = timed(lambda: made.append(client.upload(source, owner="bench/1", kind="blob")))
        down = timed(lambda: client.download(made[0].id, out))
    same(out, sha)
    out.unlink()
    return up, down, made[0].id


def rate(seconds: float) -> str:
    return f"{2 * SIZE / MIB / seconds:,.0f} MB/s ({seconds:.1f} s)"


def ratio_row(figure: str, strata_s: float, direct_s: float, *, target: bool = True) -> Row:
    """`target`: whether DESIGN.md's ≥ 0.5x applies (it is set against the S3 SDK; the
    disk shape's file copy is shown for scale only)."""
    ratio = direct_s / strata_s
    return Row(
        figure,
        rate(strata_s),
        rate(direct_s),
        f"{ratio:.2f}x",
        "≥ 0.5x" if target else "",
        ("pass" if ratio >= 0.5 else "miss") if target else "",
    )


def rss_row(figure: str, pid: int) -> Row:
    rss = peak_rss_mb(pid)
    return Row(
        figure,
        f"{rss:.0f} MB",
        target=f"< {RSS_TARGET_MB} MB",
        result="pass" if rss < RSS_TARGET_MB else "miss",
    )


def dedup_rows(target: str, stored: Callable[[], int], work: Path) -> list[Row]:
    """Re-upload of identical content (with and without the client's skip) and a
    text log's stored size."""
    log = work / "service.log"
    size = text_log(log)
    with strata.Client(target) as client:
        first = client.upload(log, owner="bench/2", kind="log")
        before = stored()
        client.upload(log, owner="bench/3", kind="log")  # the client skips the bytes
        with log.open("rb") as file:  # a pipe cannot be hashed first: every byte is sent

            class Unseekable:
                def read(self, n: int = -1) -> bytes:
                    return file.read(n)

                def seekable(self) -> bool:
                    return False

            client.upload(Unseekable(), owner="bench/4", kind="log", name="again.log")  # type: ignore[arg-type]
        added = stored() - before
    log.unlink()
    smaller = size / first.stored_size
    return [
        Row(
            "identical re-upload (skipped, then sent in full): new blob bytes",
            f"{added} B",
            target="0 B",
            result="pass" if added == 0 else "miss",
        ),
        Row(
            f"text log {size / MIB:.0f} MB stored",
            f"{first.stored_size / MIB:.1f} MB ({smaller:.1f}x smaller)",
            target="≥ 3x smaller",
            result="pass" if smaller >= 3 else "miss",
        ),
    ]


@contextlib.contextmanager
def s3_endpoint(work: Path) -> Iterator[S3Server]:
    """moto's S3 server under bench/.work, stopped by PID."""
    server = S3Server(work / "s3")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def s3_rows(work: Path, source: Path, sha: str) -> list[Row]:
    out = work / "out.bin"
    with (
        s3_endpoint(work) as s3,
        strata_stack("bench_artifacts", **s3.env("strata-bench")) as stack,
    ):
        up, down, _ = strata_round_trip(stack.target, source, sha, out)
        client = s3.client()
        client.make_bucket("direct-bench")
        direct_up = timed(lambda: client.fput_object("direct-bench", "one", str(source)))
        direct_down = timed(lambda: client.fget_object("direct-bench", "one", str(out)))
        same(out, sha)
        out.unlink()
        client.remove_object("direct-bench", "one")

        def stored() -> int:
            return sum(
                item.size or 0
                for item in client.list_objects("strata-bench", prefix="blobs/", recursive=True)
            )

        rows = [
            ratio_row("S3: 1 GiB upload + download", up + down, direct_up + direct_down),
            Row(
                "S3: upload / download alone",
                f"{SIZE / MIB / up:,.0f} / {SIZE / MIB / down:,.0f} MB/s",
                f"{SIZE / MIB / direct_up:,.0f} / {SIZE / MIB / direct_down:,.0f} MB/s",
            ),
            rss_row("S3: server peak RSS", stack.server_pid),
        ]
        rows += [
            Row(f"S3: {row.figure}", row.strata, row.baseline, row.ratio, row.target, row.result)
            for row in dedup_rows(stack.target, stored, work)
        ]
        return rows


def disk_rows(work: Path, source: Path, sha: str) -> list[Row]:
    out = work / "out.bin"
    server = StrataProcess(f"sqlite:///{work / 'disk' / 'strata.db'}", work / "disk")
    server.start(timeout=60)
    try:
        assert server.process is not None
        up, down, _ = strata_round_trip(server.target, source, sha, out)
        copy = work / "copy.bin"
        direct_up = timed(lambda: shutil.copyfile(source, copy))
        direct_down = timed(lambda: shutil.copyfile(copy, out))
        same(out, sha)
        for path in (copy, out):
            path.unlink()
        blobs = work / "disk" / "data" / "blobs" / "sha256"

        def stored() -> int:
            return sum(path.stat().st_size for path in blobs.rglob("*") if path.is_file())

        rows = [
            ratio_row(
                "disk: 1 GiB upload + download (vs a file copy, for scale)",
                up + down,
                direct_up + direct_down,
                target=False,
            ),
            Row(
                "disk: upload / download alone",
                f"{SIZE / MIB / up:,.0f} / {SIZE / MIB / down:,.0f} MB/s",
                f"{SIZE / MIB / direct_up:,.0f} / {SIZE / MIB / direct_down:,.0f} MB/s",
            ),
            rss_row("disk: server peak RSS", server.process.pid),
        ]
        rows += [
            Row(f"disk: {row.figure}", row.strata, row.baseline, row.ratio, row.target, row.result)
            for row in dedup_rows(server.target, stored, work)
        ]
        return rows
    finally:
        server.stop()


def main() -> None:
    info = machine_info()
    work = WORK / "artifacts"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    began = time.perf_counter()
    try:
        source = work / "source.bin"
        sha = make_file(source, SIZE)
        rows = s3_rows(work, source, sha) + disk_rows(work, source, sha)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    took = time.perf_counter() - began
    print(text_table(rows, BASELINE))
    print(f"whole run {took:.0f} s")
    method = (
        f"One client process, files on local disk at both ends. Strata: the Python client "
        f"(`Client.upload`, which hashes the file first and asks FindMissingBlobs, then "
        f"streams 1 MiB chunks; `Client.download`, 256 KiB chunks, checked against the "
        f"sha256) to one fresh `strata serve` process. S3 shape: PostgreSQL 15 (fsync off) "
        f"and moto's S3 server (Python, in memory) on this machine; the baseline is the minio "
        f"SDK's fput_object / fget_object to the same endpoint (another bucket). Disk shape: "
        f"SQLite and blobs under the server's data directory; the baseline copies the file "
        f"with shutil.copyfile and back. Content: {SIZE // MIB} MiB of random bytes "
        f"(stored uncompressed); every round trip is checked by sha256. Peak RSS is the "
        f"server's VmHWM after everything above ran. Whole run {took:.0f} s."
    )
    write_section(
        "artifacts", "\n\n".join([machine_markdown(info), markdown_table(rows, BASELINE), method])
    )


if __name__ == "__main__":
    main()
