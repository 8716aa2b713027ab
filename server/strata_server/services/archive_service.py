"""The archive tier of sealed transcripts: archive, read back, restore
(docs/transcripts.md, "Tiers").

Archiving, in order, and why each step is safe:

1. The hot entries are read in pages of PAGE and packed into segments of about
   SEGMENT_BYTES (storage/transcript_segments.py); nothing changes yet.
2. Each segment is staged in the blob store (zstd when it pays), pinned against the
   orphan-blob sweep under its SHA-256, then published: durable before any row
   names it. A crash here leaves only unnamed blobs, which the sweep takes.
3. One transaction (`TranscriptArchive.archive`) records the segment list, keeps
   the search rows, deletes the hot rows and audits; it checks the transcript is
   still sealed, hot and ending where the segments end, so an archive racing a
   delete, a restore or another archive writes nothing. The pins go afterwards.

A read of an archived transcript fetches its segment list, then its segments in
order, the next one while the batches of the one before are sent, and fits the
same batches a read of the hot rows fits (core/archive_rules.py): memory is two
segments plus one batch. A restore reads the segments one at a time
into one transaction that writes the hot rows back; the segments' blobs are left to
the sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from strata_server.core.archive_rules import (
    RestoredEntry,
    Segment,
    not_sealed,
    segment_index,
)
from strata_server.core.artifact_rules import PIN_TTL, BlobRef
from strata_server.core.errors import StrataError
from strata_server.core.jsontypes import JSON
from strata_server.core.models import Actor
from strata_server.core.transcript_rules import EntryBatch, Transcript
from strata_server.core.transfer_rows import ArchivedEntry
from strata_server.storage import entry_wire
from strata_server.storage.ports import ArtifactStore, BlobStore, TranscriptArchive, TranscriptStore
from strata_server.storage.transcript_segments import (
    CONTENT_TYPE,
    SEGMENT_BYTES,
    SegmentEntry,
    decode_wire,
    parse,
    read_spans,
    record,
)

PAGE = 1000
"""Hot entries read per query while archiving."""


@dataclass(frozen=True, slots=True)
class Archiver:
    """Moves sealed transcripts between the hot rows and segment objects; `pins` is
    the artifact store, whose blob pins keep the sweep off a segment until its row
    exists."""

    transcripts: TranscriptStore
    archive_rows: TranscriptArchive
    blobs: BlobStore
    pins: ArtifactStore
    segment_bytes: int = SEGMENT_BYTES

    async def archive(self, namespace: str, id: str, *, actor: Actor) -> Transcript:
        """Move a sealed transcript's entries to the archive tier; an archived one is
        returned unchanged. FailedPrecondition TRANSCRIPT_OPEN when it is open."""
        transcript = await self.transcripts.get_transcript(namespace, id)
        if transcript.archive_time is not None:
            return transcript
        if not transcript.sealed:
            raise not_sealed(id)
        pinned: list[str] = []
        try:
            segments = [segment async for segment in self._write_segments(namespace, id, pinned)]
            return await self.archive_rows.archive(namespace, id, segments, actor=actor)
        finally:
            for upload_id in pinned:
                await self.pins.unpin_blob(namespace, upload_id)

    async def _write_segments(
        self, namespace: str, id: str, pinned: list[str]
    ) -> AsyncIterator[Segment]:
        """Steps 1 and 2: every hot entry, in segments stored and pinned."""
        pending = bytearray()
        first_seq = start_offset = after = last_seq = 0
        while True:
            entries = await self.archive_rows.hot_entries(namespace, id, after, PAGE)
            for entry in entries:
                if not pending:
                    first_seq, start_offset = entry.seq, entry.start_offset
                pending += record(entry.size, entry.data_json, entry.wire)
                last_seq = entry.seq
                if len(pending) >= self.segment_bytes:
                    blob = await self._store(namespace, bytes(pending), pinned)
                    yield Segment(first_seq, entry.seq + 1, start_offset, blob)
                    pending = bytearray()
            if len(entries) < PAGE:
                break
            after = entries[-1].seq
        if pending:
            blob = await self._store(namespace, bytes(pending), pinned)
            yield Segment(first_seq, last_seq + 1, start_offset, blob)

    async def _store(self, namespace: str, content: bytes, pinned: list[str]) -> BlobRef:
        """Stage, pin and publish one segment's content."""
        staging = self.blobs.stage(CONTENT_TYPE, None, sink=False)
        try:
            await staging.write(content)
            staged = await staging.finish()
            upload_id = "archive-" + secrets.token_hex(12)
            await self.pins.pin_blob(
                namespace, upload_id, staged.sha256, datetime.now(UTC) + PIN_TTL
            )
            pinned.append(upload_id)
            stored = await staging.publish()
        finally:
            await staging.discard()
        return BlobRef(stored.sha256, stored.compression, staged.size, stored.stored_size)

    async def read(
        self, namespace: str, id: str, from_seq: int, max_bytes: int
    ) -> AsyncIterator[EntryBatch]:
        """An archived transcript's entries from `from_seq` to its end, in the batches
        a read of its hot rows would give (none when it has no segments, e.g. it was
        restored meanwhile: the caller then reads the hot rows)."""
        segments = await self.archive_rows.segments(namespace, id)
        index = segment_index(segments, from_seq)
        if index is None:
            return
        batch: list[bytes] = []
        total = 0
        async for segment, content in self._fetched(segments[index:]):
            sizes, wires = read_spans(content)
            first = max(0, from_seq - segment.first_seq)
            start = first
            for position in range(first, len(sizes)):
                size = sizes[position]
                if total + size > max_bytes and (batch or position > start):
                    batch += wires[start:position]
                    yield EntryBatch(b"".join(batch), segment.first_seq + position)
                    batch, total, start = [], 0, position
                total += size
            batch += wires[start:]
        if batch:
            yield EntryBatch(b"".join(batch), segments[-1].next_seq)

    async def _fetched(self, segments: Sequence[Segment]) -> AsyncIterator[tuple[Segment, bytes]]:
        """Each segment with its content, the next one fetched (and decompressed, in
        the blob store's threads) while the caller sends this one's batches: a read
        holds at most two segments."""
        ahead: asyncio.Task[bytes] | None = None
        try:
            for position, segment in enumerate(segments):
                content = await (ahead or self._content(segment))
                ahead = None
                if position + 1 < len(segments):
                    ahead = asyncio.ensure_future(self._content(segments[position + 1]))
                yield segment, content
        finally:
            if ahead is not None:
                ahead.cancel()
                with contextlib.suppress(asyncio.CancelledError, StrataError):
                    await ahead

    async def _content(self, segment: Segment) -> bytes:
        """One segment's content, whole."""
        stream = await self.blobs.open(segment.blob, 0, segment.blob.size)
        return b"".join([piece async for piece in stream])

    async def _entries(self, segment: Segment) -> list[SegmentEntry]:
        """One segment's records (the one segment a restore or export holds)."""
        return list(parse(await self._content(segment)))

    async def restore(self, namespace: str, id: str, *, actor: Actor) -> Transcript:
        """Bring an archived transcript's entries back to hot rows; a hot one is
        returned unchanged."""
        transcript = await self.transcripts.get_transcript(namespace, id)
        if transcript.archive_time is None:
            return transcript
        segments = await self.archive_rows.segments(namespace, id)
        return await self.archive_rows.restore(namespace, id, self._restored(segments), actor=actor)

    async def exported(self, namespace: str, id: str) -> AsyncIterator[list[ArchivedEntry]]:
        """An archived transcript's entries as an export writes them, one segment's
        at a time (ExportNamespace; services/transfer_export.py)."""
        segments = await self.archive_rows.segments(namespace, id)
        async for rows in self._restored(segments):
            yield [
                ArchivedEntry(
                    id,
                    row.seq,
                    row.start_offset,
                    row.size,
                    row.role,
                    row.content,
                    json.loads(row.data_json) if row.data_json else _wire_data(row),
                    row.create_time,
                )
                for row in rows
            ]

    async def _restored(self, segments: Sequence[Segment]) -> AsyncIterator[list[RestoredEntry]]:
        """The rows of each segment in turn."""
        for segment in segments:
            offset = segment.start_offset
            rows = []
            for entry in await self._entries(segment):
                fields = decode_wire(entry.wire)
                rows.append(
                    RestoredEntry(
                        fields.seq,
                        offset,
                        entry.size,
                        fields.role,
                        fields.content,
                        entry.data_json,
                        fields.create_time,
                        entry.wire,
                    )
                )
                offset += entry.size
            yield rows


def _wire_data(row: RestoredEntry) -> JSON | None:
    """An archived entry's data from its wire form: where it is kept for entries
    archived after migration 0023 (their segment record's data_json is empty)."""
    return entry_wire.tail_data(entry_wire.split_stored(row.wire, row.content)[1])
