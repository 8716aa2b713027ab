"""The TranscriptStore port: gapless appends, byte-bounded batches, seal, delete,
search."""

from __future__ import annotations

import asyncio

import pytest

from strata_server.core.errors import AlreadyExists, FailedPrecondition, NotFound
from strata_server.core.models import Idempotency
from strata_server.core.transcript_rules import (
    AppendEntries,
    NewTranscript,
    TranscriptListQuery,
    TranscriptSearch,
    new_entry,
)
from strata_server.storage.composite import Storage
from strata_server.storage.ports.write_context import WriteContext
from tests.ports.conftest import ACTOR
from tests.ports.helpers import audit
from tests.support.wire import sent

BIG = 1 << 20


async def append(storage: Storage, ns: str, id: str, *contents: str) -> None:
    entries = [new_entry("user", content, None, BIG) for content in contents]
    await storage.transcripts.append_entries(ns, AppendEntries(id, entries), WriteContext(ACTOR))


async def test_create_get_list_newest_first(storage: Storage, ns: str) -> None:
    new = NewTranscript("t1", owner="ann", title="first", labels={"k": "v"})
    created = await storage.transcripts.create_transcript(ns, new, WriteContext(ACTOR))
    assert (created.next_seq, created.size_bytes, created.seal_time) == (1, 0, None)
    assert created.labels == {"k": "v"} and created.owner == "ann"
    assert await storage.transcripts.get_transcript(ns, "t1") == created
    with pytest.raises(AlreadyExists):
        await storage.transcripts.create_transcript(ns, NewTranscript("t1"), WriteContext(ACTOR))
    with pytest.raises(NotFound):
        await storage.transcripts.get_transcript(ns, "nope")
    for id, owner in (("t2", "bob"), ("t3", "ann")):
        await storage.transcripts.create_transcript(
            ns, NewTranscript(id, owner), WriteContext(ACTOR)
        )
    listed, after = [], None
    while True:
        page = await storage.transcripts.list_transcripts(ns, TranscriptListQuery(2, after=after))
        listed += [t.id for t in page.items]
        if page.last_key is None:
            break
        after = page.last_key
    assert listed == ["t3", "t2", "t1"]
    anns = await storage.transcripts.list_transcripts(ns, TranscriptListQuery(10, "ann"))
    assert [t.id for t in anns.items] == ["t3", "t1"] and anns.last_key is None
    key = Idempotency("req", "fp")
    again = await storage.transcripts.create_transcript(
        ns, NewTranscript("t4"), WriteContext(ACTOR, key)
    )
    repeat = await storage.transcripts.create_transcript(
        ns, NewTranscript("t4"), WriteContext(ACTOR, key)
    )
    assert repeat == again


async def test_appends_are_gapless_and_read_in_byte_bounded_batches(
    storage: Storage, ns: str
) -> None:
    await storage.transcripts.create_transcript(ns, NewTranscript("t"), WriteContext(ACTOR))
    await asyncio.gather(*(append(storage, ns, "t", f"a{i}", f"b{i}") for i in range(10)))
    transcript = await storage.transcripts.get_transcript(ns, "t")
    assert transcript.next_seq == 21 and transcript.size_bytes > 0
    entries = sent(await storage.transcripts.read_batch(ns, "t", 1, BIG))
    assert [e.seq for e in entries] == list(range(1, 21))
    # Appends of one call stay together, in order.
    contents = [e.content for e in entries]
    for i in range(10):
        assert contents.index(f"b{i}") == contents.index(f"a{i}") + 1
    small = sent(await storage.transcripts.read_batch(ns, "t", 5, 1))
    assert [e.seq for e in small] == [5]  # at least one entry, however small the budget
    assert await storage.transcripts.read_batch(ns, "t", 21, BIG) is None
    assert await storage.transcripts.read_batch(ns, "nope", 1, BIG) is None


async def test_expected_next_seq_sealing_and_idempotent_appends(storage: Storage, ns: str) -> None:
    await storage.transcripts.create_transcript(ns, NewTranscript("t"), WriteContext(ACTOR))
    key = Idempotency("a1", "fp")
    entry = [new_entry("user", "hello", {"n": 1}, BIG)]
    first = await storage.transcripts.append_entries(
        ns, AppendEntries("t", entry, expected_next_seq=1), WriteContext(ACTOR, key)
    )
    again = await storage.transcripts.append_entries(
        ns, AppendEntries("t", entry, expected_next_seq=1), WriteContext(ACTOR, key)
    )
    assert again == first and (first.first_seq, first.next_seq) == (1, 2)
    with pytest.raises(FailedPrecondition) as stale:
        await storage.transcripts.append_entries(
            ns, AppendEntries("t", entry, expected_next_seq=1), WriteContext(ACTOR)
        )
    assert stale.value.reason == "SEQ_MISMATCH" and stale.value.metadata["next_seq"] == "2"
    sealed = await storage.transcripts.seal_transcript(ns, "t", actor=ACTOR)
    assert sealed.seal_time is not None
    assert await storage.transcripts.seal_transcript(ns, "t", actor=ACTOR) == sealed
    with pytest.raises(FailedPrecondition) as closed:
        await append(storage, ns, "t", "late")
    assert closed.value.reason == "TRANSCRIPT_SEALED"
    with pytest.raises(NotFound):
        await append(storage, ns, "nope", "x")
    [read] = sent(await storage.transcripts.read_batch(ns, "t", 1, BIG))
    assert (read.role, read.content, dict(read.data)) == ("user", "hello", {"n": 1})
    actions = [e.action for e in await audit(storage, ns, entity="transcript")]
    assert actions == ["create", "append", "seal"]


async def test_delete_and_search(storage: Storage, ns: str) -> None:
    for id in ("t1", "t2"):
        await storage.transcripts.create_transcript(ns, NewTranscript(id), WriteContext(ACTOR))
    await append(storage, ns, "t1", "the quick brown fox", "a lazy dog", "quick quick quick")
    await append(storage, ns, "t2", "quick thinking")
    hits = await storage.transcripts.search_transcripts(ns, TranscriptSearch("quick", 10))
    assert {(h.transcript_id, h.seq) for h in hits.items} == {("t1", 1), ("t1", 3), ("t2", 1)}
    assert hits.items[0].score >= hits.items[-1].score and hits.last_key is None
    assert all("quick" in h.snippet for h in hits.items)
    one = await storage.transcripts.search_transcripts(ns, TranscriptSearch("quick", 10, id="t2"))
    assert [(h.transcript_id, h.seq) for h in one.items] == [("t2", 1)]
    both = await storage.transcripts.search_transcripts(ns, TranscriptSearch("quick fox", 10))
    assert [(h.transcript_id, h.seq) for h in both.items] == [("t1", 1)]
    first = await storage.transcripts.search_transcripts(ns, TranscriptSearch("quick", 1))
    assert len(first.items) == 1 and first.last_key is not None

    await storage.transcripts.delete_transcript(ns, "t1", actor=ACTOR)
    with pytest.raises(NotFound):
        await storage.transcripts.get_transcript(ns, "t1")
    with pytest.raises(NotFound):
        await storage.transcripts.delete_transcript(ns, "t1", actor=ACTOR)
    assert await storage.transcripts.read_batch(ns, "t1", 1, BIG) is None
    hits = await storage.transcripts.search_transcripts(ns, TranscriptSearch("quick", 10))
    assert [h.transcript_id for h in hits.items] == ["t2"]
