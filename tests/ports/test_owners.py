"""The owners port (OwnerData): what a cleanup of one owner counts and removes, on
both engines."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from strata_server.core.errors import NotFound
from strata_server.core.models import Actor, RecordRef
from strata_server.core.transcript_rules import AppendEntries, NewTranscript, new_entry
from strata_server.storage.composite import Storage
from strata_server.storage.ports import Owned
from strata_server.storage.ports.owners import OWNER_CLEANUP
from strata_server.storage.ports.write_context import WriteContext
from tests.ports.conftest import ACTOR
from tests.ports.helpers import audit, create

OPS = Actor("ops")


async def test_an_owners_records_go_in_batches_audited_by_the_caller(
    storage: Storage, ns: str
) -> None:
    soon = datetime.now(UTC) + timedelta(milliseconds=200)
    await create(storage, ns, "a", {"k": 1}, collection="notes", owner="ada")
    await create(storage, ns, "b", {}, collection="tasks", owner="ada")
    await create(storage, ns, "c", {}, collection="notes", owner="ada", expire_time=soon)
    await create(storage, ns, "d", {}, collection="notes", owner="bob")
    await create(storage, ns, "e", {}, collection="notes")
    await create(storage, "elsewhere", "a", {}, collection="notes", owner="ada")
    await asyncio.sleep(0.3)  # "c" has expired: invisible to reads, still the owner's
    assert await storage.owners.count_owned(ns, "ada") == Owned(3, 0, 0)
    assert await storage.owners.count_owned(ns, "nobody") == Owned(0, 0, 0)

    first = await storage.owners.purge_owned_records(ns, "ada", 2, actor=OPS)
    second = await storage.owners.purge_owned_records(ns, "ada", 2, actor=OPS)
    assert first == [RecordRef(ns, "notes", "a"), RecordRef(ns, "notes", "c")]
    assert second == [RecordRef(ns, "tasks", "b")]
    assert await storage.owners.purge_owned_records(ns, "ada", 2, actor=OPS) == []
    left = await storage.records.batch_get_records(ns, "notes", ["a", "c", "d", "e"])
    assert [(r.id, r.owner) for r in left] == [("d", "bob"), ("e", "")]
    assert await storage.owners.count_owned("elsewhere", "ada") == Owned(1, 0, 0)

    removed = await audit(storage, ns, action=OWNER_CLEANUP)
    assert [(e.actor, e.entity_id, e.changed_fields) for e in removed] == [
        ("ops", "notes/a", ("data.k",)),
        ("ops", "notes/c", ()),
        ("ops", "tasks/b", ()),
    ]


async def test_an_owners_transcripts_go_with_their_entries(storage: Storage, ns: str) -> None:
    for id, owner in (("t1", "ada"), ("t2", "ada"), ("t3", "bob")):
        await storage.transcripts.create_transcript(
            ns, NewTranscript(id, owner=owner), WriteContext(ACTOR)
        )
        entry = new_entry("user", "hi", None, 1 << 20)
        await storage.transcripts.append_entries(
            ns, AppendEntries(id, [entry]), WriteContext(ACTOR)
        )
    await storage.transcripts.seal_transcript(ns, "t2", actor=ACTOR)
    assert await storage.owners.count_owned(ns, "ada") == Owned(0, 2, 0)
    assert await storage.owners.purge_owned_transcripts(ns, "ada", 1, actor=OPS) == ["t1"]
    assert await storage.owners.purge_owned_transcripts(ns, "ada", 5, actor=OPS) == ["t2"]
    for gone in ("t1", "t2"):
        with pytest.raises(NotFound):
            await storage.transcripts.get_transcript(ns, gone)
        assert await storage.transcripts.read_batch(ns, gone, 1, 1 << 20) is None
    assert (await storage.transcripts.get_transcript(ns, "t3")).next_seq == 2
    removed = await audit(storage, ns, action=OWNER_CLEANUP)
    assert [(e.entity, e.entity_id, e.version, e.actor) for e in removed] == [
        ("transcript", "t1", 1, "ops"),
        ("transcript", "t2", 1, "ops"),
    ]
    assert await storage.owners.purge_owned_artifacts(ns, "ada", 5, actor=OPS) == 0
