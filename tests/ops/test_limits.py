"""Limits an operator sets (issue 17, item 13), each hit on real components: HTTP/2
keepalive ends the streams of a client that vanished, PostgreSQL's statement_timeout
stops a pathological query with a clear status, and the S3 read timeout answers
UNAVAILABLE when S3 hangs. (The stream limits are tests/ops/test_overload.py's.)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import psycopg
import pytest

from strata.v1 import (
    artifacts_pb2,
    artifacts_pb2_grpc,
    records_pb2,
    records_pb2_grpc,
    transcripts_pb2,
    transcripts_pb2_grpc,
)
from strata_server.settings.backend_settings import DatabaseTarget
from strata_server.storage import migrations
from tests.conftest import SHAPES
from tests.contract.artifacts_support import upload
from tests.contract.helpers import details_of
from tests.ops.test_overload import sample, scrape, start_server
from tests.support.proxy import TcpProxy
from tests.support.s3 import S3Server
from tests.support.server import StrataProcess

pytestmark = pytest.mark.slow


@pytest.fixture(params=SHAPES)
def keepalive_server(
    request: pytest.FixtureRequest,
    database_url: Callable[[str], str],
    tmp_path: Path,
) -> Iterator[tuple[StrataProcess, int]]:
    """A server per shape that pings a silent connection after 1 s and gives up on
    it 1 s later."""
    server, port = start_server(
        request.param,
        request,
        database_url,
        tmp_path,
        STRATA_KEEPALIVE_TIME_SECONDS="1",
        STRATA_KEEPALIVE_TIMEOUT_SECONDS="1",
    )
    yield server, port
    server.stop()


def open_follows(port: int) -> float:
    """ReadTranscript streams the server has open now."""
    return sample(scrape(port), "strata_active_streams", method="TranscriptService/ReadTranscript")


def test_keepalive_ends_the_streams_of_a_client_that_vanished(keepalive_server) -> None:
    server, metrics_port = keepalive_server
    transcript = f"t-{uuid.uuid4().hex[:12]}"
    proxy = TcpProxy(server.port)
    channel = grpc.insecure_channel(f"127.0.0.1:{proxy.port}")
    try:
        stub = transcripts_pb2_grpc.TranscriptServiceStub(channel)
        stub.CreateTranscript(transcripts_pb2.CreateTranscriptRequest(transcript_id=transcript))
        follow = stub.ReadTranscript(
            transcripts_pb2.ReadTranscriptRequest(id=transcript, follow=True)
        )
        assert next(follow).HasField("up_to_date")
        assert open_follows(metrics_port) == 1
        proxy.freeze()  # the client's host goes dark: no FIN, no RST, no answers
        deadline = time.monotonic() + 30
        while open_follows(metrics_port) > 0:
            # Without keepalive (a ping after 2 hours) it stays open, and gRPC core
            # takes 60 s to give up on an unanswered ping unless told otherwise.
            assert time.monotonic() < deadline, "the vanished client's stream is still open"
            time.sleep(0.2)
        follow.cancel()
    finally:
        channel.close()
        proxy.close()


RECORDS = 30_000
BODY = "lorem ipsum dolor sit amet " * 60  # ~1.6 KB of JSON per record


@pytest.fixture
def slow_query_server(
    database_url: Callable[[str], str], tmp_path: Path
) -> Iterator[tuple[StrataProcess, str]]:
    """A server that allows a statement 20 ms, on a fresh PostgreSQL database holding
    30,000 records of one collection: the setting, not the subject, so they are
    written in one statement (as 30,000 CreateRecord writes would leave them) rather
    than through 30 Commits, which spent most of this test's time."""
    url = database_url("postgres")
    migrations.up(DatabaseTarget("postgres", dsn=url))
    collection = f"c_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO records (namespace, collection, id, data, version, create_time,"
            " update_time) SELECT 'default', %(collection)s, 'r' || batch || '-' || i,"
            " jsonb_build_object('n', i, 'body', i || ' ' || %(body)s), 1, now(), now()"
            " FROM generate_series(0, %(batches)s - 1) AS batch,"
            " generate_series(0, 999) AS i",
            {"collection": collection, "body": BODY, "batches": RECORDS // 1000},
        )
    tight = StrataProcess(
        url,
        tmp_path / "tight",
        STRATA_DB_STATEMENT_TIMEOUT_SECONDS="0.02",
        STRATA_CLEANUP_INTERVAL_SECONDS="3600",
        STRATA_RECORD_CACHE_TTL_SECONDS="0",
    )
    try:
        tight.start()
        yield tight, collection
    finally:
        tight.stop()


def test_a_pathological_query_is_stopped_by_the_statement_timeout(slow_query_server) -> None:
    tight, collection = slow_query_server
    with tight.channel() as channel:
        records = records_pb2_grpc.RecordServiceStub(channel)
        # A read by key runs well within the limit...
        record = records.GetRecord(records_pb2.GetRecordRequest(collection=collection, id="r0-1"))
        assert record.id == "r0-1"
        # ...a filter no index serves, over 30,000 records sorted by a field, does not.
        with pytest.raises(grpc.RpcError) as caught:
            records.ListRecords(
                records_pb2.ListRecordsRequest(
                    collection=collection,
                    filter='data.body = "no such body" OR data.n > 2000',
                    order_by="data.body desc",
                    page_size=1000,
                ),
                timeout=60,
            )
    error = caught.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
    info, _ = details_of(error)
    assert info.reason == "QUERY_TIMEOUT"
    assert "Traceback" not in tight.log()


@pytest.fixture
def hanging_s3(tmp_path: Path) -> Iterator[S3Server]:
    """A moto S3 of this test's own, which it may freeze."""
    s3 = S3Server(tmp_path / "s3")
    s3.start()
    try:
        yield s3
    finally:
        s3.thaw()
        s3.stop()


def test_a_hanging_s3_is_answered_unavailable_after_the_read_timeout(
    hanging_s3: S3Server, database_url: Callable[[str], str], tmp_path: Path
) -> None:
    server = StrataProcess(
        database_url("sqlite"),
        tmp_path / "strata",
        STRATA_S3_READ_TIMEOUT_SECONDS="1",
        STRATA_S3_CONNECT_TIMEOUT_SECONDS="1",
        **hanging_s3.env(f"strata-{uuid.uuid4().hex[:12]}"),
    )
    server.start()
    try:
        with server.channel() as channel:
            stub = artifacts_pb2_grpc.ArtifactServiceStub(channel)
            artifact = upload(stub, b"x" * 100_000, name="log.txt")
            hanging_s3.freeze()
            # The caller's own deadline is far above the read timeout: it must hear
            # UNAVAILABLE from the server, not run out of time (DEADLINE_EXCEEDED).
            with pytest.raises(grpc.RpcError) as caught:
                for _ in stub.DownloadArtifact(
                    artifacts_pb2.DownloadArtifactRequest(id=artifact.id), timeout=30
                ):
                    pass
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
            hanging_s3.thaw()
            # And the next download works again.
            data = b"".join(
                message.chunk
                for message in stub.DownloadArtifact(
                    artifacts_pb2.DownloadArtifactRequest(id=artifact.id), timeout=60
                )
            )
            assert data == b"x" * 100_000
    finally:
        hanging_s3.thaw()
        server.stop()
    assert "Traceback" not in server.log()
