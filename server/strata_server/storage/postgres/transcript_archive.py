"""`TranscriptArchive` on PostgreSQL: the segment list, the archived entries' search
rows (archived_entries, tsvector like transcript_entries) and the moves between
them and the hot rows, each in one transaction (migration 0020)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, LiteralString

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
from strata_server.storage.postgres import transcript_queries as q
from strata_server.storage.postgres.pool import Conn, Runner, borrowing
from strata_server.storage.postgres.record_rows import now
from strata_server.storage.postgres.transcripts import transcript_from_row

_ARCHIVABLE: LiteralString = (
    "FROM transcripts WHERE namespace = %s AND archive_time IS NULL"
    " AND seal_time IS NOT NULL AND seal_time < %s"
)
COUNT_ARCHIVABLE: LiteralString = "SELECT count(*) " + _ARCHIVABLE
ARCHIVABLE: LiteralString = "SELECT id " + _ARCHIVABLE + " ORDER BY seal_time, id LIMIT %s"
ARCHIVED: LiteralString = (
    "SELECT id, archive_time, next_seq FROM transcripts WHERE namespace = %(namespace)s"
    " AND archive_time IS NOT NULL AND (%(owner)s::text IS NULL OR owner = %(owner)s::text)"
)
SEGMENT_BLOBS: LiteralString = "SELECT sha256, namespace, transcript_id FROM transcript_segments"
HOT_ENTRIES: LiteralString = f"""
SELECT seq, start_offset, size, data::text, {q.STORED_WIRE}, role, content, create_time
FROM transcript_entries
WHERE namespace = %s AND transcript_id = %s AND seq > %s ORDER BY seq LIMIT %s
"""
LOCK: LiteralString = (
    f"SELECT {q.TRANSCRIPT_COLUMNS} FROM transcripts WHERE namespace = %s AND id = %s FOR UPDATE"
)
INSERT_SEGMENT: LiteralString = """
INSERT INTO transcript_segments
    (namespace, transcript_id, first_seq, next_seq, start_offset, sha256, compression, size,
     stored_size)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
SEGMENTS: LiteralString = """
SELECT first_seq, next_seq, start_offset, sha256, compression, size, stored_size
FROM transcript_segments WHERE namespace = %s AND transcript_id = %s ORDER BY first_seq
"""
KEEP_SEARCH_ROWS: LiteralString = """
INSERT INTO archived_entries (namespace, transcript_id, seq, role, content, create_time)
SELECT namespace, transcript_id, seq, role, content, create_time FROM transcript_entries
WHERE namespace = %s AND transcript_id = %s
"""
INSERT_ENTRY: LiteralString = """
INSERT INTO transcript_entries
    (namespace, transcript_id, seq, start_offset, size, role, content, create_time, wire_head,
     wire_tail)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
DROP_HOT: LiteralString = (
    "DELETE FROM transcript_entries WHERE namespace = %s AND transcript_id = %s"
)
DROP_SEARCH_ROWS: LiteralString = (
    "DELETE FROM archived_entries WHERE namespace = %s AND transcript_id = %s"
)
DROP_SEGMENTS: LiteralString = (
    "DELETE FROM transcript_segments WHERE namespace = %s AND transcript_id = %s"
)
SET_TIER: LiteralString = (
    "UPDATE transcripts SET archive_time = %s WHERE namespace = %s AND id = %s"
)
NO_STATEMENT_TIMEOUT: LiteralString = "SET LOCAL statement_timeout = 0"
"""For the moves' transactions: each copies or deletes every entry of a transcript in
one statement (a million rows and their search vectors), which no caller's filter
drives, so STRATA_DB_STATEMENT_TIMEOUT_SECONDS, meant for those, does not apply (as
index builds are exempt); LOCAL: the session's limit is back at the transaction's end."""
AUDIT: LiteralString = """
INSERT INTO audit_log
    (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
VALUES (%s, %s, %s, %s, %s, %s, %s, '["tier"]'::jsonb, NULL)
"""


async def _locked(conn: Conn, namespace: str, id: str) -> Transcript:
    cursor = await conn.execute(LOCK, (namespace, id))
    row = await cursor.fetchone()
    if row is None:
        raise NotFound(f"transcript {id} does not exist")
    return transcript_from_row(namespace, row)


async def _audit(conn: Conn, transcript: Transcript, action: str, actor: Actor) -> None:
    params: tuple[Any, ...] = (
        transcript.namespace,
        now(),
        actor.name,
        action,
        ENTITY,
        transcript.id,
        transcript.next_seq - 1,
    )
    await conn.execute(AUDIT, params)


class PostgresTranscriptArchive:
    """`TranscriptArchive` over PostgreSQL; the moves hold the transcript's row lock."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    @borrowing()
    async def count_archivable(self, conn: Conn, namespace: str, sealed_before: datetime) -> int:
        cursor = await conn.execute(COUNT_ARCHIVABLE, (namespace, sealed_before))
        row = await cursor.fetchone()
        return int(row[0]) if row is not None else 0

    @borrowing()
    async def archivable(
        self, conn: Conn, namespace: str, sealed_before: datetime, limit: int
    ) -> list[str]:
        cursor = await conn.execute(ARCHIVABLE, (namespace, sealed_before, limit))
        return [row[0] for row in await cursor.fetchall()]

    @borrowing()
    async def archived_transcripts(
        self, conn: Conn, namespace: str, owner: str | None
    ) -> dict[str, tuple[datetime, int]]:
        cursor = await conn.execute(ARCHIVED, {"namespace": namespace, "owner": owner})
        return {id: (at, next_seq) for id, at, next_seq in await cursor.fetchall()}

    @borrowing()
    async def segment_blobs(self, conn: Conn) -> dict[str, list[tuple[str, str]]]:
        cursor = await conn.execute(SEGMENT_BLOBS)
        named: dict[str, list[tuple[str, str]]] = {}
        for sha256, namespace, id in await cursor.fetchall():
            named.setdefault(sha256, []).append((namespace, id))
        return named

    @borrowing()
    async def hot_entries(
        self, conn: Conn, namespace: str, id: str, after_seq: int, limit: int
    ) -> Sequence[HotEntry]:
        cursor = await conn.execute(HOT_ENTRIES, (namespace, id, after_seq, limit))
        entries = []
        for (
            seq,
            start_offset,
            size,
            data,
            wire,
            role,
            content,
            create_time,
        ) in await cursor.fetchall():
            if wire is None:  # appended before migration 0009
                parsed = None if data is None else json.loads(data)
                wire = entry_wire.encode_entry(seq, role, content, parsed, create_time)
            entries.append(HotEntry(seq, start_offset, size, data, bytes(wire)))
        return entries

    @borrowing(transaction=True)
    async def archive(
        self, conn: Conn, namespace: str, id: str, segments: Sequence[Segment], *, actor: Actor
    ) -> Transcript:
        await conn.execute(NO_STATEMENT_TIMEOUT)
        transcript = await _locked(conn, namespace, id)
        check_still_archivable(transcript, segments)
        async with conn.cursor() as cursor:
            await cursor.executemany(
                INSERT_SEGMENT,
                segment_rows(namespace, id, segments),
            )
        await conn.execute(KEEP_SEARCH_ROWS, (namespace, id))
        await conn.execute(DROP_HOT, (namespace, id))
        await conn.execute(SET_TIER, (now(), namespace, id))
        await _audit(conn, transcript, ACTION_ARCHIVE, actor)
        return await _locked(conn, namespace, id)

    @borrowing()
    async def segments(self, conn: Conn, namespace: str, id: str) -> list[Segment]:
        cursor = await conn.execute(SEGMENTS, (namespace, id))
        return [
            Segment(
                first_seq,
                next_seq,
                start_offset,
                BlobRef(sha256, Compression(compression), size, stored_size),
            )
            for first_seq, next_seq, start_offset, sha256, compression, size, stored_size in (
                await cursor.fetchall()
            )
        ]

    @borrowing(transaction=True)
    async def restore(
        self,
        conn: Conn,
        namespace: str,
        id: str,
        entries: AsyncIterator[Sequence[RestoredEntry]],
        *,
        actor: Actor,
    ) -> Transcript:
        await conn.execute(NO_STATEMENT_TIMEOUT)
        transcript = await _locked(conn, namespace, id)
        if transcript.archive_time is None:
            return transcript
        async for batch in entries:
            async with conn.cursor() as cursor:
                await cursor.executemany(
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
                            entry.create_time,
                            *entry_wire.split_stored(entry.wire, entry.content),
                        )
                        for entry in batch
                    ],
                )
        await conn.execute(DROP_SEARCH_ROWS, (namespace, id))
        await conn.execute(DROP_SEGMENTS, (namespace, id))
        await conn.execute(SET_TIER, (None, namespace, id))
        await _audit(conn, transcript, ACTION_RESTORE, actor)
        return await _locked(conn, namespace, id)
