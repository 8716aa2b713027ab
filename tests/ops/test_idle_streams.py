"""Idle streams cost nothing between events (issue 17, item 10).

Before, every waiting stream polled the database on its own once a second: a
follower read its transcript, a subscriber and a long poll tried to lease, a watch
read the change log, so 4,000 idle streams cost 0.88 of a core. Now a stream waits
for wakeups only, and what wakeups may miss is re-checked once per topic, shared by
all its streams. The test counts the database reads a server runs over an interval
with few idle streams and with a hundred times more on the same topics: the two
counts must be about the same (the topics' shared re-checks), whatever the number of
streams. No timing is asserted: only counts of queries, read from the server's
`strata_db_requests` (the connections its pool handed out).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2

from strata.v1 import (
    queue_pb2,
    queue_pb2_grpc,
    records_pb2,
    records_pb2_grpc,
    transcripts_pb2,
    transcripts_pb2_grpc,
)
from tests.conftest import SHAPES
from tests.ops.test_overload import sample, scrape, start_server
from tests.support.server import StrataProcess

pytestmark = pytest.mark.slow

WINDOW = 4.0
"""Seconds over which the database reads are counted."""
FEW, MANY = 2, 100
"""Streams of each kind per topic in the first count, and added for the second."""


@pytest.fixture(scope="module", params=SHAPES)
def quiet_server(
    request: pytest.FixtureRequest,
    database_url: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[StrataProcess, int]]:
    """A server per shape with nothing of its own in the background during the
    counts (no cleanup run, no queue metrics read), and a transcript re-check every
    half second, so the count shows the shared re-checks at work."""
    workdir: Path = tmp_path_factory.mktemp(f"idle-{request.param}")
    server, port = start_server(
        request.param,
        request,
        database_url,
        workdir,
        STRATA_CLEANUP_INTERVAL_SECONDS="3600",
        STRATA_QUEUE_METRICS_SECONDS="3600",
        STRATA_STREAM_RECHECK_SECONDS="0.5",
        STRATA_RECORD_CACHE_TTL_SECONDS="0",
    )
    yield server, port
    server.stop()


class Streams:
    """Idle streams of every waiting kind, on one transcript, one queue and one
    collection, each drained by a thread until it is cancelled."""

    def __init__(self, channel: grpc.Channel, transcript: str, queue: str, collection: str):
        self._transcripts = transcripts_pb2_grpc.TranscriptServiceStub(channel)
        self._queues = queue_pb2_grpc.QueueServiceStub(channel)
        self._records = records_pb2_grpc.RecordServiceStub(channel)
        self._transcript, self._queue, self._collection = transcript, queue, collection
        self._calls: list[grpc.Future] = []
        self.first_messages = threading.Semaphore(0)

    def _drain(self, call: grpc.Future) -> None:
        try:
            for _ in call:  # type: ignore[attr-defined]
                self.first_messages.release()
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                raise

    def _stream(self, call: grpc.Future) -> None:
        self._calls.append(call)
        threading.Thread(target=self._drain, args=(call,), daemon=True).start()

    def open(self, count: int) -> None:
        """`count` more streams of each kind; returns once each streaming one has
        said it is waiting (up_to_date, watch started)."""
        for _ in range(count):
            self._stream(
                self._transcripts.ReadTranscript(
                    transcripts_pb2.ReadTranscriptRequest(id=self._transcript, follow=True)
                )
            )
            self._stream(
                self._queues.SubscribeJobs(
                    queue_pb2.SubscribeJobsRequest(queue=self._queue, max_in_flight=1)
                )
            )
            self._stream(
                self._records.WatchRecords(
                    records_pb2.WatchRecordsRequest(collection=self._collection)
                )
            )
            self._calls.append(
                self._queues.LeaseJobs.future(
                    queue_pb2.LeaseJobsRequest(
                        queue=self._queue, max_jobs=1, wait=duration_pb2.Duration(seconds=60)
                    )
                )
            )
        for _ in range(2 * count):  # a follow's up_to_date, a watch's started
            assert self.first_messages.acquire(timeout=60)

    def close(self) -> None:
        for call in self._calls:
            call.cancel()


def reads_over(port: int, seconds: float) -> float:
    """Database reads and transactions the server ran during the next `seconds`."""
    before = sample(scrape(port), "strata_db_requests")
    time.sleep(seconds)
    return sample(scrape(port), "strata_db_requests") - before


def test_idle_streams_cost_the_same_queries_however_many_there_are(quiet_server) -> None:
    server, port = quiet_server
    transcript, queue, collection = (f"{kind}{uuid.uuid4().hex[:12]}" for kind in "tqc")
    with server.channel() as channel:
        transcripts_pb2_grpc.TranscriptServiceStub(channel).CreateTranscript(
            transcripts_pb2.CreateTranscriptRequest(transcript_id=transcript)
        )
        streams = Streams(channel, transcript, queue, collection)
        try:
            streams.open(FEW)
            time.sleep(1.5)  # the topics' re-checks start, and wake everyone once
            few = reads_over(port, WINDOW)
            streams.open(MANY)
            time.sleep(1.5)
            many = reads_over(port, WINDOW)
        finally:
            streams.close()
    # The shared re-checks run: the transcript's every 0.5 s, the queue's and the
    # collection's every second, so about 16 reads in the window, with or without
    # the hundred more streams of each kind (polling on their own, as before, they
    # cost 100 x 4 x 4 = 1,600 more).
    assert few >= 4, few
    assert many <= few + 8, (few, many)
