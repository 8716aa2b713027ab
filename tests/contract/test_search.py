"""SearchService.Search over a real channel, on both shapes: one ranked page across
records, transcript entries, artifact names and labels, and text artifacts'
content. Each test works in a namespace of its own, so every hit is its own."""

from __future__ import annotations

import time
from typing import Any

import grpc
import pytest

from strata.v1 import (
    artifacts_pb2,
    artifacts_pb2_grpc,
    records_pb2,
    search_pb2,
    search_pb2_grpc,
    transcripts_pb2,
    transcripts_pb2_grpc,
)
from tests.contract.artifacts_support import upload
from tests.contract.helpers import all_pages, expect_error, to_struct, unique
from tests.contract.transcript_helpers import entry

RECORD = search_pb2.SEARCH_KIND_RECORD
ENTRY = search_pb2.SEARCH_KIND_TRANSCRIPT_ENTRY
ARTIFACT = search_pb2.SEARCH_KIND_ARTIFACT
TEXT = search_pb2.SEARCH_KIND_ARTIFACT_TEXT
KiB = 1024


class Space:
    """One namespace of a test's own, and a way to put each kind of data in it."""

    def __init__(self, stubs: Any) -> None:
        self.namespace = unique("search-")
        self.records = stubs.records
        self.transcripts = transcripts_pb2_grpc.TranscriptServiceStub(stubs.channel)
        self.artifacts = artifacts_pb2_grpc.ArtifactServiceStub(stubs.channel)
        self.search_stub = search_pb2_grpc.SearchServiceStub(stubs.channel)

    def record(self, collection: str, record_id: str, owner: str = "", **data: Any) -> None:
        self.records.CreateRecord(
            records_pb2.CreateRecordRequest(
                namespace=self.namespace,
                collection=collection,
                record_id=record_id,
                data=to_struct(data),
                owner=owner,
            )
        )

    def transcript(self, contents: list[str], owner: str = "") -> str:
        transcript_id = unique("t")
        self.transcripts.CreateTranscript(
            transcripts_pb2.CreateTranscriptRequest(
                namespace=self.namespace, transcript_id=transcript_id, owner=owner
            )
        )
        self.transcripts.AppendEntries(
            transcripts_pb2.AppendEntriesRequest(
                namespace=self.namespace, id=transcript_id, entries=[entry(c) for c in contents]
            )
        )
        return transcript_id

    def artifact(self, data: bytes, **fields: Any) -> str:
        fields.setdefault("owner", "nobody")
        fields.setdefault("content_type", "text/plain")
        made = upload(self.artifacts, data, namespace=self.namespace, **fields)
        return made.id

    def search(self, query: str, **fields: Any) -> search_pb2.SearchResponse:
        return self.search_stub.Search(
            search_pb2.SearchRequest(namespace=self.namespace, query=query, **fields), timeout=30
        )


def target(hit: search_pb2.SearchResult) -> tuple[Any, ...]:
    """A hit as (kind, its target's fields)."""
    which = hit.WhichOneof("target")
    if which == "record":
        return (hit.kind, hit.record.collection, hit.record.id)
    if which == "entry":
        return (hit.kind, hit.entry.transcript_id, hit.entry.seq)
    return (hit.kind, hit.artifact.id)


@pytest.fixture
def space(server, stubs) -> Space:
    return Space(stubs)


def test_one_page_holds_hits_of_every_kind(space):
    word = unique("quokka")
    space.record("notes", "n1", title=f"the {word} smiled", count=3)
    chat = space.transcript(["hello there", f"a {word} said hi"], owner="ada")
    named = space.artifact(b"nothing to see\n", name=f"{word}.log", labels={"step": "build"})
    texted = space.artifact(f"line one\nthe {word} log line\n".encode(), name="run.txt")

    reply = space.search(word)

    assert sorted(target(hit) for hit in reply.hits) == sorted(
        [
            (RECORD, "notes", "n1"),
            (ENTRY, chat, 2),
            (ARTIFACT, named),
            (TEXT, texted),
        ]
    )
    assert reply.next_page_token == ""
    for hit in reply.hits:
        assert hit.score == pytest.approx(1.0), "each kind's best hit scores 1"
        assert f"**{word}**" in hit.snippet, (hit.kind, hit.snippet)
        assert hit.time.seconds > 0
    by_kind = {hit.kind: hit for hit in reply.hits}
    assert by_kind[ENTRY].owner == "ada" and by_kind[RECORD].owner == ""
    assert by_kind[ARTIFACT].artifact.name == f"{word}.log"
    assert "smiled" in by_kind[RECORD].snippet
    # Labels are searchable by key and by value.
    labelled = space.search(f"step build {word}")
    assert [target(hit) for hit in labelled.hits] == [(ARTIFACT, named)]


def test_kinds_and_collections_narrow_the_hits(space):
    word = unique("wombat")
    space.record("notes", "n1", text=word)
    space.record("tasks", "t1", text=word)
    chat = space.transcript([word])
    art = space.artifact(word.encode(), name="plain.txt")

    only_text = space.search(word, kinds=[TEXT])
    assert [target(hit) for hit in only_text.hits] == [(TEXT, art)]
    entries_and_names = space.search(word, kinds=[ENTRY, ARTIFACT])
    assert [target(hit) for hit in entries_and_names.hits] == [(ENTRY, chat, 1)]
    tasks = space.search(word, kinds=[RECORD], collections=["tasks"])
    assert [target(hit) for hit in tasks.hits] == [(RECORD, "tasks", "t1")]
    # Collections narrow only the records; every other kind is still searched.
    everything = space.search(word, collections=["notes"])
    assert sorted(target(hit) for hit in everything.hits) == sorted(
        [(RECORD, "notes", "n1"), (ENTRY, chat, 1), (TEXT, art)]
    )


def test_owner_narrows_every_kind(space):
    word = unique("numbat")
    space.record("notes", "n1", text=word)
    space.record("notes", "n2", owner="ada", text=word)
    space.record("notes", "n3", owner="bob", text=word)
    ada_chat = space.transcript([word], owner="ada")
    space.transcript([word], owner="bob")
    ada_art = space.artifact(word.encode(), owner="ada", name="a.txt")
    space.artifact(word.encode(), owner="bob", name="b.txt")

    ada = space.search(word, owner="ada")
    assert sorted(target(hit) for hit in ada.hits) == sorted(
        [(RECORD, "notes", "n2"), (ENTRY, ada_chat, 1), (TEXT, ada_art)]
    )
    assert {hit.owner for hit in ada.hits} == {"ada"}
    assert not space.search(word, owner="carol").hits
    # Without an owner every record is found, an unowned one with owner "".
    records = [hit for hit in space.search(word).hits if hit.kind == RECORD]
    assert sorted((hit.record.id, hit.owner) for hit in records) == [
        ("n1", ""),
        ("n2", "ada"),
        ("n3", "bob"),
    ]


def test_time_range_keeps_hits_of_its_window(space):
    word = unique("dingo")
    space.record("notes", "old", text=word)
    space.transcript([f"{word} early"])
    first = space.search(word).hits
    assert len(first) == 2
    time.sleep(0.05)
    space.record("notes", "new", text=word)
    late_chat = space.transcript([f"{word} late"])
    late_art = space.artifact(word.encode(), name="late.txt")
    everything = space.search(word).hits
    late = [hit for hit in everything if target(hit) not in {target(h) for h in first}]
    start = min((hit.time for hit in late), key=lambda t: (t.seconds, t.nanos))
    end = max((hit.time for hit in first), key=lambda t: (t.seconds, t.nanos))
    assert (start.seconds, start.nanos) > (end.seconds, end.nanos)

    after = space.search(word, start_time=start)
    assert sorted(target(hit) for hit in after.hits) == sorted(
        [(RECORD, "notes", "new"), (ENTRY, late_chat, 1), (TEXT, late_art)]
    )
    before = space.search(word, end_time=start)
    assert sorted(target(hit) for hit in before.hits) == sorted(target(h) for h in first)


def test_pages_cover_every_hit_once_in_the_one_page_order(space):
    word = unique("bilby")
    for i in range(7):
        space.record("notes", f"n{i}", text=f"{word} " * (i + 1) + "tail")
    space.transcript([f"{word} {i}" for i in range(5)])
    space.artifact(f"{word}\n".encode(), name=f"{word}.txt")

    whole = space.search(word, page_size=100)
    assert len(whole.hits) == 14 and whole.next_page_token == ""
    pages: list[int] = []

    def fetch(token: str) -> search_pb2.SearchResponse:
        page = space.search(word, page_size=4, page_token=token)
        pages.append(len(page.hits))
        return page

    paged = all_pages(fetch, lambda page: page.hits)
    assert [target(hit) for hit in paged] == [target(hit) for hit in whole.hits]
    assert pages == [4, 4, 4, 2]
    # A token belongs to its search: another query (or namespace) refuses it.
    token = space.search(word, page_size=4).next_page_token
    expect_error(
        lambda: space.search(f"{word} tail", page_size=4, page_token=token),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="page_token",
    )
    expect_error(
        lambda: space.search(word, page_size=4, page_token=token, kinds=[RECORD]),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="page_token",
    )


def test_ranking_is_best_first_within_a_kind_and_scores_merge_the_kinds(space):
    word = unique("potoroo")
    filler = " ".join(f"filler{i}" for i in range(40))
    space.record("notes", "once", text=f"{word} {filler}")
    space.record("notes", "thrice", text=f"{word} {word} {word}")
    chat = space.transcript([f"{word} {filler}", f"{word} {word} {word}"])

    hits = space.search(word).hits
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True)
    records = [target(hit) for hit in hits if hit.kind == RECORD]
    entries = [target(hit) for hit in hits if hit.kind == ENTRY]
    assert records == [(RECORD, "notes", "thrice"), (RECORD, "notes", "once")]
    assert entries == [(ENTRY, chat, 2), (ENTRY, chat, 1)]
    # Each kind's best scores 1, so the two bests lead, the record first on a tie.
    assert [target(hit) for hit in hits[:2]] == [records[0], entries[0]]
    assert all(0 < hit.score < 1 for hit in hits[2:])


def test_text_is_indexed_up_to_the_limit_and_only_for_text(space):
    head, tail, binary, untyped = (unique(w) for w in ("head", "tail", "binary", "untyped"))
    filler = b"lorem ipsum dolor sit amet\n" * (300 * KiB // 27)
    long_text = space.artifact(f"{head}\n".encode() + filler + f"{tail}\n".encode())
    space.artifact(b"\x00\x01\x02 " + binary.encode(), content_type="application/octet-stream")
    sniffed = space.artifact(f"{untyped} words".encode(), content_type="application/octet-stream")

    assert [target(h) for h in space.search(head, kinds=[TEXT]).hits] == [(TEXT, long_text)]
    assert not space.search(tail, kinds=[TEXT]).hits, "text past the limit was indexed"
    assert not space.search(binary).hits, "binary content was indexed as text"
    assert [target(h) for h in space.search(untyped).hits] == [(TEXT, sniffed)]


def test_deleted_data_is_not_found(space):
    word = unique("quoll")
    art = space.artifact(word.encode(), name=f"{word}.txt")
    space.record("notes", "n1", text=word)
    space.artifacts.DeleteArtifact(
        artifacts_pb2.DeleteArtifactRequest(namespace=space.namespace, id=art)
    )
    space.records.DeleteRecord(
        records_pb2.DeleteRecordRequest(namespace=space.namespace, collection="notes", id="n1")
    )
    assert not space.search(word).hits


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": "   "}, "query"),
        ({"kinds": [0]}, "kinds"),
        ({"kinds": [99]}, "kinds"),
        ({"page_token": "not-a-token"}, "page_token"),
        ({"page_size": -1}, "page_size"),
        ({"collections": ["Bad Name!"]}, "collections"),
        ({"collections": ["notes"], "kinds": [ENTRY]}, "collections"),
        ({"owner": "bad\nowner"}, "owner"),
    ],
)
def test_bad_input_is_invalid_argument(space, fields, field):
    request = {"query": "words", **fields}
    expect_error(
        lambda: space.search_stub.Search(
            search_pb2.SearchRequest(namespace=space.namespace, **request)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        field=field,
    )


def test_a_time_range_must_not_be_empty(space):
    now = int(time.time())
    expect_error(
        lambda: space.search("words", start_time={"seconds": now}, end_time={"seconds": now}),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="end_time",
    )
