"""Following a transcript across replicas: a reader follows through server A while
four writers append through server B, both on one PostgreSQL database, woken
through PostgreSQL LISTEN/NOTIFY or through Redis pub/sub.

The follower must get every entry exactly once, in seq order, and soon after its
append: well under the 1 s fallback poll, which is what shows the wakeup crossed
from B to A.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from strata.v1 import transcripts_pb2
from tests.contract.transcript_helpers import (
    Stream,
    create_transcript,
    entry,
    messages_until,
    read_request,
    transcript_stub,
)
from tests.support.redis import RedisServer
from tests.support.server import StrataProcess

WRITERS = 4
APPENDS = 40
PER_APPEND = 2


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["postgres", "redis"])
def replicas(
    request: pytest.FixtureRequest,
    database_url: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[StrataProcess, StrataProcess]]:
    """Two servers on one PostgreSQL database, woken through the parametrized channel."""
    env = {}
    if request.param == "redis":
        env["STRATA_REDIS_URL"] = request.getfixturevalue("redis_server").url
    url = database_url("postgres")
    workdir = tmp_path_factory.mktemp("transcript-replicas")
    a = StrataProcess(url, workdir / "a", **env)
    b = StrataProcess(url, workdir / "b", **env)
    a.start()
    try:
        b.start()
    except BaseException:
        a.stop()
        raise
    yield a, b
    for server in (a, b):
        assert server.stop() == 0, server.log()
        assert "Traceback" not in server.log(), server.log()


def test_follow_on_one_replica_while_four_writers_append_on_another(
    replicas: tuple[StrataProcess, StrataProcess],
) -> None:
    a, b = replicas
    with a.channel() as reading, b.channel() as writing:
        reader = transcript_stub(reading)
        writer = transcript_stub(writing)
        transcript_id = create_transcript(writer)
        call = reader.ReadTranscript(read_request(transcript_id, follow=True), timeout=120)
        stream = messages_until(call, Stream(), lambda s: "up_to_date" in s.events)
        sent: dict[str, float] = {}
        received: dict[str, float] = {}
        lock = threading.Lock()

        def write(w: int) -> None:
            for i in range(APPENDS):
                contents = [f"{w}:{i}:{j}" for j in range(PER_APPEND)]
                with lock:
                    now = time.monotonic()
                    sent.update(dict.fromkeys(contents, now))
                writer.AppendEntries(
                    transcripts_pb2.AppendEntriesRequest(
                        id=transcript_id, entries=[entry(c) for c in contents]
                    ),
                    timeout=30,
                )
                time.sleep(0.01 * (w + 1))  # writers out of step with each other

        threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
        for thread in threads:
            thread.start()
        total = WRITERS * APPENDS * PER_APPEND
        try:
            while len(stream.seqs) < total:
                message = next(call)
                stream.take(message)
                now = time.monotonic()
                for item in message.batch.entries:
                    received[item.content] = now
        finally:
            for thread in threads:
                thread.join()
            call.cancel()
    assert stream.seqs == list(range(1, total + 1))
    assert sorted(received) == sorted(sent)
    # Each writer's entries arrive in the order it appended them.
    for w in range(WRITERS):
        mine = [e.content for e in stream.entries if e.content.startswith(f"{w}:")]
        assert mine == [f"{w}:{i}:{j}" for i in range(APPENDS) for j in range(PER_APPEND)]
    latencies = sorted(received[key] - sent[key] for key in sent)
    p50 = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(f"append on B -> delivery on A: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
    assert p50 < 0.1, latencies
    assert p99 < 0.9, latencies  # below the 1 s fallback poll


def test_seal_on_one_replica_ends_followers_on_another(
    replicas: tuple[StrataProcess, StrataProcess],
) -> None:
    a, b = replicas
    with a.channel() as reading, b.channel() as writing:
        reader = transcript_stub(reading)
        writer = transcript_stub(writing)
        transcript_id = create_transcript(writer)
        call = reader.ReadTranscript(read_request(transcript_id, follow=True), timeout=30)
        stream = messages_until(call, Stream(), lambda s: "up_to_date" in s.events)
        started = time.monotonic()
        writer.SealTranscript(transcripts_pb2.SealTranscriptRequest(id=transcript_id))
        for message in call:
            stream.take(message)
        assert stream.events[-1] == "sealed"
        assert time.monotonic() - started < 0.5
