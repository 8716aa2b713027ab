"""Transcripts over SQLite (the `TranscriptStore` adapter).

Writes run in one `BEGIN IMMEDIATE` transaction on the writer: read the transcript
row, let `core.transcript_rules.check_append` decide, insert the entries with their seqs
and offsets (and index them for search), move the row's next_seq and size_bytes,
append the audit entry. SQLite
has one writer at a time, so appends are serialized there (the embedded shape has
no parallel writers to keep apart) and seqs come out gapless.

Reads run on the reader pool. A batch is one keyset query over the offset index:
the entries starting within `max_bytes` of entry `from_seq`'s start.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from strata_server.core.errors import AlreadyExists, NotFound
from strata_server.core.models import Actor, Page
from strata_server.core.quota_rules import explained
from strata_server.core.transcript_rules import (
    ENTITY,
    ENTRY_OVERHEAD,
    Appended,
    AppendEntries,
    EntryBatch,
    NewTranscript,
    Transcript,
    TranscriptHit,
    TranscriptListQuery,
    TranscriptSearch,
    appended_from_json,
    appended_to_json,
    check_append,
    fit_batch,
    relative_offsets,
    total_size,
    transcript_from_json,
    transcript_to_json,
)
from strata_server.storage import entry_wire
from strata_server.storage.ports import QuotaStore
from strata_server.storage.ports.write_context import WriteContext
from strata_server.storage.sqlite.connection import Connections, Transaction
from strata_server.storage.sqlite.dialect import from_micros, to_micros
from strata_server.storage.sqlite.record_rows import match_expression
from strata_server.storage.sqlite.request_log import store_result, stored_result
from strata_server.storage.sqlite.shared_sql import INSERT_AUDIT
from strata_server.storage.sqlite.transcript_queries import (
    ADVANCE,
    DELETE_ENTRIES,
    DELETE_TRANSCRIPT,
    INDEX_ENTRIES,
    INSERT_ENTRY,
    INSERT_TRANSCRIPT,
    LIST_TRANSCRIPTS,
    READ_ENTRIES,
    READ_LIMIT_FLOOR,
    SEAL,
    SEARCH_ALL,
    SEARCH_ONE,
    SELECT_APPEND_STATE,
    SELECT_TRANSCRIPT,
    STATES_CHUNK,
    UNINDEX_ENTRIES,
    select_states,
)
from strata_server.storage.sqlite.transcript_rows import (
    entry_from_row,
    list_key,
    transcript_from_row,
)


def _now() -> datetime:
    return datetime.now(UTC)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _audit(
    namespace: str,
    now_us: int,
    actor: Actor,
    action: str,
    id: str,
    version: int,
    changed: list[str],
    request_id: str | None = None,
) -> tuple[Any, ...]:
    return (namespace, now_us, actor.name, action, ENTITY, id, version, _dumps(changed), request_id)


async def append_in(
    tx: Transaction,
    namespace: str,
    append: AppendEntries,
    now: datetime,
    *,
    actor: Actor,
    request_id: str | None,
) -> Appended:
    """Append inside the open write transaction `tx` (an AppendEntries call's, or a
    Commit's), with its audit entry."""
    rows = await tx.fetchall(SELECT_APPEND_STATE, (namespace, append.id))
    if not rows:
        raise NotFound(f"transcript {append.id} does not exist")
    next_seq, size_bytes, seal_time = rows[0]
    check_append(append.id, next_seq, seal_time is not None, append.expected_next_seq)
    now_us = to_micros(now)
    offsets = relative_offsets(append.entries)
    time = entry_wire.time_field(now)
    await tx.executemany(
        INSERT_ENTRY,
        [
            (
                namespace,
                append.id,
                next_seq + index,
                size_bytes + offsets[index],
                entry.size,
                entry.role,
                entry.content,
                now_us,
                *entry_wire.stored_parts(
                    next_seq + index, entry.role, entry.content, entry.data, time
                ),
            )
            for index, entry in enumerate(append.entries)
        ],
    )
    new_next = next_seq + len(append.entries)
    await tx.execute(INDEX_ENTRIES, (namespace, append.id, next_seq, new_next))
    await tx.execute(
        ADVANCE, (new_next, size_bytes + total_size(append.entries), now_us, namespace, append.id)
    )
    await tx.execute(
        INSERT_AUDIT,
        _audit(
            namespace, now_us, actor, "append", append.id, new_next - 1, ["entries"], request_id
        ),
    )
    return Appended(append.id, next_seq, new_next)


class SqliteTranscripts:
    """`TranscriptStore` over SQLite."""

    def __init__(self, db: Connections, quotas: QuotaStore) -> None:
        self._db = db
        self._quotas = quotas

    async def append_entries(
        self, namespace: str, append: AppendEntries, context: WriteContext
    ) -> Appended:
        """All or none in one write transaction. The context has no notices here: the
        embedded shape has no other replicas."""
        idempotency = context.idempotency

        async def append_all() -> Appended:
            now = _now()
            async with self._db.transaction() as tx:
                if idempotency is not None:
                    stored = await stored_result(tx, namespace, idempotency)
                    if stored is not None:
                        return appended_from_json(stored)
                appended = await append_in(
                    tx, namespace, append, now, actor=context.actor, request_id=context.request_id
                )
                if idempotency is not None:
                    stored = appended_to_json(appended)
                    await store_result(tx, namespace, idempotency, stored, to_micros(now))
            return appended

        return await explained(namespace, self._quotas.list_quotas, append_all())

    async def create_transcript(
        self, namespace: str, new: NewTranscript, context: WriteContext
    ) -> Transcript:
        idempotency = context.idempotency
        now = _now()
        now_us = to_micros(now)
        transcript = Transcript(
            namespace,
            new.id,
            new.owner,
            new.title,
            dict(new.labels),
            1,
            0,
            now,
            now,
            parent=new.parent,
        )
        parent = new.parent
        async with self._db.transaction() as tx:
            if idempotency is not None:
                stored = await stored_result(tx, namespace, idempotency)
                if stored is not None:
                    return transcript_from_json(stored)
            inserted = await tx.fetchall(
                INSERT_TRANSCRIPT,
                (
                    namespace,
                    new.id,
                    new.owner,
                    new.title,
                    _dumps(new.labels),
                    now_us,
                    now_us,
                    parent.collection if parent is not None else None,
                    parent.id if parent is not None else None,
                ),
            )
            if not inserted:
                raise AlreadyExists(f"transcript {new.id} already exists")
            changed = ["owner", "title", "labels"]
            await tx.execute(
                INSERT_AUDIT,
                _audit(
                    namespace,
                    now_us,
                    context.actor,
                    "create",
                    new.id,
                    1,
                    changed,
                    context.request_id,
                ),
            )
            if idempotency is not None:
                await store_result(
                    tx, namespace, idempotency, transcript_to_json(transcript), now_us
                )
        return transcript

    async def get_transcript(self, namespace: str, id: str) -> Transcript:
        rows = await self._db.fetchall(SELECT_TRANSCRIPT, (namespace, id))
        if not rows:
            raise NotFound(f"transcript {id} does not exist")
        return transcript_from_row(rows[0])

    async def transcript_states(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, bool]]:
        by_namespace: dict[str, list[str]] = {}
        for namespace, id in keys:
            by_namespace.setdefault(namespace, []).append(id)
        found: dict[tuple[str, str], tuple[int, bool]] = {}
        for namespace, ids in by_namespace.items():
            for start in range(0, len(ids), STATES_CHUNK):
                chunk = ids[start : start + STATES_CHUNK]
                rows = await self._db.fetchall(select_states(len(chunk)), (namespace, *chunk))
                found.update(
                    ((namespace, id), (next_seq, bool(sealed))) for id, next_seq, sealed in rows
                )
        return found

    async def list_transcripts(
        self, namespace: str, query: TranscriptListQuery
    ) -> Page[Transcript]:
        owner, limit, after, parent = query.owner, query.limit, query.after, query.parent
        if limit <= 0:
            return Page(())
        params: list[Any] = [namespace]
        if owner is not None:
            params.append(owner)
        if parent is not None:
            params.extend((parent.collection, parent.id))
        if after is not None:
            params.extend(list_key(after))
        sql = LIST_TRANSCRIPTS[(owner is not None, parent is not None, after is not None)]
        rows = await self._db.fetchall(sql, [*params, limit + 1])
        items = [transcript_from_row(row) for row in rows[:limit]]
        last = items[-1] if len(rows) > limit else None
        return Page(items, (last.create_time, last.id) if last is not None else None)

    async def read_batch(
        self, namespace: str, id: str, from_seq: int, max_bytes: int
    ) -> EntryBatch | None:
        limit = max(max_bytes // ENTRY_OVERHEAD + 1, READ_LIMIT_FLOOR)
        rows = fit_batch(
            await self._db.fetchall(READ_ENTRIES, (namespace, id, from_seq, max_bytes, limit)),
            max_bytes,
        )
        if not rows:
            return None
        wires = [row[6] for row in rows]
        if None in wires:  # appended before migration 0009: no stored form
            return entry_wire.joined_batch([(entry_from_row(row), row[6]) for row in rows])
        return EntryBatch(b"".join(wires), rows[-1][0] + 1)

    async def seal_transcript(self, namespace: str, id: str, *, actor: Actor) -> Transcript:
        now = _now()
        now_us = to_micros(now)
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(SELECT_TRANSCRIPT, (namespace, id))
            if not rows:
                raise NotFound(f"transcript {id} does not exist")
            transcript = transcript_from_row(rows[0])
            if transcript.sealed:
                return transcript
            await tx.execute(SEAL, (now_us, now_us, namespace, id))
            await tx.execute(
                INSERT_AUDIT,
                _audit(
                    namespace, now_us, actor, "seal", id, transcript.next_seq - 1, ["seal_time"]
                ),
            )
        return Transcript(
            transcript.namespace,
            transcript.id,
            transcript.owner,
            transcript.title,
            transcript.labels,
            transcript.next_seq,
            transcript.size_bytes,
            transcript.create_time,
            now,
            now,
            transcript.parent,
        )

    async def delete_transcript(self, namespace: str, id: str, *, actor: Actor) -> None:
        now_us = to_micros(_now())
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(DELETE_TRANSCRIPT, (namespace, id))
            if not rows:
                raise NotFound(f"transcript {id} does not exist")
            await tx.execute(UNINDEX_ENTRIES, (namespace, id))
            await tx.execute(DELETE_ENTRIES, (namespace, id))
            await tx.execute(
                INSERT_AUDIT, _audit(namespace, now_us, actor, "delete", id, rows[0][0] - 1, [])
            )

    async def search_transcripts(
        self, namespace: str, query: TranscriptSearch
    ) -> Page[TranscriptHit]:
        match = match_expression(query.text)
        if not match or query.limit <= 0:
            return Page(())
        params = {
            "match": match,
            "namespace": namespace,
            "id": query.id,
            "limit": query.limit + 1,
            "offset": query.offset,
        }
        if query.id is None:
            del params["id"]
        rows = await self._db.fetchall(SEARCH_ALL if query.id is None else SEARCH_ONE, params)
        hits = [
            TranscriptHit(
                transcript_id=row[0],
                seq=row[1],
                role=row[2],
                create_time=from_micros(row[3]),
                snippet=row[4] or "",
                score=-row[5],  # bm25: lower is better
            )
            for row in rows[: query.limit]
        ]
        more = len(rows) > query.limit
        return Page(hits, (query.offset + query.limit,) if more else None)
