"""The record watch when the audit log's retention overtakes it, in-process on SQLite:
a running watch whose next read lies past a purge fails with CursorExpired rather
than skip the purged changes, and a collection's shared re-check probe carries on
from the horizon instead of failing on every round."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from strata_server.core.errors import CursorExpired
from strata_server.core.models import Actor, CreateRecord, RecordChange
from strata_server.core.retention_rules import Target
from strata_server.services.records_service import Records, WatchStarted, _Settled
from strata_server.storage.memory.events import LocalEvents
from strata_server.storage.ports import OldLog

NS = "default"
API = Actor("api")
PATIENCE = 10.0


@pytest.fixture
async def events() -> AsyncIterator[LocalEvents]:
    local = LocalEvents()
    yield local
    await local.close()


async def purge_audit_log(database: Any) -> None:
    """Everything the namespace's audit log holds now goes, as a short policy's run."""
    await asyncio.sleep(0.01)
    old = OldLog(Target.AUDIT_LOG, NS, datetime.now(UTC), default=False)
    assert await database.retention.purge_old_log(old, 1000) > 0


async def test_a_watch_overtaken_by_a_purge_fails_instead_of_skipping(
    storage: tuple[Any, Any], events: LocalEvents
) -> None:
    database, _ = storage
    records = Records(database.records, events)
    watch = records.watch(NS, "c", None, "")
    started = await anext(watch)
    assert isinstance(started, WatchStarted)
    # Written and purged before the watch reads again: its next read would skip them.
    await records.write(NS, CreateRecord("c", "a", {}), actor=API)
    await records.write(NS, CreateRecord("c", "b", {}), actor=API)
    await purge_audit_log(database)
    with pytest.raises(CursorExpired) as expired:
        await asyncio.wait_for(anext(watch), PATIENCE)
    assert expired.value.metadata["cursor"] == started.cursor
    # A watch from the horizon misses nothing that came after.
    again = records.watch(NS, "c", None, expired.value.horizon)
    assert isinstance(await anext(again), WatchStarted)
    await records.write(NS, CreateRecord("c", "later", {}), actor=API)
    change = await asyncio.wait_for(anext(again), PATIENCE)
    assert isinstance(change, RecordChange) and change.record_id == "later"
    await again.aclose()


async def test_the_re_check_probe_carries_on_from_the_horizon(
    storage: tuple[Any, Any], events: LocalEvents
) -> None:
    database, _ = storage
    head = await database.records.changes_head(NS)
    probe = _Settled(database.records, NS, "c", head)
    assert (await probe()).state == head
    await Records(database.records, events).write(NS, CreateRecord("c", "a", {}), actor=API)
    await purge_audit_log(database)
    horizon = (await probe()).state
    assert horizon != head
    await Records(database.records, events).write(NS, CreateRecord("c", "b", {}), actor=API)
    newest = (await probe()).state
    assert newest not in (head, horizon)
