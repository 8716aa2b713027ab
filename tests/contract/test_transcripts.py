"""TranscriptService over a real channel, on both storage shapes.

Each test works in transcripts of its own (fresh ids), so tests share the session's
servers without seeing each other's entries.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.protobuf import json_format

from strata.v1 import admin_pb2, transaction_pb2, transcripts_pb2
from tests.contract.helpers import (
    all_pages,
    commit,
    create,
    expect_error,
    get,
    unique,
    update_write,
)
from tests.contract.transcript_helpers import (
    Stream,
    append,
    create_transcript,
    entry,
    messages_until,
    read_all,
    read_request,
    transcript_stub,
)

FAILED = grpc.StatusCode.FAILED_PRECONDITION
NOT_FOUND = grpc.StatusCode.NOT_FOUND
OVERHEAD = 32
"""core.transcript_rules.ENTRY_OVERHEAD: what each entry counts for beyond its bytes."""


@pytest.fixture
def ts(stubs):
    """A TranscriptService stub over the test server's shared channel."""
    return transcript_stub(stubs.channel)


def get_transcript(ts, transcript_id: str) -> transcripts_pb2.Transcript:
    return ts.GetTranscript(transcripts_pb2.GetTranscriptRequest(id=transcript_id))


# --- Create, get, list ---------------------------------------------------------------


def test_create_and_get(ts):
    transcript_id = unique("t")
    created = ts.CreateTranscript(
        transcripts_pb2.CreateTranscriptRequest(
            transcript_id=transcript_id, owner="ada", title="Support chat", labels={"tier": "gold"}
        )
    )
    assert created.id == transcript_id and created.namespace == "default"
    assert (created.owner, created.title, dict(created.labels)) == (
        "ada",
        "Support chat",
        {"tier": "gold"},
    )
    assert (created.next_seq, created.size_bytes, created.sealed) == (1, 0, False)
    assert not created.HasField("seal_time")
    assert get_transcript(ts, transcript_id) == created


def test_server_chooses_an_id(ts):
    first = ts.CreateTranscript(transcripts_pb2.CreateTranscriptRequest())
    second = ts.CreateTranscript(transcripts_pb2.CreateTranscriptRequest())
    assert len(first.id) == 26 and first.id < second.id


def test_create_twice_is_already_exists(ts):
    transcript_id = create_transcript(ts)
    expect_error(lambda: create_transcript(ts, transcript_id), grpc.StatusCode.ALREADY_EXISTS)


def test_create_is_idempotent_by_request_id(ts):
    request = transcripts_pb2.CreateTranscriptRequest(
        transcript_id=unique("t"), owner="ada", request_id=unique("req")
    )
    first = ts.CreateTranscript(request)
    assert ts.CreateTranscript(request) == first
    request.owner = "bob"
    expect_error(
        lambda: ts.CreateTranscript(request), grpc.StatusCode.INVALID_ARGUMENT, field="request_id"
    )


def test_list_newest_first_by_owner_with_paging(ts):
    owner = unique("owner")
    ids = [create_transcript(ts, owner=owner) for _ in range(5)]
    create_transcript(ts, owner=unique("other"))
    listed = all_pages(
        lambda token: ts.ListTranscripts(
            transcripts_pb2.ListTranscriptsRequest(owner=owner, page_size=2, page_token=token)
        ),
        lambda page: page.transcripts,
    )
    assert [t.id for t in listed] == ids[::-1]
    everyone = ts.ListTranscripts(transcripts_pb2.ListTranscriptsRequest(page_size=1000))
    assert set(ids) <= {t.id for t in everyone.transcripts}


# --- Append --------------------------------------------------------------------------


def test_appends_get_gapless_seqs_and_sizes(ts):
    transcript_id = create_transcript(ts)
    first = append(ts, transcript_id, ["a", "bb"])
    second = append(ts, transcript_id, ["ccc"])
    assert (first.first_seq, first.next_seq) == (1, 3)
    assert (second.first_seq, second.next_seq) == (3, 4)
    transcript = get_transcript(ts, transcript_id)
    assert transcript.next_seq == 4
    assert transcript.size_bytes == sum(len("user") + n + OVERHEAD for n in (1, 2, 3))
    assert transcript.update_time.ToNanoseconds() >= transcript.create_time.ToNanoseconds()


def test_entries_round_trip(ts):
    transcript_id = create_transcript(ts)
    data = {"tool": "search", "args": {"q": "✓ unicode", "n": 3, "ok": True, "none": None}}
    ts.AppendEntries(
        transcripts_pb2.AppendEntriesRequest(
            id=transcript_id,
            entries=[
                entry("Hi, I need help 🙂", "user"),
                entry("", "tool:search", data),
                entry("line one\nline two\ttabbed", "assistant"),
            ],
        )
    )
    stream = read_all(ts, transcript_id)
    assert [(e.seq, e.role, e.content) for e in stream.entries] == [
        (1, "user", "Hi, I need help 🙂"),
        (2, "tool:search", ""),
        (3, "assistant", "line one\nline two\ttabbed"),
    ]
    assert json_format.MessageToDict(stream.entries[1].data) == data
    assert not stream.entries[0].HasField("data")
    assert all(e.create_time.seconds > 0 for e in stream.entries)


def test_expected_next_seq_conflict_carries_the_actual_next_seq(ts):
    transcript_id = create_transcript(ts)
    append(ts, transcript_id, ["one"], expected_next_seq=1)
    append(ts, transcript_id, ["two"], expected_next_seq=2)
    expect_error(
        lambda: append(ts, transcript_id, ["late"], expected_next_seq=2),
        FAILED,
        reason="SEQ_MISMATCH",
        next_seq="3",
    )
    expect_error(
        lambda: append(ts, transcript_id, ["early"], expected_next_seq=9),
        FAILED,
        reason="SEQ_MISMATCH",
        next_seq="3",
    )
    assert get_transcript(ts, transcript_id).next_seq == 3  # nothing half-written
    assert read_all(ts, transcript_id).seqs == [1, 2]


def test_only_one_of_racing_writers_with_the_same_expected_next_seq_wins(ts):
    transcript_id = create_transcript(ts)
    append(ts, transcript_id, ["seed"])

    def attempt(i: int) -> str:
        try:
            append(ts, transcript_id, [f"writer {i}"], expected_next_seq=2)
            return "ok"
        except grpc.RpcError as error:
            assert error.code() == FAILED, error.details()
            return "conflict"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, range(8)))
    assert sorted(outcomes) == ["conflict"] * 7 + ["ok"]
    assert read_all(ts, transcript_id).seqs == [1, 2]


def test_retry_with_the_same_request_id_appends_once(ts):
    transcript_id = create_transcript(ts)
    request = transcripts_pb2.AppendEntriesRequest(
        id=transcript_id, entries=[entry("once"), entry("twice?")], request_id=unique("req")
    )
    first = ts.AppendEntries(request)
    append(ts, transcript_id, ["someone else"])
    again = ts.AppendEntries(request)
    assert (again.first_seq, again.next_seq) == (first.first_seq, first.next_seq) == (1, 3)
    assert read_all(ts, transcript_id).seqs == [1, 2, 3]
    request.entries[0].content = "different"
    expect_error(
        lambda: ts.AppendEntries(request), grpc.StatusCode.INVALID_ARGUMENT, field="request_id"
    )


def test_concurrent_retries_of_one_request_append_once(ts):
    transcript_id = create_transcript(ts)
    request = transcripts_pb2.AppendEntriesRequest(
        id=transcript_id, entries=[entry("x")] * 10, request_id=unique("req")
    )
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: ts.AppendEntries(request), range(6)))
    assert {(r.first_seq, r.next_seq) for r in results} == {(1, 11)}
    assert get_transcript(ts, transcript_id).next_seq == 11


def test_concurrent_appends_are_gapless(ts):
    transcript_id = create_transcript(ts)
    writers, per_writer = 6, 20

    def write(w: int) -> list[tuple[int, int]]:
        spans = []
        for i in range(per_writer):
            reply = append(ts, transcript_id, [f"w{w}-{i}-a", f"w{w}-{i}-b"])
            spans.append((reply.first_seq, reply.next_seq))
        return spans

    with ThreadPoolExecutor(writers) as pool:
        spans = [span for result in pool.map(write, range(writers)) for span in result]
    total = writers * per_writer * 2
    assert sorted(seq for a, b in spans for seq in range(a, b)) == list(range(1, total + 1))
    stream = read_all(ts, transcript_id)
    assert stream.seqs == list(range(1, total + 1))
    # Each append's two entries are adjacent and in request order.
    for a, _ in spans:
        first, second = stream.entries[a - 1], stream.entries[a]
        assert first.content.endswith("-a") and second.content == first.content[:-1] + "b"


# --- Seal and delete -----------------------------------------------------------------


def test_sealed_transcripts_refuse_appends(ts):
    transcript_id = create_transcript(ts)
    append(ts, transcript_id, ["last words"])
    sealed = ts.SealTranscript(transcripts_pb2.SealTranscriptRequest(id=transcript_id))
    assert sealed.sealed and sealed.seal_time.seconds > 0 and sealed.next_seq == 2
    expect_error(lambda: append(ts, transcript_id, ["more"]), FAILED, reason="TRANSCRIPT_SEALED")
    expect_error(
        lambda: append(ts, transcript_id, ["more"], expected_next_seq=2),
        FAILED,
        reason="TRANSCRIPT_SEALED",
    )
    again = ts.SealTranscript(transcripts_pb2.SealTranscriptRequest(id=transcript_id))
    assert again == get_transcript(ts, transcript_id)
    assert again.seal_time == sealed.seal_time
    stream = read_all(ts, transcript_id)
    assert stream.seqs == [1] and stream.events == ["batch", "sealed"]
    assert stream.last is not None and stream.last.sealed.next_seq == 2
    assert stream.last.sealed.seal_time == sealed.seal_time


def test_delete_removes_transcript_and_entries(ts):
    transcript_id = create_transcript(ts)
    append(ts, transcript_id, ["secret"])
    ts.DeleteTranscript(transcripts_pb2.DeleteTranscriptRequest(id=transcript_id))
    expect_error(lambda: get_transcript(ts, transcript_id), NOT_FOUND)
    expect_error(lambda: read_all(ts, transcript_id), NOT_FOUND)
    expect_error(lambda: append(ts, transcript_id, ["x"]), NOT_FOUND)
    expect_error(
        lambda: ts.DeleteTranscript(transcripts_pb2.DeleteTranscriptRequest(id=transcript_id)),
        NOT_FOUND,
    )
    # The id can be used again, from seq 1.
    create_transcript(ts, transcript_id)
    assert append(ts, transcript_id, ["fresh"]).first_seq == 1
    assert read_all(ts, transcript_id).seqs == [1]


def test_every_mutation_is_audited(ts, stubs):
    transcript_id = create_transcript(ts)
    ts.AppendEntries.with_call(
        transcripts_pb2.AppendEntriesRequest(
            id=transcript_id, entries=[entry("a"), entry("b")], request_id=unique("req")
        ),
        metadata=(("x-strata-actor", "ada"),),
    )
    ts.SealTranscript(transcripts_pb2.SealTranscriptRequest(id=transcript_id))
    ts.DeleteTranscript(transcripts_pb2.DeleteTranscriptRequest(id=transcript_id))
    entries = stubs.admin.ListAuditEntries(
        admin_pb2.ListAuditEntriesRequest(entity="transcript", entity_id=transcript_id)
    ).entries
    assert [(e.action, e.version) for e in entries] == [
        ("delete", 2),
        ("seal", 2),
        ("append", 2),
        ("create", 1),
    ]
    assert entries[2].actor == "ada" and entries[2].request_id


# --- Read ----------------------------------------------------------------------------


def test_read_from_start_middle_and_end(ts):
    transcript_id = create_transcript(ts)
    append(ts, transcript_id, [f"entry {i}" for i in range(1, 11)])
    assert read_all(ts, transcript_id).seqs == list(range(1, 11))
    assert read_all(ts, transcript_id, from_seq=1).seqs == list(range(1, 11))
    assert read_all(ts, transcript_id, from_seq=7).seqs == [7, 8, 9, 10]
    assert read_all(ts, transcript_id, from_seq=-3).seqs == [8, 9, 10]
    assert read_all(ts, transcript_id, from_seq=-100).seqs == list(range(1, 11))
    at_end = read_all(ts, transcript_id, from_seq=11)
    assert at_end.events == ["up_to_date"]
    assert at_end.last is not None and at_end.last.up_to_date.next_seq == 11
    full = read_all(ts, transcript_id)
    assert full.events[-1] == "up_to_date" and full.batches[-1].next_seq == 11
    assert [e.content for e in full.entries] == [f"entry {i}" for i in range(1, 11)]


def test_an_empty_transcript_is_up_to_date_at_once(ts):
    transcript_id = create_transcript(ts)
    stream = read_all(ts, transcript_id)
    assert stream.events == ["up_to_date"]
    assert stream.last is not None and stream.last.up_to_date.next_seq == 1
    assert read_all(ts, transcript_id, from_seq=-5).events == ["up_to_date"]


def test_batches_are_bounded_by_bytes(ts):
    transcript_id = create_transcript(ts)
    sizes = [10, 500, 30, 2000, 5, 5, 5, 700, 1]
    ts.AppendEntries(
        transcripts_pb2.AppendEntriesRequest(
            id=transcript_id, entries=[entry("x" * n) for n in sizes]
        )
    )
    limit = 600
    stream = read_all(ts, transcript_id, max_batch_bytes=limit)
    assert stream.seqs == list(range(1, len(sizes) + 1))
    for batch in stream.batches:
        total = sum(len(e.content) + OVERHEAD for e in batch.entries)
        assert total <= limit or len(batch.entries) == 1, [e.seq for e in batch.entries]
        assert batch.next_seq == batch.entries[-1].seq + 1
        # A batch is never cut short: the next entry would not have fitted.
        following = batch.next_seq - 1
        if following < len(sizes) and len(batch.entries) >= 1:
            assert total + sizes[following] + OVERHEAD > limit
    assert [len(b.entries) for b in stream.batches] == [2, 1, 1, 3, 1, 1]
    # The default (64 KiB) takes them all at once.
    assert [len(b.entries) for b in read_all(ts, transcript_id).batches] == [len(sizes)]


def test_past_the_end_without_follow_is_out_of_range(ts):
    transcript_id = create_transcript(ts)
    append(ts, transcript_id, ["a", "b"])
    expect_error(
        lambda: read_all(ts, transcript_id, from_seq=4),
        grpc.StatusCode.OUT_OF_RANGE,
        next_seq="3",
    )


def test_past_the_end_of_a_sealed_transcript_is_out_of_range_even_when_following(ts):
    transcript_id = create_transcript(ts)
    append(ts, transcript_id, ["a"])
    ts.SealTranscript(transcripts_pb2.SealTranscriptRequest(id=transcript_id))
    expect_error(
        lambda: read_all(ts, transcript_id, from_seq=5, follow=True),
        grpc.StatusCode.OUT_OF_RANGE,
        next_seq="2",
    )


# --- Follow --------------------------------------------------------------------------


def _follow(ts, transcript_id: str, **fields):
    return ts.ReadTranscript(read_request(transcript_id, follow=True, **fields), timeout=60)


def test_follow_pushes_new_entries_at_once(ts):
    transcript_id = create_transcript(ts)
    append(ts, transcript_id, ["history"])
    call = _follow(ts, transcript_id)
    stream = messages_until(call, Stream(), lambda s: "up_to_date" in s.events)
    assert stream.seqs == [1]
    latencies = []
    for i in range(5):
        started = time.monotonic()
        append(ts, transcript_id, [f"live {i}"])
        count = len(stream.events)
        messages_until(call, stream, lambda s, n=count: len(s.events) >= n + 2)
        latencies.append(time.monotonic() - started)
        assert stream.events[-2:] == ["batch", "up_to_date"]
    call.cancel()
    assert stream.seqs == [1, 2, 3, 4, 5, 6]
    # Far below the 1 s fallback poll: the append's wakeup delivered them.
    assert max(latencies) < 0.5, latencies


def test_follow_from_past_the_end_waits_for_that_entry(ts):
    transcript_id = create_transcript(ts)
    append(ts, transcript_id, ["one"])
    call = _follow(ts, transcript_id, from_seq=3)
    stream = Stream()
    reader = threading.Thread(
        target=lambda: messages_until(call, stream, lambda s: bool(s.seqs)), daemon=True
    )
    reader.start()
    time.sleep(0.3)
    assert not stream.events  # seq 3 is two entries away: nothing to say yet
    append(ts, transcript_id, ["two"])
    time.sleep(0.3)
    # Seq 2 is before from_seq, so the stream delivers nothing, but it now stands
    # at the end.
    assert stream.events == ["up_to_date"]
    assert stream.last is not None and stream.last.up_to_date.next_seq == 3
    append(ts, transcript_id, ["three", "four"])
    reader.join(5)
    assert stream.events == ["up_to_date", "batch"] and stream.seqs == [3, 4]
    call.cancel()


def test_sealing_ends_every_follower_after_the_last_entry(ts):
    transcript_id = create_transcript(ts)
    calls = [_follow(ts, transcript_id) for _ in range(3)]
    streams = [messages_until(call, Stream(), lambda s: "up_to_date" in s.events) for call in calls]
    append(ts, transcript_id, ["final answer"])
    ts.SealTranscript(transcripts_pb2.SealTranscriptRequest(id=transcript_id))
    for call, stream in zip(calls, streams, strict=True):
        for message in call:  # ends by itself
            stream.take(message)
        assert stream.seqs == [1]
        assert stream.events[-1] == "sealed" and stream.last is not None
        assert stream.last.sealed.next_seq == 2


def test_deleting_a_followed_transcript_ends_the_stream_with_not_found(ts):
    transcript_id = create_transcript(ts)
    call = _follow(ts, transcript_id)
    messages_until(call, Stream(), lambda s: "up_to_date" in s.events)
    ts.DeleteTranscript(transcripts_pb2.DeleteTranscriptRequest(id=transcript_id))
    with pytest.raises(grpc.RpcError) as raised:
        next(call)
    assert raised.value.code() == NOT_FOUND


def test_follow_sees_each_entry_once_while_writers_race(ts):
    transcript_id = create_transcript(ts)
    call = _follow(ts, transcript_id, max_batch_bytes=256)
    stream = messages_until(call, Stream(), lambda s: "up_to_date" in s.events)
    writers, appends = 4, 25

    def write(w: int) -> None:
        for i in range(appends):
            append(ts, transcript_id, [f"{w}:{i}:{j}" for j in range(3)])

    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(write, range(writers)))
    total = writers * appends * 3
    messages_until(call, stream, lambda s: len(s.seqs) >= total)
    call.cancel()
    assert stream.seqs == list(range(1, total + 1))


# --- Search --------------------------------------------------------------------------


def test_search_finds_entries_with_snippets_best_first(ts):
    word = unique("zebra")
    one = create_transcript(ts)
    two = create_transcript(ts)
    append(ts, one, ["nothing to see", f"the {word} crossed the road", "more filler"])
    append(ts, two, [f"{word} {word} {word} everywhere", "unrelated"], role="assistant")
    reply = ts.SearchTranscripts(transcripts_pb2.SearchTranscriptsRequest(query=word))
    assert [(h.transcript_id, h.seq) for h in reply.hits] == [(two, 1), (one, 2)]
    assert reply.hits[0].role == "assistant" and reply.hits[0].score >= reply.hits[1].score
    assert f"**{word}**" in reply.hits[1].snippet and "crossed" in reply.hits[1].snippet
    assert reply.hits[0].create_time.seconds > 0
    scoped = ts.SearchTranscripts(transcripts_pb2.SearchTranscriptsRequest(query=word, id=one))
    assert [(h.transcript_id, h.seq) for h in scoped.hits] == [(one, 2)]
    # Every word must match.
    both = ts.SearchTranscripts(transcripts_pb2.SearchTranscriptsRequest(query=f"{word} road")).hits
    assert [(h.transcript_id, h.seq) for h in both] == [(one, 2)]


def test_search_pages(ts):
    word = unique("kiwi")
    transcript_id = create_transcript(ts)
    append(ts, transcript_id, [f"{word} number {i}" for i in range(7)])
    hits = all_pages(
        lambda token: ts.SearchTranscripts(
            transcripts_pb2.SearchTranscriptsRequest(query=word, page_size=3, page_token=token)
        ),
        lambda page: page.hits,
    )
    assert sorted(h.seq for h in hits) == list(range(1, 8))


def test_deleted_entries_are_not_found_by_search(ts):
    word = unique("ghost")
    transcript_id = create_transcript(ts)
    append(ts, transcript_id, [f"a {word}"])
    ts.DeleteTranscript(transcripts_pb2.DeleteTranscriptRequest(id=transcript_id))
    assert not ts.SearchTranscripts(transcripts_pb2.SearchTranscriptsRequest(query=word)).hits


# --- Commit --------------------------------------------------------------------------


def _append_write(transcript_id: str, contents: list[str], **fields) -> transaction_pb2.Write:
    return transaction_pb2.Write(
        append=transaction_pb2.AppendEntriesWrite(
            id=transcript_id, entries=[entry(c, "assistant") for c in contents], **fields
        )
    )


def test_commit_updates_a_record_and_appends_together(ts, stubs, collection):
    transcript_id = create_transcript(ts)
    create(stubs, collection, "run", {"state": "running"})
    reply = commit(
        stubs,
        [
            update_write(collection, "run", {"state": "done"}, expected_version=1),
            _append_write(transcript_id, ["step 1", "step 2"]),
            _append_write(transcript_id, ["step 3"], expected_next_seq=3),
        ],
    )
    assert reply.results[1].appended.first_seq == 1 and reply.results[1].appended.next_seq == 3
    assert (reply.results[2].appended.first_seq, reply.results[2].appended.next_seq) == (3, 4)
    assert get(stubs, collection, "run").version == 2
    assert [e.content for e in read_all(ts, transcript_id).entries] == [
        "step 1",
        "step 2",
        "step 3",
    ]


@pytest.mark.parametrize("failing", ["record", "sealed", "seq"])
def test_commit_with_an_append_is_all_or_nothing(ts, stubs, collection, failing):
    transcript_id = create_transcript(ts)
    append(ts, transcript_id, ["before"])
    create(stubs, collection, "run", {"state": "running"})
    if failing == "sealed":
        sealed_id = create_transcript(ts)
        ts.SealTranscript(transcripts_pb2.SealTranscriptRequest(id=sealed_id))
    writes = [
        _append_write(transcript_id, ["should vanish"]),
        update_write(
            collection,
            "run",
            {"state": "done"},
            expected_version=5 if failing == "record" else 1,
        ),
        _append_write(
            sealed_id if failing == "sealed" else transcript_id,
            ["also vanishes"],
            expected_next_seq=9 if failing == "seq" else 0,
        ),
    ]
    expected = {
        "record": (grpc.StatusCode.ABORTED, "1"),
        "sealed": (FAILED, "2"),
        "seq": (FAILED, "2"),
    }[failing]
    expect_error(lambda: commit(stubs, writes), expected[0], write_index=expected[1])
    assert get(stubs, collection, "run").version == 1
    assert read_all(ts, transcript_id).seqs == [1]
    assert get_transcript(ts, transcript_id).next_seq == 2


def test_commit_with_an_append_is_idempotent(ts, stubs, collection):
    transcript_id = create_transcript(ts)
    request_id = unique("req")
    writes = [
        transaction_pb2.Write(
            create=transaction_pb2.CreateRecordWrite(collection=collection, record_id="r")
        ),
        _append_write(transcript_id, ["once"]),
    ]
    first = commit(stubs, writes, request_id=request_id)
    again = commit(stubs, writes, request_id=request_id)
    assert again == first
    assert read_all(ts, transcript_id).seqs == [1]


def test_commit_append_wakes_followers(ts, stubs):
    transcript_id = create_transcript(ts)
    call = _follow(ts, transcript_id)
    stream = messages_until(call, Stream(), lambda s: "up_to_date" in s.events)
    started = time.monotonic()
    commit(stubs, [_append_write(transcript_id, ["via commit"])])
    messages_until(call, stream, lambda s: s.seqs == [1])
    assert time.monotonic() - started < 0.5
    call.cancel()
