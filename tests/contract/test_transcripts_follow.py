"""Following transcripts, on both shapes: many followers come and go without leaving
anything behind on the server, an idle follower gets heartbeats, and a follower
whose connection is cut resumes from the last seq it got with no gap or duplicate.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import grpc.aio
import psycopg
import pytest

from strata.v1 import admin_pb2, transcripts_pb2_grpc
from tests.contract.transcript_helpers import (
    Stream,
    append,
    create_transcript,
    messages_until,
    read_request,
    transcript_stub,
)
from tests.support.proxy import TcpProxy
from tests.support.server import StrataProcess

FOLLOWERS = 500
TRANSCRIPTS = 25


def _task_count(stubs) -> int:
    return stubs.admin.GetServerInfo(admin_pb2.GetServerInfoRequest()).task_count


def _busy_connections(database_url: str) -> list[tuple[str, str]]:
    """PostgreSQL sessions of the server's database that are running a statement or
    sitting in an open transaction: each one's state and the start of its query."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT state, left(query, 120) FROM pg_stat_activity"
            " WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND state IS NOT NULL AND state <> 'idle'"
            " AND query NOT ILIKE 'LISTEN%%'"
        ).fetchall()
    return [(str(state), str(query)) for state, query in rows]


async def test_cancelled_followers_leave_nothing_behind(server, stubs, shape):
    ts = transcript_stub(stubs.channel)
    ids = [create_transcript(ts) for _ in range(TRANSCRIPTS)]
    baseline = _task_count(stubs)
    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = transcripts_pb2_grpc.TranscriptServiceStub(channel)
        calls = [
            stub.ReadTranscript(read_request(ids[i % TRANSCRIPTS], follow=True))
            for i in range(FOLLOWERS)
        ]
        first = await asyncio.gather(*(call.read() for call in calls))
        assert {m.WhichOneof("event") for m in first} == {"up_to_date"}
        during = await asyncio.to_thread(_task_count, stubs)
        assert during >= baseline + FOLLOWERS, (baseline, during)
        # Every follower is live: one append per transcript reaches all of them.
        started = time.monotonic()
        await asyncio.gather(
            *(asyncio.to_thread(append, ts, transcript_id, ["ping"]) for transcript_id in ids)
        )
        pushed = await asyncio.gather(*(call.read() for call in calls))
        spread = time.monotonic() - started
        assert all([e.seq for e in m.batch.entries] == [1] for m in pushed)
        for call in calls:
            call.cancel()
    # Now and then gRPC never tells the server of one client's cancellation (seen
    # with 500 streams cancelled at once): that follower then ends at its next
    # write, the heartbeat (15 s on the session servers). So no follower outlives
    # its client by more than one heartbeat; most end at once.
    deadline = time.monotonic() + 15 + 5
    after = await asyncio.to_thread(_task_count, stubs)
    while after > baseline and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        after = await asyncio.to_thread(_task_count, stubs)
    print(
        f"tasks: {baseline} idle, {during} with {FOLLOWERS} followers, {after} after cancel; "
        f"one append each to {TRANSCRIPTS} transcripts reached all followers in {spread:.2f} s"
    )
    assert after <= baseline, f"{after - baseline} tasks left behind"
    if shape == "postgres":
        # A session busy at one instant may be the server's own background work (the
        # cleanup schedule, the gauges): a follower's would stay busy, so wait it out.
        busy = await asyncio.to_thread(_busy_connections, server.database_url)
        while busy and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            busy = await asyncio.to_thread(_busy_connections, server.database_url)
        assert busy == [], f"PostgreSQL sessions still busy: {busy}"


def test_connection_cut_then_resume_has_no_gap_or_duplicate(server, stubs):
    ts = transcript_stub(stubs.channel)
    transcript_id = create_transcript(ts)
    total = 600
    proxy = TcpProxy(server.port)
    stop = threading.Event()

    def write() -> None:
        written = 0
        while written < total and not stop.is_set():
            append(ts, transcript_id, [f"n{written + i}" for i in range(3)])
            written += 3
            time.sleep(0.005)

    writer = threading.Thread(target=write)
    writer.start()
    delivered: list[int] = []
    contents: list[str] = []
    cuts = 0
    try:
        with grpc.insecure_channel(f"127.0.0.1:{proxy.port}") as channel:
            stub = transcripts_pb2_grpc.TranscriptServiceStub(channel)
            while len(delivered) < total:
                from_seq = delivered[-1] + 1 if delivered else 1
                call = stub.ReadTranscript(
                    read_request(
                        transcript_id, from_seq=from_seq, follow=True, max_batch_bytes=200
                    ),
                    timeout=60,
                )
                try:
                    for message in call:
                        for item in message.batch.entries:
                            delivered.append(item.seq)
                            contents.append(item.content)
                        if cuts < 3 and len(delivered) >= (cuts + 1) * total // 4:
                            cuts += 1
                            proxy.cut()
                        if len(delivered) >= total:
                            call.cancel()
                            break
                except grpc.RpcError as error:
                    assert error.code() in (
                        grpc.StatusCode.UNAVAILABLE,
                        grpc.StatusCode.CANCELLED,
                        grpc.StatusCode.INTERNAL,  # a reset can surface as a framing error
                    ), error
    finally:
        stop.set()
        writer.join()
        proxy.close()
    assert cuts == 3 and proxy.connections >= 4
    assert delivered == list(range(1, total + 1))
    assert contents == [f"n{i}" for i in range(total)]


@pytest.fixture(scope="module")
def quick_heartbeats(database_url, tmp_path_factory) -> Iterator[StrataProcess]:
    """A server (SQLite) whose idle followers get a heartbeat every 0.3 s."""
    process = StrataProcess(
        database_url("sqlite"),
        Path(tmp_path_factory.mktemp("heartbeats")),
        STRATA_TRANSCRIPT_HEARTBEAT_SECONDS="0.3",
    )
    process.start()
    yield process
    assert process.stop() == 0


def test_idle_followers_get_heartbeats(quick_heartbeats):
    with quick_heartbeats.channel() as channel:
        ts = transcript_stub(channel)
        transcript_id = create_transcript(ts)
        append(ts, transcript_id, ["one"])
        call = ts.ReadTranscript(read_request(transcript_id, follow=True), timeout=30)
        stream = messages_until(call, Stream(), lambda s: "up_to_date" in s.events)
        started = time.monotonic()
        messages_until(call, stream, lambda s: s.events.count("heartbeat") >= 3)
        elapsed = time.monotonic() - started
        assert 0.8 < elapsed < 2.0, elapsed
        assert stream.last is not None and stream.last.heartbeat.next_seq == 2
        assert stream.last.heartbeat.time.seconds > 0
        append(ts, transcript_id, ["two"])
        messages_until(call, stream, lambda s: s.seqs == [1, 2])
        messages_until(call, stream, lambda s: s.events[-1] == "heartbeat")
        assert stream.last.heartbeat.next_seq == 3
        assert stream.events[:3] == ["batch", "up_to_date", "heartbeat"]
        call.cancel()


def test_a_busy_follower_gets_no_heartbeats(quick_heartbeats):
    with quick_heartbeats.channel() as channel:
        ts = transcript_stub(channel)
        transcript_id = create_transcript(ts)
        call = ts.ReadTranscript(read_request(transcript_id, follow=True), timeout=30)
        stream = messages_until(call, Stream(), lambda s: "up_to_date" in s.events)
        for i in range(10):
            append(ts, transcript_id, [f"n{i}"])
            messages_until(call, stream, lambda s, n=i + 1: len(s.seqs) >= n)
            time.sleep(0.1)
        call.cancel()
        assert "heartbeat" not in stream.events
