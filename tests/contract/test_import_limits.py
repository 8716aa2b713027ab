"""ImportNamespace bounds what an archive's rows decompress to, on both shapes: a
compression bomb (a few hundred KB of gzip holding one 300 MiB line) is refused with
BAD_ARCHIVE without the server's memory following it, and so are rows that
decompress to more than STRATA_MAX_IMPORT_ROWS_BYTES; nothing is imported."""

from __future__ import annotations

import functools
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from strata.v1 import records_pb2, records_pb2_grpc
from tests.contract.archive_support import (
    export,
    import_,
    members,
    namespace,
    nothing_in,
    rebuild,
    rows,
)
from tests.contract.helpers import details_of, expect_error, raised_by, to_struct, unique
from tests.support.server import StrataProcess

MIB = 1 << 20
ROWS_LIMIT = 8 * MIB
"""The dedicated servers' STRATA_MAX_IMPORT_ROWS_BYTES."""
RSS_GROWTH_LIMIT = 64 * MIB


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def own_server(request, database_url, tmp_path_factory, s3) -> Iterator[StrataProcess]:  # type: ignore[no-untyped-def]
    """A server of one shape for this module alone: its memory is measured."""
    env = {"STRATA_MAX_IMPORT_ROWS_BYTES": str(ROWS_LIMIT)}
    if request.param == "postgres":
        env |= s3.env(unique("bomb-"))
    process = StrataProcess(
        database_url(request.param), tmp_path_factory.mktemp(f"bomb-{request.param}"), **env
    )
    process.start()
    yield process
    process.stop()


def _status(pid: int, field: str) -> int:
    """A /proc/<pid>/status memory figure, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


@functools.cache
def _bomb(size: int) -> bytes:
    """gzip of one JSON Lines record row whose string runs on for `size` bytes (made
    once per worker: both shapes are sent the same bomb)."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9, mtime=0) as stream:
        stream.write(b'{"collection":"c","id":"bomb","data":{"s":"')
        block = b"a" * MIB
        for _ in range(size // MIB):
            stream.write(block)
        stream.write(b'"}}\n')
    return out.getvalue()


def _small_archive(channel: grpc.Channel) -> tuple[bytes, str]:
    """An exported archive holding one record, and that record's namespace."""
    source = namespace()
    records_pb2_grpc.RecordServiceStub(channel).CreateRecord(
        records_pb2.CreateRecordRequest(
            namespace=source, collection="c", record_id="r0", data=to_struct({"n": 0})
        )
    )
    return export(channel, source).data, source


def test_a_compression_bomb_is_bad_archive_and_memory_stays_flat(own_server):
    with own_server.channel() as channel:
        archive, _ = _small_archive(channel)
        import_(channel, archive, namespace())  # the import path is warm
        bomb = _bomb(300 * MIB)
        assert len(bomb) < MIB
        bombed = rebuild(archive, {"records.jsonl.gz": bomb})
        target = namespace()
        pid = own_server.process.pid  # type: ignore[union-attr]
        before = _status(pid, "VmRSS")
        error = raised_by(lambda: import_(channel, bombed, target))
        peak = _status(pid, "VmHWM")
        assert peak - before < RSS_GROWTH_LIMIT, f"RSS grew by {(peak - before) // MIB} MiB"
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        info, _ = details_of(error)
        assert info.reason == "BAD_ARCHIVE" and info.metadata["member"] == "records.jsonl.gz"
        nothing_in(channel, target)


def test_rows_over_the_total_limit_are_bad_archive(own_server):
    with own_server.channel() as channel:
        archive, _ = _small_archive(channel)
        (row,) = rows(archive, "records")
        row["data"] = {"pad": "x" * 1000}
        lines = []
        for i in range(ROWS_LIMIT // 1000 + 100):  # each line is a legal, distinct row
            row["id"] = f"r{i:06d}"
            lines.append(json.dumps(row).encode() + b"\n")
        assert sum(map(len, lines)) > ROWS_LIMIT
        target = namespace()
        expect_error(
            lambda: import_(
                channel,
                rebuild(archive, {"records.jsonl.gz": gzip.compress(b"".join(lines))}),
                target,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "BAD_ARCHIVE",
            limit=str(ROWS_LIMIT),
        )
        nothing_in(channel, target)
        # the same rows, fewer of them, import whole
        fewer = rebuild(archive, {"records.jsonl.gz": gzip.compress(b"".join(lines[:1000]))})
        assert import_(channel, fewer, target).counts["records"].imported == 1000
        assert "records.jsonl.gz" in members(fewer)
