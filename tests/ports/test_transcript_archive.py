"""The TranscriptArchive port with the archive service over it (services/
archive_service.py): on both engines, with the segments on local disk."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from strata_server.core.archive_rules import ACTION_ARCHIVE, ACTION_RESTORE
from strata_server.core.artifact_rules import StoredBlob
from strata_server.core.errors import FailedPrecondition, NotFound, Unavailable
from strata_server.core.transcript_rules import (
    AppendEntries,
    EntryBatch,
    NewTranscript,
    Tier,
    TranscriptSearch,
    new_entry,
)
from strata_server.services.archive_service import Archiver
from strata_server.services.blob_gc import check_blobs
from strata_server.services.transcripts_service import Sealed, Transcripts
from strata_server.storage.blobs.fs import DiskBlobStore
from strata_server.storage.composite import Storage
from strata_server.storage.memory.events import LocalEvents
from strata_server.storage.ports import BlobStaging
from strata_server.storage.ports.write_context import WriteContext
from tests.ports.conftest import ACTOR
from tests.ports.helpers import audit

BIG = 1 << 20
ENTRIES = 2500


@pytest.fixture
async def blobs(tmp_path: Path) -> AsyncIterator[DiskBlobStore]:
    store = await DiskBlobStore.connect(tmp_path / "data")
    yield store
    await store.close()


def archiver(storage: Storage, blobs: object) -> Archiver:
    return Archiver(
        storage.transcripts,
        storage.archive,
        blobs,  # type: ignore[arg-type]
        storage.artifacts,
        segment_bytes=16 * 1024,
    )


async def sealed_transcript(storage: Storage, ns: str, id: str = "t") -> None:
    await storage.transcripts.create_transcript(ns, NewTranscript(id), WriteContext(ACTOR))
    for start in range(0, ENTRIES, 500):
        entries = [
            new_entry(
                "user" if seq % 2 else "assistant",
                f"entry {seq} " + "word " * (seq % 40),
                {"n": seq, "even": seq % 2 == 0} if seq % 3 == 0 else None,
                BIG,
            )
            for seq in range(start + 1, start + 501)
        ]
        await storage.transcripts.append_entries(
            ns, AppendEntries(id, entries), WriteContext(ACTOR)
        )
    await storage.transcripts.seal_transcript(ns, id, actor=ACTOR)


async def hot_read(storage: Storage, ns: str, from_seq: int, max_bytes: int) -> list[tuple]:
    batches = []
    while (batch := await storage.transcripts.read_batch(ns, "t", from_seq, max_bytes)) is not None:
        batches.append((batch.wire, batch.next_seq))
        from_seq = batch.next_seq
    return batches


async def archived_read(arch: Archiver, ns: str, from_seq: int, max_bytes: int) -> list[tuple]:
    return [(b.wire, b.next_seq) async for b in arch.read(ns, "t", from_seq, max_bytes)]


async def test_archive_read_restore_round_trip(
    storage: Storage, ns: str, blobs: DiskBlobStore
) -> None:
    await sealed_transcript(storage, ns)
    before = await storage.transcripts.get_transcript(ns, "t")
    reads = {
        (start, size): await hot_read(storage, ns, start, size)
        for start in (1, 1234)
        for size in (3000, 65536)
    }
    arch = archiver(storage, blobs)

    archived = await arch.archive(ns, "t", actor=ACTOR)
    assert archived.tier is Tier.ARCHIVED and archived.next_seq == before.next_seq
    assert archived.size_bytes == before.size_bytes
    assert await storage.transcripts.read_batch(ns, "t", 1, 65536) is None
    segments = await storage.archive.segments(ns, "t")
    assert len(segments) > 3 and segments[-1].next_seq == ENTRIES + 1
    assert sum(s.blob.stored_size for s in segments) < sum(s.blob.size for s in segments)
    for (start, size), expected in reads.items():
        assert await archived_read(arch, ns, start, size) == expected
    assert await arch.archive(ns, "t", actor=ACTOR) == archived  # idempotent
    for query in (TranscriptSearch("1234", 10), TranscriptSearch("1234", 10, id="t")):
        hits = await storage.transcripts.search_transcripts(ns, query)
        assert [(h.transcript_id, h.seq, h.role) for h in hits.items] == [("t", 1234, "assistant")]
        assert "1234" in hits.items[0].snippet

    restored = await arch.restore(ns, "t", actor=ACTOR)
    assert restored.tier is Tier.HOT and restored.next_seq == before.next_seq
    assert await storage.archive.segments(ns, "t") == []
    for (start, size), expected in reads.items():
        assert await hot_read(storage, ns, start, size) == expected
    assert await arch.restore(ns, "t", actor=ACTOR) == restored  # idempotent
    actions = [entry.action for entry in await audit(storage, ns)]
    assert actions.count(ACTION_ARCHIVE) == 1 and actions.count(ACTION_RESTORE) == 1

    again = await arch.archive(ns, "t", actor=ACTOR)  # the same segments, stored once
    assert again.tier is Tier.ARCHIVED
    await storage.transcripts.delete_transcript(ns, "t", actor=ACTOR)
    assert await storage.archive.segments(ns, "t") == []
    names = {s.blob.sha256 for s in segments}
    assert await storage.artifacts.unreferenced_blobs(sorted(names), again.update_time) == names


async def test_segments_keep_their_blobs_from_the_sweep(
    storage: Storage, ns: str, blobs: DiskBlobStore
) -> None:
    await sealed_transcript(storage, ns)
    await archiver(storage, blobs).archive(ns, "t", actor=ACTOR)
    names = [s.blob.sha256 for s in await storage.archive.segments(ns, "t")]
    now = (await storage.transcripts.get_transcript(ns, "t")).update_time
    assert await storage.artifacts.unreferenced_blobs(names, now) == set()


async def test_only_a_sealed_transcript_is_archived(
    storage: Storage, ns: str, blobs: DiskBlobStore
) -> None:
    await storage.transcripts.create_transcript(ns, NewTranscript("open"), WriteContext(ACTOR))
    with pytest.raises(FailedPrecondition) as raised:
        await archiver(storage, blobs).archive(ns, "open", actor=ACTOR)
    assert raised.value.reason == "TRANSCRIPT_OPEN"
    with pytest.raises(NotFound):
        await archiver(storage, blobs).archive(ns, "missing", actor=ACTOR)


class FailingStaging:
    """A staging whose publish fails once `budget` segments were published."""

    def __init__(self, inner: BlobStaging, budget: list[int]) -> None:
        self._inner = inner
        self._budget = budget

    async def write(self, chunk: bytes) -> None:
        await self._inner.write(chunk)

    async def finish(self):  # type: ignore[no-untyped-def]
        return await self._inner.finish()

    async def publish(self) -> StoredBlob:
        if self._budget[0] == 0:
            raise Unavailable("the blob store went away")
        self._budget[0] -= 1
        return await self._inner.publish()

    async def discard(self) -> None:
        await self._inner.discard()


class FailingBlobs:
    """A disk blob store that fails after a few segments were stored."""

    def __init__(self, inner: DiskBlobStore, budget: int) -> None:
        self._inner = inner
        self._budget = [budget]

    def stage(self, content_type: str, sha256: str | None, *, sink: bool) -> FailingStaging:
        return FailingStaging(self._inner.stage(content_type, sha256, sink=sink), self._budget)

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


async def test_a_failed_archive_leaves_the_hot_rows(
    storage: Storage, ns: str, blobs: DiskBlobStore
) -> None:
    await sealed_transcript(storage, ns)
    expected = await hot_read(storage, ns, 1, 65536)
    with pytest.raises(Unavailable):
        await archiver(storage, FailingBlobs(blobs, 2)).archive(ns, "t", actor=ACTOR)
    transcript = await storage.transcripts.get_transcript(ns, "t")
    assert transcript.tier is Tier.HOT
    assert await storage.archive.segments(ns, "t") == []
    assert await hot_read(storage, ns, 1, 65536) == expected
    assert ACTION_ARCHIVE not in [entry.action for entry in await audit(storage, ns)]


async def test_the_integrity_check_counts_segments_as_named(
    storage: Storage, ns: str, blobs: DiskBlobStore
) -> None:
    await sealed_transcript(storage, ns)
    await archiver(storage, blobs).archive(ns, "t", actor=ACTOR)
    named = await storage.archive.segment_blobs()
    assert len(named) > 3 and all(owners == [(ns, "t")] for owners in named.values())
    blind = await check_blobs(storage.artifacts, blobs)
    assert {sha256 for sha256, _ in blind.orphans} == set(named)
    report = await check_blobs(storage.artifacts, blobs, segments=named)
    assert report.orphans == [] and report.orphan_bytes == 0 and report.missing_segments == []
    lost = sorted(named)[0]
    [gone] = [blob async for blob in blobs.list_blobs() if blob.sha256 == lost]
    await blobs.delete(gone)
    report = await check_blobs(storage.artifacts, blobs, segments=named)
    assert report.missing_segments == [(ns, "t", lost)]


async def test_a_read_goes_on_from_the_archive_when_archived_meanwhile(
    storage: Storage, ns: str, blobs: DiskBlobStore
) -> None:
    await sealed_transcript(storage, ns)
    expected = await hot_read(storage, ns, 1, 2000)
    arch = archiver(storage, blobs)
    events = LocalEvents()
    service = Transcripts(storage.transcripts, events, heartbeat_seconds=5, archived=arch.read)
    got = []
    try:
        async for item in service.read(ns, "t", 1, 2000, follow=False):
            if isinstance(item, EntryBatch):
                got.append((item.wire, item.next_seq))
                if len(got) == 3:
                    await arch.archive(ns, "t", actor=ACTOR)
            else:
                assert isinstance(item, Sealed)
    finally:
        await events.close()
    assert got == expected
