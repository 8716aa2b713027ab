"""`TranscriptArchive` on SQLite: the segment list, the archived entries' search rows
(archived_entries, FTS5 like transcript_entries) and the moves between them and the
hot rows, each in one write transaction (migration 0020)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

from strata_server.core.archive_rules import (
    ACTION_ARCHIVE,
    ACTION_RESTORE,
    HotEntry,
    RestoredEntry,
    Segment,
    check_still_archivable,
    segment_rows,
)
from strata_server.core.artifact_rules import BlobRef, Compression
from strata_server.core.errors import NotFound
from strata_server.core.models import Actor
from strata_server.core.transcript_rules import ENTITY, Transcript
from strata_server.storage import entry_wire
from strata_server.storage.sqlite.connection import Connections, Transaction
from strata_server.storage.sqlite.dialect import from_micros, to_micros
from strata_server.storage.sqlite.shared_sql import INSERT_AUDIT
from strata_server.storage.sqlite.transcript_queries import (
    INDEX_ENTRIES,
    INSERT_ENTRY,
    SELECT_TRANSCRIPT,
    STORED_WIRE,
    UNINDEX_ENTRIES,
)
from strata_server.storage.sqlite.transcript_rows import transcript_from_row

_ARCHIVABLE = (
    "FROM transcripts WHERE namespace = ? AND archive_time IS NULL"
    " AND seal_time IS NOT NULL AND seal_time < ?"
)
COUNT_ARCHIVABLE = "SELECT count(*) " + _ARCHIVABLE
ARCHIVABLE = "SELECT id " + _ARCHIVABLE + " ORDER BY seal_time, id LIMIT ?"
ARCHIVED = (
    "SELECT id, archive_time, next_seq FROM transcripts"
    " WHERE namespace = ? AND archive_time IS NOT NULL AND (? IS NULL OR owner = ?)"
)
SEGMENT_BLOBS = "SELECT sha256, namespace, transcript_id FROM transcript_segments"
HOT_ENTRIES = f"""
SELECT seq, start_offset, size, data, {STORED_WIRE}, role, content, create_time
FROM transcript_entries
WHERE namespace = ? AND transcript_id = ? AND seq > ? ORDER BY seq LIMIT ?
"""
INSERT_SEGMENT = """
INSERT INTO transcript_segments
    (namespace, transcript_id, first_seq, next_seq, start_offset, sha256, compression, size,
     stored_size)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
SEGMENTS = """
SELECT first_seq, next_seq, start_offset, sha256, compression, size, stored_size
FROM transcript_segments WHERE namespace = ? AND transcript_id = ? ORDER BY first_seq
"""
KEEP_SEARCH_ROWS = """
INSERT INTO archived_entries (namespace, transcript_id, seq, role, content, create_time)
SELECT namespace, transcript_id, seq, role, content, create_time FROM transcript_entries
WHERE namespace = ? AND transcript_id = ? ORDER BY seq
"""
INDEX_SEARCH_ROWS = """
INSERT INTO archived_entries_fts (rowid, content)
SELECT rowid, content FROM archived_entries WHERE namespace = ? AND transcript_id = ?
"""
DROP_HOT = "DELETE FROM transcript_entries WHERE namespace = ? AND transcript_id = ?"
DROP_SEARCH_ROWS = "DELETE FROM archived_entries WHERE namespace = ? AND transcript_id = ?"
DROP_SEGMENTS = "DELETE FROM transcript_segments WHERE namespace = ? AND transcript_id = ?"
SET_TIER = "UPDATE transcripts SET archive_time = ? WHERE namespace = ? AND id = ?"


async def _transcript(tx: Transaction, namespace: str, id: str) -> Transcript:
    rows = await tx.fetchall(SELECT_TRANSCRIPT, (namespace, id))
    if not rows:
        raise NotFound(f"transcript {id} does not exist")
    return transcript_from_row(rows[0])


async def _audit(tx: Transaction, transcript: Transcript, action: str, actor: Actor) -> None:
    now_us = to_micros(datetime.now(UTC))
    await tx.execute(
        INSERT_AUDIT,
        (
            transcript.namespace,
            now_us,
            actor.name,
            action,
            ENTITY,
            transcript.id,
            transcript.next_seq - 1,
            json.dumps(["tier"]),
            None,
        ),
    )


class SqliteTranscriptArchive:
    """`TranscriptArchive` over SQLite."""

    def __init__(self, db: Connections) -> None:
        self._db = db

    async def count_archivable(self, namespace: str, sealed_before: datetime) -> int:
        rows = await self._db.fetchall(COUNT_ARCHIVABLE, (namespace, to_micros(sealed_before)))
        return int(rows[0][0])

    async def archivable(self, namespace: str, sealed_before: datetime, limit: int) -> list[str]:
        rows = await self._db.fetchall(ARCHIVABLE, (namespace, to_micros(sealed_before), limit))
        return [row[0] for row in rows]

    async def archived_transcripts(
        self, namespace: str, owner: str | None
    ) -> dict[str, tuple[datetime, int]]:
        rows = await self._db.fetchall(ARCHIVED, (namespace, owner, owner))
        return {id: (from_micros(at), next_seq) for id, at, next_seq in rows}

    async def segment_blobs(self) -> dict[str, list[tuple[str, str]]]:
        named: dict[str, list[tuple[str, str]]] = {}
        for sha256, namespace, id in await self._db.fetchall(SEGMENT_BLOBS):
            named.setdefault(sha256, []).append((namespace, id))
        return named

    async def hot_entries(
        self, namespace: str, id: str, after_seq: int, limit: int
    ) -> Sequence[HotEntry]:
        rows = await self._db.fetchall(HOT_ENTRIES, (namespace, id, after_seq, limit))
        entries = []
        for seq, start_offset, size, data, wire, role, content, create_time in rows:
            if wire is None:  # appended before migration 0009
                parsed = json.loads(data) if data is not None else None
                wire = entry_wire.encode_entry(seq, role, content, parsed, from_micros(create_time))
            entries.append(HotEntry(seq, start_offset, size, data, bytes(wire)))
        return entries

    async def archive(
        self, namespace: str, id: str, segments: Sequence[Segment], *, actor: Actor
    ) -> Transcript:
        now = datetime.now(UTC)
        async with self._db.transaction() as tx:
            transcript = await _transcript(tx, namespace, id)
            check_still_archivable(transcript, segments)
            await tx.executemany(
                INSERT_SEGMENT,
                segment_rows(namespace, id, segments),
            )
            await tx.execute(KEEP_SEARCH_ROWS, (namespace, id))
            await tx.execute(INDEX_SEARCH_ROWS, (namespace, id))
            await tx.execute(UNINDEX_ENTRIES, (namespace, id))
            await tx.execute(DROP_HOT, (namespace, id))
            await tx.execute(SET_TIER, (to_micros(now), namespace, id))
            await _audit(tx, transcript, ACTION_ARCHIVE, actor)
            return await _transcript(tx, namespace, id)

    async def segments(self, namespace: str, id: str) -> list[Segment]:
        rows = await self._db.fetchall(SEGMENTS, (namespace, id))
        return [
            Segment(
                first_seq,
                next_seq,
                start_offset,
                BlobRef(sha256, Compression(compression), size, stored_size),
            )
            for first_seq, next_seq, start_offset, sha256, compression, size, stored_size in rows
        ]

    async def restore(
        self,
        namespace: str,
        id: str,
        entries: AsyncIterator[Sequence[RestoredEntry]],
        *,
        actor: Actor,
    ) -> Transcript:
        async with self._db.transaction() as tx:
            transcript = await _transcript(tx, namespace, id)
            if transcript.archive_time is None:
                return transcript
            async for batch in entries:
                await tx.executemany(
                    INSERT_ENTRY,
                    [
                        (
                            namespace,
                            id,
                            entry.seq,
                            entry.start_offset,
                            entry.size,
                            entry.role,
                            entry.content,
                            to_micros(entry.create_time),
                            *entry_wire.split_stored(entry.wire, entry.content),
                        )
                        for entry in batch
                    ],
                )
            await tx.execute(DROP_SEARCH_ROWS, (namespace, id))
            await tx.execute(INDEX_ENTRIES, (namespace, id, 1, transcript.next_seq))
            await tx.execute(DROP_SEGMENTS, (namespace, id))
            await tx.execute(SET_TIER, (None, namespace, id))
            await _audit(tx, transcript, ACTION_RESTORE, actor)
            return await _transcript(tx, namespace, id)
