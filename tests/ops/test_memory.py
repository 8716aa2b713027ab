"""`sqlite://:memory:` serves a throwaway store with the full schema."""

from __future__ import annotations

from pathlib import Path

from strata.v1 import records_pb2, records_pb2_grpc
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
