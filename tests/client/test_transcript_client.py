"""Transcripts in the Python client, end to end on both shapes: the TranscriptService
methods of strata.Client and strata.AsyncClient, `writes.append` in a Commit, and
`follow`, which resumes after its connection is cut with no gap or duplicate."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest

import strata
from strata import writes
from tests.support.proxy import TcpProxy
from tests.support.server import StrataProcess


@pytest.fixture
def client(server: StrataProcess) -> Iterator[strata.Client]:
    with strata.Client(server.target, actor="transcript-test") as client:
        yield client


def _id() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def test_create_append_read_search(client: strata.Client) -> None:
    transcript = client.create_transcript(_id(), owner="ada", title="Chat", labels={"a": "b"})
    assert isinstance(transcript, strata.Transcript)
    assert (transcript.next_seq, transcript.sealed, transcript.labels) == (1, False, {"a": "b"})
    word = f"w{uuid.uuid4().hex[:8]}"
    first = client.append(transcript.id, f"Hello {word}", role="user")
    assert first == strata.Appended(first_seq=1, next_seq=2)
    more = client.append_entries(
        transcript.id,
        ["plain text", {"role": "tool", "content": "", "data": {"rows": 3, "ok": True}}],
        expected_next_seq=2,
        request_id=strata.new_request_id(),
    )
    assert (more.first_seq, more.next_seq) == (2, 4)
    entries = list(client.read_transcript(transcript.id))
    assert [(e.seq, e.role, e.content, e.data) for e in entries] == [
        (1, "user", f"Hello {word}", None),
        (2, "", "plain text", None),
        (3, "tool", "", {"rows": 3, "ok": True}),
    ]
    assert [e.seq for e in client.read_transcript(transcript.id, from_seq=-2)] == [2, 3]
    hits = list(client.search_transcripts(word))
    assert [(h.transcript_id, h.seq) for h in hits] == [(transcript.id, 1)]
    assert f"**{word}**" in hits[0].snippet
    assert transcript.id in {t.id for t in client.list_transcripts(owner="ada")}
    with pytest.raises(strata.FailedPrecondition) as conflict:
        client.append(transcript.id, "late", expected_next_seq=2)
    assert conflict.value.reason == "SEQ_MISMATCH" and conflict.value.metadata["next_seq"] == "4"
    sealed = client.seal_transcript(transcript.id)
    assert sealed.sealed and sealed.seal_time is not None
    with pytest.raises(strata.FailedPrecondition):
        client.append(transcript.id, "after the end")
    client.delete_transcript(transcript.id)
    with pytest.raises(strata.NotFound):
        client.get_transcript(transcript.id)


def test_bad_entries_are_refused_before_sending(client: strata.Client) -> None:
    with pytest.raises(TypeError):
        client.append_entries("t", "not a list")
    with pytest.raises(ValueError, match="unknown keys"):
        client.append_entries("t", [{"text": "typo"}])
    with pytest.raises(ValueError):
        client.append("t", "x", expected_next_seq=0)
    with pytest.raises(strata.ResourceExhausted, match="artifact"):
        client.append(client.create_transcript().id, "x" * (2 * 1024 * 1024))


def test_commit_appends_with_record_writes(client: strata.Client) -> None:
    transcript = client.create_transcript()
    collection = f"c{uuid.uuid4().hex[:8]}"
    results = client.commit(
        [
            writes.create(collection, {"state": "done"}, record_id="r"),
            writes.append(transcript.id, ["step 1", {"role": "tool", "content": "step 2"}]),
        ],
        request_id=strata.new_request_id(),
    )
    assert isinstance(results[0], strata.Record)
    assert results[1] == strata.Appended(first_seq=1, next_seq=3)
    assert [e.content for e in client.read_transcript(transcript.id)] == ["step 1", "step 2"]


def test_follow_delivers_live_and_ends_when_sealed(client: strata.Client) -> None:
    transcript = client.create_transcript()
    client.append(transcript.id, "before")
    received: list[strata.Entry] = []
    with client.follow(transcript.id) as follow:

        def read() -> None:
            received.extend(follow)  # ends by itself once sealed

        reader = threading.Thread(target=read)
        reader.start()
        deadline = time.monotonic() + 5
        while not follow.up_to_date and time.monotonic() < deadline:
            time.sleep(0.01)
        assert follow.up_to_date
        for i in range(3):
            client.append(transcript.id, f"live {i}")
        client.seal_transcript(transcript.id)
        reader.join(5)
        assert not reader.is_alive()
        assert follow.sealed and follow.next_seq == 5
    assert [e.content for e in received] == ["before", "live 0", "live 1", "live 2"]


def test_follow_of_an_unknown_transcript_raises_not_found(client: strata.Client) -> None:
    with pytest.raises(strata.NotFound):
        next(iter(client.follow("no-such-transcript")))


def test_follow_resumes_after_cuts_without_gap_or_duplicate(
    server: StrataProcess, client: strata.Client
) -> None:
    transcript = client.create_transcript()
    total = 400
    proxy = TcpProxy(server.port)

    def write() -> None:
        for i in range(0, total, 4):
            client.append_entries(transcript.id, [f"n{i + j}" for j in range(4)])
            time.sleep(0.003)
        client.seal_transcript(transcript.id)

    writer = threading.Thread(target=write)
    seen: list[strata.Entry] = []
    try:
        with (
            strata.Client(f"127.0.0.1:{proxy.port}") as cut_client,
            cut_client.follow(transcript.id, max_batch_bytes=256) as follow,
        ):
            writer.start()
            for entry in follow:
                seen.append(entry)
                if len(seen) in (50, 150, 300):
                    proxy.cut()
            reconnects = follow.reconnects
    finally:
        writer.join()
        proxy.close()
    assert [e.seq for e in seen] == list(range(1, total + 1))
    assert [e.content for e in seen] == [f"n{i}" for i in range(total)]
    assert reconnects >= 3


async def test_async_follow_resumes_after_cuts(
    server: StrataProcess, client: strata.Client
) -> None:
    transcript = client.create_transcript()
    client.append_entries(transcript.id, [f"old {i}" for i in range(20)])
    proxy = TcpProxy(server.port)
    seen: list[int] = []
    try:
        async with strata.AsyncClient(f"127.0.0.1:{proxy.port}") as aclient:
            follow = aclient.follow(transcript.id, from_seq=-10, max_batch_bytes=128)
            async with follow:
                async for entry in follow:
                    seen.append(entry.seq)
                    if len(seen) in (5, 10):
                        proxy.cut()  # at 10 the stream is idle: 21 and 22 need a new one
                    if len(seen) == 10:
                        await asyncio.to_thread(client.append_entries, transcript.id, ["n1", "n2"])
                    if len(seen) == 12:
                        break
                # The first cut can land once all ten old entries sit in the client's
                # buffer, so that one broken call is noticed only at the second cut:
                # one reconnect at least, and no gap or duplicate either way.
                assert follow.reconnects >= 1
            assert [e.seq async for e in aclient.read_transcript(transcript.id, from_seq=21)] == [
                21,
                22,
            ]
    finally:
        proxy.close()
    assert seen == list(range(11, 23))


async def test_async_client_transcript_methods(server: StrataProcess) -> None:
    async with strata.AsyncClient(server.target) as aclient:
        transcript = await aclient.create_transcript(owner="async")
        appended = await aclient.append(transcript.id, "hi", role="user", data={"k": 1})
        assert appended.first_seq == 1
        got = await aclient.get_transcript(transcript.id)
        assert got.next_seq == 2
        entries = [e async for e in aclient.read_transcript(transcript.id)]
        assert [(e.role, e.data) for e in entries] == [("user", {"k": 1})]
        listed = [t.id async for t in aclient.list_transcripts(owner="async")]
        assert transcript.id in listed
        await aclient.seal_transcript(transcript.id)
        assert [e.seq async for e in aclient.follow(transcript.id)] == [1]


def test_parents_refuse_or_cascade_a_record_delete(client: strata.Client, tmp_path) -> None:
    run = _id()
    client.create_record("runs", {"n": 1}, record_id=run)
    transcript = client.create_transcript(_id(), parent=("runs", run))
    log = tmp_path / "build.log"
    log.write_bytes(b"ok\n" * 100)
    artifact = client.upload(log, owner="ci", kind="log", parent=("runs", run))
    assert transcript.parent == artifact.parent == ("runs", run)
    assert [t.id for t in client.list_transcripts(parent=("runs", run))] == [transcript.id]
    assert [a.id for a in client.list_artifacts(parent=("runs", run))] == [artifact.id]
    with pytest.raises(strata.FailedPrecondition) as refused:
        client.delete_record("runs", run)
    assert refused.value.reason == "HAS_CHILDREN"
    client.delete_record("runs", run, cascade=True)
    with pytest.raises(strata.NotFound):
        client.get_transcript(transcript.id)
    with pytest.raises(strata.NotFound):
        client.get_artifact(artifact.id)


def test_archived_reads_alike_and_restores(server: StrataProcess) -> None:
    namespace = f"arc{uuid.uuid4().hex[:12]}"
    with strata.Client(server.target, namespace=namespace) as client:
        transcript = client.create_transcript(_id())
        client.append_entries(transcript.id, [f"line {n}" for n in range(1, 301)])
        client.seal_transcript(transcript.id)
        before = [(e.seq, e.content) for e in client.read_transcript(transcript.id)]
        client.set_retention_policy("archive_transcripts", timedelta(seconds=1))
        time.sleep(1.2)
        client.run_cleanup()
        archived = client.get_transcript(transcript.id)
        assert archived.archived and archived.next_seq == 301
        assert [(e.seq, e.content) for e in client.read_transcript(transcript.id)] == before
        restored = client.restore_transcript(transcript.id)
        assert not restored.archived
        assert client.restore_transcript(transcript.id) == restored
        assert [(e.seq, e.content) for e in client.read_transcript(transcript.id)] == before
