"""The TransferStore port: a namespace's rows out of one snapshot, and in through one
transaction under a conflict policy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from strata_server.core.errors import AlreadyExists
from strata_server.core.job_transitions import NewJob
from strata_server.core.models import AuditQuery, UpdateRecord
from strata_server.core.transcript_rules import AppendEntries, NewTranscript, new_entry
from strata_server.core.transfer_format import ConflictPolicy, Kind
from strata_server.core.transfer_rows import RowBatch
from strata_server.storage.composite import Storage
from strata_server.storage.ports import CommitRequest, ImportRequest
from strata_server.storage.ports.write_context import WriteContext
from tests.ports.conftest import ACTOR
from tests.ports.helpers import create


async def export(
    storage: Storage, ns: str, owner: str | None = None
) -> tuple[dict[str, int], list[RowBatch]]:
    rows = storage.transfer.export_rows(ns, owner)
    counts = await anext(rows)
    assert isinstance(counts, dict)
    batches = [batch async for batch in rows if isinstance(batch, RowBatch)]
    return counts, batches


async def replay(batches: list[RowBatch]) -> AsyncIterator[RowBatch]:
    for batch in batches:
        yield batch


def rows_of(batches: list[RowBatch], kind: Kind) -> list[Any]:
    return [row for batch in batches if batch.kind is kind for row in batch.rows]


async def fill(storage: Storage, ns: str) -> None:
    for i in range(3):
        await create(storage, ns, f"r{i}", {"i": i})
    await storage.queue.enqueue(ns, [NewJob("q", {"n": 1})], WriteContext(ACTOR))
    await storage.queue.set_paused(ns, "q", True, actor=ACTOR)
    await storage.transcripts.create_transcript(ns, NewTranscript("t", "ann"), WriteContext(ACTOR))
    entries = [new_entry("user", f"m{i}", None, 1 << 20) for i in range(2)]
    await storage.transcripts.append_entries(ns, AppendEntries("t", entries), WriteContext(ACTOR))


async def test_export_counts_then_rows_kind_by_kind(storage: Storage, ns: str) -> None:
    await fill(storage, ns)
    counts, batches = await export(storage, ns)
    assert counts[Kind.RECORDS] == 3 and counts[Kind.JOBS] == 1 and counts[Kind.ENTRIES] == 2
    assert counts[Kind.QUEUES] == 1 and counts[Kind.TRANSCRIPTS] == 1
    assert (counts["blobs"], counts["blob_bytes"]) == (0, 0)
    kinds = [batch.kind for batch in batches]
    assert kinds == sorted(kinds, key=list(Kind).index)
    assert [r.id for r in rows_of(batches, Kind.RECORDS)] == ["r0", "r1", "r2"]
    assert len(rows_of(batches, Kind.AUDIT)) == counts[Kind.AUDIT] > 0
    owned_counts, owned = await export(storage, ns, owner="ann")
    assert owned_counts[Kind.RECORDS] == 0 and owned_counts[Kind.TRANSCRIPTS] == 1
    assert rows_of(owned, Kind.RECORDS) == [] and len(rows_of(owned, Kind.ENTRIES)) == 2


async def test_import_into_another_namespace_then_by_policy(storage: Storage, ns: str) -> None:
    await fill(storage, ns)
    _, batches = await export(storage, ns)
    target = f"{ns}copy"
    counts = await storage.transfer.import_rows(
        ImportRequest(target, ConflictPolicy.FAIL, ACTOR), replay(batches)
    )
    assert counts[Kind.RECORDS].imported == 3 and counts[Kind.ENTRIES].imported == 2
    copied = await storage.records.get_record(target, "c", "r1")
    assert copied.data == {"i": 1} and copied.version == 1
    assert (await storage.transcripts.get_transcript(target, "t")).next_seq == 3
    assert (await storage.queue.queue_stats(target, "q")).paused
    imports = await storage.audit.list_audit(target, AuditQuery(action="import"))
    assert len(imports.items) == 1

    await storage.records.commit(CommitRequest(target, [UpdateRecord("c", "r1", {"i": 9})], ACTOR))
    with pytest.raises(AlreadyExists):
        await storage.transfer.import_rows(
            ImportRequest(target, ConflictPolicy.FAIL, ACTOR), replay(batches)
        )
    assert (await storage.records.get_record(target, "c", "r1")).data == {"i": 9}  # nothing
    skipped = await storage.transfer.import_rows(
        ImportRequest(target, ConflictPolicy.SKIP, ACTOR), replay(batches)
    )
    assert skipped[Kind.RECORDS].skipped == 3 and skipped[Kind.RECORDS].imported == 0
    assert (await storage.records.get_record(target, "c", "r1")).data == {"i": 9}
    overwritten = await storage.transfer.import_rows(
        ImportRequest(target, ConflictPolicy.OVERWRITE, ACTOR), replay(batches)
    )
    assert overwritten[Kind.RECORDS].overwritten == 3
    assert (await storage.records.get_record(target, "c", "r1")).data == {"i": 1}
    again = await storage.audit.list_audit(target, AuditQuery(action="import"))
    assert len(again.items) == 3
