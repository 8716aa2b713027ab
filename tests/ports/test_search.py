"""The SearchIndex port: each kind's full-text search on both engines, best first
with ties in target order, and the artifact index kept with the artifact rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from strata_server.core.search_rules import KindQuery, SearchKind, SearchRequest
from strata_server.core.transcript_rules import AppendEntries, NewTranscript, new_entry
from strata_server.storage.composite import Storage
from strata_server.storage.ports.write_context import WriteContext
from tests.ports.conftest import ACTOR
from tests.ports.helpers import create
from tests.ports.test_artifacts import upload

EVERY = frozenset(SearchKind)


def query(kind: SearchKind, text: str, limit: int = 10, **fields: object) -> KindQuery:
    return KindQuery(kind, SearchRequest(text, EVERY, **fields), limit)  # type: ignore[arg-type]


async def targets(storage: Storage, ns: str, kind: SearchKind, text: str, **kw: object) -> list:
    return [hit.target for hit in await storage.search.search_kind(ns, query(kind, text, **kw))]


async def test_records_best_first_across_collections(storage: Storage, ns: str) -> None:
    await create(storage, ns, "once", {"t": "apple " + " ".join(f"w{i}" for i in range(30))})
    await create(storage, ns, "thrice", {"t": "apple apple apple"}, collection="d")
    await create(storage, ns, "none", {"t": "pear", "n": 3})
    await create(storage, "other" + ns, "elsewhere", {"t": "apple"})
    hits = await storage.search.search_kind(ns, query(SearchKind.RECORD, "apple"))
    assert [hit.target for hit in hits] == [("d", "thrice"), ("c", "once")]
    assert hits[0].rank > hits[1].rank > 0
    assert hits[0].owner == ""
    texts = await storage.search.hit_texts(ns, SearchKind.RECORD, [("d", "thrice"), ("c", "x")])
    assert texts == {("d", "thrice"): ["apple apple apple"]}
    assert await targets(storage, ns, SearchKind.RECORD, "apple", collections=("c",)) == [
        ("c", "once")
    ]
    assert await targets(storage, ns, SearchKind.RECORD, "apple", limit=1) == [("d", "thrice")]
    assert await targets(storage, ns, SearchKind.RECORD, "apple", owner="ann") == []
    assert await targets(storage, ns, SearchKind.RECORD, "!!!") == []


async def test_entries_by_owner_and_time(storage: Storage, ns: str) -> None:
    for id, owner in (("t1", "ann"), ("t2", "bob")):
        await storage.transcripts.create_transcript(
            ns, NewTranscript(id, owner=owner), WriteContext(ACTOR)
        )
        entries = [new_entry("user", text, None, 1 << 20) for text in ("kiwi here", "no")]
        await storage.transcripts.append_entries(
            ns, AppendEntries(id, entries), WriteContext(ACTOR)
        )
    hits = await storage.search.search_kind(ns, query(SearchKind.TRANSCRIPT_ENTRY, "kiwi"))
    assert [hit.target for hit in hits] == [("t1", 1), ("t2", 1)]  # a tie: target order
    assert [hit.owner for hit in hits] == ["ann", "bob"]
    texts = await storage.search.hit_texts(ns, SearchKind.TRANSCRIPT_ENTRY, [("t2", 1)])
    assert texts == {("t2", 1): ["kiwi here"]}
    assert await targets(storage, ns, SearchKind.TRANSCRIPT_ENTRY, "kiwi", owner="bob") == [
        ("t2", 1)
    ]
    at = hits[0].time
    later = at + timedelta(hours=1)
    assert await targets(storage, ns, SearchKind.TRANSCRIPT_ENTRY, "kiwi", start_time=later) == []
    assert await targets(storage, ns, SearchKind.TRANSCRIPT_ENTRY, "kiwi", end_time=at) == []
    assert len(await targets(storage, ns, SearchKind.TRANSCRIPT_ENTRY, "kiwi", start_time=at)) == 2


async def test_artifact_names_labels_and_text(storage: Storage, ns: str) -> None:
    made = await upload(storage, ns, "report", labels={"stage": "deploy"})
    other = await upload(storage, ns, "notes")
    assert await storage.search.set_artifact_text(ns, other.id, "the report was late")
    assert await targets(storage, ns, SearchKind.ARTIFACT, "report") == [(made.id, "report.txt")]
    assert await targets(storage, ns, SearchKind.ARTIFACT, "stage deploy") == [
        (made.id, "report.txt")
    ]
    texts = await storage.search.search_kind(ns, query(SearchKind.ARTIFACT_TEXT, "report"))
    assert [hit.target for hit in texts] == [(other.id, "notes.txt")]
    assert texts[0].owner == "ann"
    assert await storage.search.hit_texts(ns, SearchKind.ARTIFACT_TEXT, [texts[0].target]) == {
        (other.id, "notes.txt"): ["the report was late"]
    }
    assert await storage.search.hit_texts(ns, SearchKind.ARTIFACT, [(made.id, "report.txt")]) == {
        (made.id, "report.txt"): ["report.txt", "stage deploy"]
    }
    # Replacing the text replaces what is found; a deleted artifact leaves the index.
    assert await storage.search.set_artifact_text(ns, other.id, "on time")
    assert await targets(storage, ns, SearchKind.ARTIFACT_TEXT, "report") == []
    await storage.artifacts.delete_artifact(ns, other.id, actor=ACTOR)
    assert await targets(storage, ns, SearchKind.ARTIFACT_TEXT, "time") == []
    assert not await storage.search.set_artifact_text(ns, other.id, "gone")
    future = datetime.now(UTC) + timedelta(days=1)
    assert await targets(storage, ns, SearchKind.ARTIFACT, "report", start_time=future) == []


async def test_indexed_artifacts_are_those_with_text(storage: Storage, ns: str) -> None:
    with_text = await upload(storage, ns, "indexed-one")
    without = await upload(storage, ns, "indexed-two")
    assert await storage.search.indexed_artifacts(ns, [with_text.id, without.id]) == set()
    assert await storage.search.set_artifact_text(ns, with_text.id, "some words")
    ids = [with_text.id, without.id, "no-such-id"]
    assert await storage.search.indexed_artifacts(ns, ids) == {with_text.id}
    assert await storage.search.indexed_artifacts("other" + ns, ids) == set()
