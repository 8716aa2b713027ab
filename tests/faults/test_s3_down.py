"""With its S3 endpoint stopped, a server answers artifact calls with UNAVAILABLE while
records keep working, and serves artifacts again once the endpoint is back."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from strata.v1 import artifacts_pb2, artifacts_pb2_grpc, records_pb2, records_pb2_grpc
from tests.contract.artifacts_support import download, random_bytes, text_log, upload
from tests.contract.helpers import raised_by, to_struct
from tests.support.s3 import S3Server
from tests.support.server import StrataProcess

FAST = 15.0
"""An artifact call must fail within this many seconds while S3 is down (no hang)."""


@pytest.fixture
def endpoint(tmp_path: Path):
    """An S3 endpoint of this test's own, to stop and start."""
    server = S3Server(tmp_path / "s3")
    server.start()
    yield server
    server.stop()


def expect_unavailable(call) -> str:
    started = time.monotonic()
    error = raised_by(call)
    assert error.code() == grpc.StatusCode.UNAVAILABLE, f"{error.code()}: {error.details()}"
    assert time.monotonic() - started < FAST
    return error.details()


def test_s3_down_is_unavailable_for_artifacts_only_and_recovers(
    endpoint: S3Server, database_url, tmp_path: Path
):
    process = StrataProcess(
        database_url("postgres"), tmp_path / "strata", **endpoint.env("strata-outage")
    )
    process.start()
    channel = process.channel()
    try:
        arts = artifacts_pb2_grpc.ArtifactServiceStub(channel)
        records = records_pb2_grpc.RecordServiceStub(channel)
        data = text_log(3000)
        before = upload(arts, data)
        assert download(arts, before.id)[1] == data

        endpoint.stop()
        details = expect_unavailable(lambda: upload(arts, random_bytes(300_000)))
        assert "S3" in details
        expect_unavailable(lambda: upload(arts, b"small"))
        expect_unavailable(lambda: download(arts, before.id))
        expect_unavailable(
            lambda: arts.FindMissingBlobs(
                artifacts_pb2.FindMissingBlobsRequest(sha256s=[before.sha256])
            )
        )
        # metadata lives in the database, which is up; presigning needs no request
        assert arts.GetArtifactUrl(artifacts_pb2.GetArtifactUrlRequest(id=before.id)).url
        assert arts.GetArtifact(artifacts_pb2.GetArtifactRequest(id=before.id)) == before
        record = records.CreateRecord(
            records_pb2.CreateRecordRequest(collection="notes", data=to_struct({"s3": "down"}))
        )
        assert (
            records.GetRecord(
                records_pb2.GetRecordRequest(collection="notes", id=record.id)
            ).version
            == 1
        )

        endpoint.start()  # an empty endpoint on the same port: the bucket comes back too
        deadline = time.monotonic() + 20
        while True:
            try:
                after = upload(arts, data + b"again")
                break
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.UNAVAILABLE
                assert time.monotonic() < deadline, error.details()
                time.sleep(0.2)
        assert download(arts, after.id)[1] == data + b"again"
    finally:
        channel.close()
        process.stop()
