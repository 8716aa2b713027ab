"""Transcripts on PostgreSQL: the `TranscriptStore` adapter.

Writes run inside the transaction `Runner.run` opens, in as few statements as
possible (`transcript_queries`):

- create: claim the request_id (as Commit does), then one INSERT with its audit
  entry and request_log result.
- append: claim the request_id, then one statement (APPEND) that advances the
  transcript's next_seq under its row lock and inserts the entries, the audit entry
  and the result. Only that transcript's row is locked: appends to it queue, appends
  to others run in parallel. Because the lock is held to commit, an append's
  entries become visible only after every earlier append's, so a reader never sees
  seq n+1 without seq n.
- seal and delete: one statement each (delete: plus the entries).

Reads are single statements on an autocommit connection; a batch is one keyset
query over the offset index, bounded by bytes, that returns the batch's entries
already joined in their stored wire form (`READ_WIRE`, storage/entry_wire.py; each
entry's content is stored once, as text, between the head and tail of that form).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from strata_server.core.errors import AlreadyExists, Conflict, NotFound
from strata_server.core.jsontypes import dumps
from strata_server.core.models import Actor, Page
from strata_server.core.parent_refs import ParentRef
from strata_server.core.quota_rules import explained
from strata_server.core.transcript_rules import (
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
    check_append,
    fit_batch,
    relative_offsets,
    total_size,
    transcript_from_json,
    transcript_to_json,
)
from strata_server.storage import entry_wire
from strata_server.storage.events_relay import POSTGRES_CHANNEL as EVENTS_CHANNEL
from strata_server.storage.ports import QuotaStore
from strata_server.storage.ports.write_context import WriteContext
from strata_server.storage.postgres import transcript_queries as q
from strata_server.storage.postgres.pool import Conn, Runner, borrowing
from strata_server.storage.postgres.record_rows import now
from strata_server.storage.postgres.request_log import claim_request
from strata_server.storage.sqlquery import bad_token

READ_LIMIT_FLOOR = 64
"""Fewest rows a batch query asks for (its LIMIT is max_bytes / ENTRY_OVERHEAD + 1,
never more rows than could fit; this only matters for tiny max_bytes)."""


def transcript_from_row(namespace: str, row: Sequence[Any]) -> Transcript:
    """A Transcript from a row selected with `transcript_queries.TRANSCRIPT_COLUMNS` (or
    EXPORTED_COLUMNS, which leave out the tier: a hot transcript's)."""
    return Transcript(
        namespace=namespace,
        id=row[0],
        owner=row[1],
        title=row[2],
        labels=row[3],
        next_seq=row[4],
        size_bytes=row[5],
        create_time=row[6],
        update_time=row[7],
        seal_time=row[8],
        parent=ParentRef(row[9], row[10]) if row[10] is not None else None,
        archive_time=row[11] if len(row) > 11 else None,
    )


async def append_in(
    conn: Conn,
    namespace: str,
    append: AppendEntries,
    *,
    actor: Actor,
    request_id: str | None,
    answer: bool = False,
    notice: str | None = None,
) -> Appended:
    """Append inside the open transaction on `conn` (an AppendEntries call's, or a
    Commit's). `request_id` goes into the audit entry; with `answer` the request_log
    row claimed for it also receives the result (a Commit stores its own). `notice`
    goes out on the events channel when the append commits."""
    entries = append.entries
    at = now()
    time = entry_wire.time_field(at)
    texts = [entry.content.encode() for entry in entries]
    parts = [
        entry_wire.body_parts(entry.role, text, entry.data)
        for entry, text in zip(entries, texts, strict=True)
    ]
    cursor = await conn.execute(
        q.APPEND,
        {
            "namespace": namespace,
            "id": append.id,
            "count": len(entries),
            "bytes": total_size(entries),
            "expected": append.expected_next_seq or 0,
            "now": at,
            "actor": actor.name,
            "request_id": request_id,
            "answer_id": request_id if answer else None,
            "rel_offset": relative_offsets(entries),
            "size": [entry.size for entry in entries],
            "role": [entry.role for entry in entries],
            "content": [entry.content for entry in entries],
            "before": [before for before, _ in parts],
            "after": [after + time for _, after in parts],
            "rest": [
                len(before) + len(text) + len(after) + len(time)
                for (before, after), text in zip(parts, texts, strict=True)
            ],
            "channel": EVENTS_CHANNEL,
            "notice": notice,
        },
        prepare=True,
        binary=True,
    )
    row = await cursor.fetchone()
    if row is not None:
        return Appended(append.id, row[0], row[1])
    # Nothing was written: say why.
    cursor = await conn.execute(q.APPEND_STATE, (namespace, append.id), prepare=True)
    state = await cursor.fetchone()
    if state is None:
        raise NotFound(f"transcript {append.id} does not exist")
    next_seq, seal_time = state
    check_append(append.id, next_seq, seal_time is not None, append.expected_next_seq)
    # The transcript changed between the two statements (deleted and created again
    # in between): nothing was written, and trying again decides afresh.
    raise Conflict(f"transcript {append.id} changed during the append; retry the request")


async def read_transcript(conn: Conn, namespace: str, id: str) -> Transcript:
    """One transcript's row, or NotFound."""
    cursor = await conn.execute(q.GET, (namespace, id), prepare=True, binary=True)
    row = await cursor.fetchone()
    if row is None:
        raise NotFound(f"transcript {id} does not exist")
    return transcript_from_row(namespace, row)


class PostgresTranscripts:
    """`TranscriptStore` over PostgreSQL."""

    def __init__(self, runner: Runner, quotas: QuotaStore) -> None:
        self.runner = runner
        self._quotas = quotas

    async def append_entries(
        self, namespace: str, append: AppendEntries, context: WriteContext
    ) -> Appended:
        """Under the transcript's row lock only; the context's notice goes out on the
        events channel with the append's commit."""
        # Without a request_id the append is one statement (transcript_queries.APPEND
        # writes the entries, the counters and the audit entry together), atomic
        # alone: skipping BEGIN and COMMIT takes two round trips off the path of
        # append -> follower delivery.

        idempotency = context.idempotency

        async def append_all(conn: Conn) -> Appended:
            if idempotency is not None:
                stored = await claim_request(conn, namespace, idempotency)
                if stored is not None:
                    return appended_from_json(stored)
            return await append_in(
                conn,
                namespace,
                append,
                actor=context.actor,
                request_id=context.request_id,
                answer=True,
                notice=context.notice,
            )

        work = self.runner.run(append_all, transaction=idempotency is not None, writes=True)
        return await explained(namespace, self._quotas.list_quotas, work)

    @borrowing(transaction=True)
    async def create_transcript(
        self, conn: Conn, namespace: str, new: NewTranscript, context: WriteContext
    ) -> Transcript:
        """Run inside an open transaction."""
        idempotency = context.idempotency
        if idempotency is not None:
            stored = await claim_request(conn, namespace, idempotency)
            if stored is not None:
                return transcript_from_json(stored)
        at = now()
        transcript = Transcript(
            namespace,
            new.id,
            new.owner,
            new.title,
            dict(new.labels),
            1,
            0,
            at,
            at,
            parent=new.parent,
        )
        cursor = await conn.execute(
            q.CREATE,
            {
                "namespace": namespace,
                "id": new.id,
                "owner": new.owner,
                "title": new.title,
                "labels": dumps(dict(new.labels)),
                "parent_collection": new.parent.collection if new.parent is not None else None,
                "parent_id": new.parent.id if new.parent is not None else None,
                "now": at,
                "actor": context.actor.name,
                "request_id": context.request_id,
                "result": dumps(transcript_to_json(transcript))
                if idempotency is not None
                else None,
            },
            prepare=True,
        )
        row = await cursor.fetchone()
        if row is None or row[0] == 0:
            raise AlreadyExists(f"transcript {new.id} already exists")
        return transcript

    @borrowing()
    async def get_transcript(self, conn: Conn, namespace: str, id: str) -> Transcript:
        return await read_transcript(conn, namespace, id)

    @borrowing()
    async def transcript_states(
        self, conn: Conn, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, bool]]:
        cursor = await conn.execute(
            q.STATES, ([k[0] for k in keys], [k[1] for k in keys]), prepare=True, binary=True
        )
        rows = await cursor.fetchall()
        return {(namespace, id): (next_seq, sealed) for namespace, id, next_seq, sealed in rows}

    @borrowing()
    async def list_transcripts(
        self, conn: Conn, namespace: str, query: TranscriptListQuery
    ) -> Page[Transcript]:
        owner, limit, after, parent = query.owner, query.limit, query.after, query.parent
        if limit <= 0:
            return Page(())
        params: dict[str, Any] = {"namespace": namespace, "owner": owner, "limit": limit + 1}
        if parent is not None:
            params["parent_collection"], params["parent_id"] = parent.collection, parent.id
        if after is not None:
            if len(after) != 2 or not isinstance(after[1], str) or after[0] is None:
                raise bad_token()
            params["after_time"], params["after_id"] = after
        cursor = await conn.execute(
            q.LIST[(owner is not None, parent is not None, after is not None)],
            params,
            prepare=True,
            binary=True,
        )
        rows = await cursor.fetchall()
        items = [transcript_from_row(namespace, row) for row in rows[:limit]]
        last = items[-1] if len(rows) > limit else None
        return Page(items, (last.create_time, last.id) if last is not None else None)

    @borrowing()
    async def read_batch(
        self, conn: Conn, namespace: str, id: str, from_seq: int, max_bytes: int
    ) -> EntryBatch | None:
        params = {
            "namespace": namespace,
            "id": id,
            "seq": from_seq,
            "bytes": max_bytes,
            "limit": max(max_bytes // ENTRY_OVERHEAD + 1, READ_LIMIT_FLOOR),
        }
        cursor = await conn.execute(q.READ_WIRE, params, prepare=True, binary=True)
        row = await cursor.fetchone()
        assert row is not None  # an aggregate without GROUP BY gives one row
        wire, count, stored, first, last = row
        if count == 0:
            return None
        if stored == count and first == from_seq and last - first + 1 == count:
            return EntryBatch(wire, last + 1)
        # Entries appended before migration 0009 have no stored form: encode them here.
        # (So would a gap in the seqs, which only a storage bug makes: fit_batch stops
        # before it.)
        cursor = await conn.execute(q.READ, params, prepare=True, binary=True)
        rows = fit_batch(await cursor.fetchall(), max_bytes)
        return entry_wire.joined_batch([(row[:6], row[6]) for row in rows]) if rows else None

    @borrowing(transaction=True)
    async def seal_transcript(
        self, conn: Conn, namespace: str, id: str, *, actor: Actor
    ) -> Transcript:
        """Run inside an open transaction."""
        cursor = await conn.execute(
            q.SEAL,
            {"namespace": namespace, "id": id, "now": now(), "actor": actor.name},
            prepare=True,
            binary=True,
        )
        row = await cursor.fetchone()
        if row is not None:
            return transcript_from_row(namespace, row)
        return await read_transcript(conn, namespace, id)  # already sealed, or NotFound

    @borrowing(transaction=True)
    async def delete_transcript(self, conn: Conn, namespace: str, id: str, *, actor: Actor) -> None:
        """Run inside an open transaction."""
        cursor = await conn.execute(
            q.DELETE,
            {"namespace": namespace, "id": id, "now": now(), "actor": actor.name},
            prepare=True,
        )
        row = await cursor.fetchone()
        if row is None or row[0] == 0:
            raise NotFound(f"transcript {id} does not exist")
        await conn.execute(q.DELETE_ENTRIES, (namespace, id), prepare=True)

    @borrowing()
    async def search_transcripts(
        self, conn: Conn, namespace: str, query: TranscriptSearch
    ) -> Page[TranscriptHit]:
        if query.limit <= 0 or not query.text.strip():
            return Page(())
        cursor = await conn.execute(
            q.SEARCH_ONE if query.id is not None else q.SEARCH_ALL,
            {
                "namespace": namespace,
                "id": query.id,
                "query": query.text,
                "offset": query.offset,
                "limit": query.limit + 1,
            },
            prepare=True,
        )
        rows = await cursor.fetchall()
        hits = [
            TranscriptHit(
                transcript_id=row[0],
                seq=row[1],
                role=row[2],
                create_time=row[3],
                snippet=row[4] or "",
                score=float(row[5]),
            )
            for row in rows[: query.limit]
        ]
        more = len(rows) > query.limit
        return Page(hits, (query.offset + query.limit,) if more else None)
