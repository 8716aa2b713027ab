"""`sqlite://:memory:` serves a throwaway store with the full schema, and leaves no file
behind."""

from __future__ import annotations

from pathlib import Path

from strata.v1 import artifacts_pb2_grpc, records_pb2, records_pb2_grpc
from tests.contract.artifacts_support import download, random_bytes, upload
from tests.support.server import StrataProcess


def test_in_memory_store_serves_and_forgets(tmp_path: Path) -> None:
    for run in range(2):
        server = StrataProcess("sqlite://:memory:", tmp_path / f"run{run}")
        server.start()
        try:
            with server.channel() as channel:
                stub = records_pb2_grpc.RecordServiceStub(channel)
                count = stub.CountRecords(records_pb2.CountRecordsRequest(collection="m"))
                assert count.count == 0  # nothing survives a restart
                stub.CreateRecord(records_pb2.CreateRecordRequest(collection="m", record_id="a"))
                hits = stub.SearchRecords(
                    records_pb2.SearchRecordsRequest(collection="m", query="nothing")
                )
                assert list(hits.hits) == []
        finally:
            assert server.stop() == 0
    assert not list(tmp_path.rglob("*.db"))


def test_in_memory_store_touches_no_disk_where_it_runs(tmp_path: Path) -> None:
    """Artifacts of a memory-shape server live in a temporary directory (under
    TMPDIR) that is gone once the server stops; nothing appears in its cwd."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    server = StrataProcess("sqlite://:memory:", tmp_path / "cwd", TMPDIR=str(temp))
    server.start()
    own = {"port", "server.log"}  # the test harness's files, in the same directory
    try:
        with server.channel() as channel:
            stub = artifacts_pb2_grpc.ArtifactServiceStub(channel)
            content = random_bytes(300 << 10)
            made = upload(stub, content, name="a.bin", content_type="application/octet-stream")
            assert download(stub, made.id)[1] == content
        assert {p.name for p in (tmp_path / "cwd").rglob("*")} == own
        assert list(temp.iterdir())  # the blobs are somewhere: in the temporary directory
    finally:
        assert server.stop() == 0
    assert {p.name for p in (tmp_path / "cwd").rglob("*")} == own
    assert list(temp.iterdir()) == []
