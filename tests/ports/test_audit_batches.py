"""Purge batches on both engines: expiry and record retention write one audit row per
batch and collection that lists the records it removed (migration 0024), and every
reader of the audit log expands it: the change feed (one delete per record, with
cursors inside the row), ListAuditEntries' entity_id filter, exports and imports."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from strata_server.core.errors import StrataError
from strata_server.core.models import DeleteRecord, LoggedAudit, RecordChange, UpdateRecord
from strata_server.core.retention_rules import Target
from strata_server.core.transfer_format import ConflictPolicy, Kind
from strata_server.storage.composite import Storage
from strata_server.storage.ports import CommitRequest, ImportRequest
from strata_server.storage.ports.admin import OldLog
from tests.ports.conftest import ACTOR
from tests.ports.helpers import audit, create
from tests.ports.test_transfer import export, replay, rows_of

PAST = datetime(2000, 1, 1, tzinfo=UTC)
LIMIT = 4
"""The purge batch size of these tests."""


async def expiring(
    storage: Storage, ns: str, ids: list[str], collection: str = "c", first: int = 0
) -> None:
    """Create records that expired long ago, in the order of `ids` (from day `first`)."""
    for i, id in enumerate(ids, first):
        await create(
            storage, ns, id, {"i": i}, collection=collection, expire_time=PAST + timedelta(i)
        )


async def purge_all(storage: Storage) -> int:
    """Purge every expired record in batches of LIMIT; how many batches removed any."""
    batches = 0
    while await storage.records.purge_expired(LIMIT):
        batches += 1
    return batches


async def all_changes(storage: Storage, ns: str, after: str, limit: int) -> list[RecordChange]:
    """Every change of collection c after `after`, read `limit` audit rows at a time."""
    seen: list[RecordChange] = []
    while True:
        batch = await storage.records.record_changes(ns, "c", after, None, limit)
        seen += batch.changes
        if batch.cursor == after:
            return seen
        after = batch.cursor


async def test_one_audit_row_per_batch_lists_its_records(storage: Storage, ns: str) -> None:
    ids = [f"r{i:02d}" for i in range(2 * LIMIT + 1)]
    await expiring(storage, ns, ids[:3])
    await create(storage, ns, "r03", {})
    update = UpdateRecord("c", "r03", {"v": 2}, expire_time=PAST + timedelta(3))
    await storage.records.commit(CommitRequest(ns, [update], ACTOR))
    await expiring(storage, ns, ids[4:], first=4)

    assert await purge_all(storage) == math.ceil(len(ids) / LIMIT)

    rows = await audit(storage, ns, action="expire")
    assert len(rows) == math.ceil(len(ids) / LIMIT)
    assert [row.entity_ids for row in rows] == [
        tuple(f"c/{id}" for id in ids[i : i + LIMIT]) for i in range(0, len(ids), LIMIT)
    ]
    versions = {
        id: v for row in rows for id, v in zip(row.entity_ids, row.entity_versions, strict=True)
    }
    assert versions == {f"c/{id}": 2 if id == "r03" else 1 for id in ids}
    assert {(r.actor, r.entity, r.entity_id, r.version, r.changed_fields) for r in rows} == {
        ("system", "record", "c/", 0, ())
    }
    # Ordinary entries list nothing.
    assert all(not row.entity_ids for row in await audit(storage, ns, action="create"))


async def test_a_batch_row_per_collection_and_namespace(storage: Storage, ns: str) -> None:
    await expiring(storage, ns, ["a", "b"])
    await expiring(storage, ns, ["x"], collection="notes")
    await expiring(storage, f"{ns}o", ["y"])
    assert len(await storage.records.purge_expired(10)) == 4
    rows = await audit(storage, ns, action="expire")
    assert sorted((r.entity_id, r.entity_ids) for r in rows) == [
        ("c/", ("c/a", "c/b")),
        ("notes/", ("notes/x",)),
    ]
    [other] = await audit(storage, f"{ns}o", action="expire")
    assert other.entity_ids == ("c/y",)


async def test_record_retention_writes_batch_rows_too(storage: Storage, ns: str) -> None:
    for id in ("a", "b", "c"):
        await create(storage, ns, id, {})
    later = datetime.now(UTC) + timedelta(seconds=5)
    assert len(await storage.cleanup.purge_old_records(ns, "c", later, 2)) == 2
    assert len(await storage.cleanup.purge_old_records(ns, "c", later, 2)) == 1
    rows = await audit(storage, ns, action="retention")
    assert [r.entity_ids for r in rows] == [("c/a", "c/b"), ("c/c",)]
    assert [r.entity_versions for r in rows] == [(1, 1), (1,)]


async def test_listing_by_entity_id_finds_the_batch_row(storage: Storage, ns: str) -> None:
    ids = [f"r{i}" for i in range(6)]
    await expiring(storage, ns, ids)
    await create(storage, ns, "kept", {})
    await purge_all(storage)

    history = await audit(storage, ns, entity_id="c/r5")
    assert [(e.action, e.entity_id) for e in history] == [("create", "c/r5"), ("expire", "c/")]
    assert "c/r5" in history[1].entity_ids
    assert [e.action for e in await audit(storage, ns, entity_id="c/kept")] == ["create"]
    assert await audit(storage, ns, entity_id="c/r") == []
    assert await audit(storage, ns, entity_id="notes/r5") == []
    # The prefix itself names the batch rows, as any entity id names its entries.
    assert len(await audit(storage, ns, entity_id="c/")) == math.ceil(len(ids) / LIMIT)


async def test_the_feed_sends_each_removal_once_and_resumes_inside_a_batch(
    storage: Storage, ns: str
) -> None:
    ids = [f"r{i}" for i in range(2 * LIMIT + 1)]
    await expiring(storage, ns, ids)
    head = await storage.records.changes_head(ns)
    await purge_all(storage)
    await create(storage, ns, "after", {})

    changes = await all_changes(storage, ns, head, 1)
    assert [(c.kind.name, c.record_id, c.version) for c in changes] == [
        *(("DELETED", id, 1) for id in ids),
        ("CREATED", "after", 1),
    ]
    assert len({c.cursor for c in changes}) == len(changes)
    # From any change's cursor, the rest follows: nothing lost, nothing repeated,
    # whether the cursor stands inside a batch row or at its end.
    for at, change in enumerate(changes):
        rest = await all_changes(storage, ns, change.cursor, 1)
        assert [c.record_id for c in rest] == [c.record_id for c in changes[at + 1 :]]
        assert [c.cursor for c in rest] == [c.cursor for c in changes[at + 1 :]]


async def test_a_create_before_a_batch_expiry_never_carries_its_successor(
    storage: Storage, ns: str
) -> None:
    head = await storage.records.changes_head(ns)
    await expiring(storage, ns, ["a"])
    await purge_all(storage)
    await create(storage, ns, "a", {"new": True})
    changes = await all_changes(storage, ns, head, 10)
    assert [(c.kind.name, c.record_id) for c in changes] == [
        ("CREATED", "a"),
        ("DELETED", "a"),
        ("CREATED", "a"),
    ]
    assert changes[0].record is None  # removed since: not the record created after
    assert changes[2].record is not None and changes[2].record.data == {"new": True}


async def test_a_cursor_inside_a_purged_batch_row_is_expired(storage: Storage, ns: str) -> None:
    await expiring(storage, ns, ["a", "b", "c"])
    head = await storage.records.changes_head(ns)
    await purge_all(storage)
    inside = (await storage.records.record_changes(ns, "c", head, None, 1)).changes[0].cursor
    assert inside.endswith(".1")
    # Audit retention removes a batch row by its time, as any other row.
    old = OldLog(Target.AUDIT_LOG, ns, datetime.now(UTC) + timedelta(seconds=5), default=False)
    gone = await storage.retention.purge_old_log(old, 100)
    assert gone >= 1
    assert await audit(storage, ns, action="expire") == []
    with pytest.raises(StrataError) as expired:
        await storage.records.record_changes(ns, "c", inside, None, 10)
    assert type(expired.value).__name__ == "CursorExpired"


@pytest.mark.parametrize("cursor", ["s1.0", "p1.2.0", "s0.1", "p1.0.1", "s1.1.1", "s1.x"])
async def test_a_malformed_cursor_inside_a_row_is_invalid(
    storage: Storage, ns: str, cursor: str
) -> None:
    with pytest.raises(StrataError) as bad:
        await storage.records.record_changes(ns, "c", cursor, None, 10)
    assert type(bad.value).__name__ == "InvalidArgument"


async def test_a_failed_batch_audit_leaves_nothing_written(
    storage: Storage, engine: str, ns: str
) -> None:
    await expiring(storage, ns, ["a", "b"])
    sql = raw_sql(storage, engine)
    if engine == "sqlite":
        await sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON audit_log WHEN NEW.entity_ids IS NOT NULL "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    else:
        await sql(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused'; END $$"
        )
        await sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON audit_log FOR EACH ROW "
            "WHEN (NEW.entity_ids IS NOT NULL) EXECUTE FUNCTION refuse()"
        )
    with pytest.raises(StrataError):
        await storage.records.purge_expired(10)
    assert await audit(storage, ns, action="expire") == []
    await sql("DROP TRIGGER refuse" + ("" if engine == "sqlite" else " ON audit_log"))
    # The records were not removed: the next purge finds both.
    assert sorted(ref.id for ref in await storage.records.purge_expired(10)) == ["a", "b"]
    [row] = await audit(storage, ns, action="expire")
    assert row.entity_ids == ("c/a", "c/b")


async def test_export_and_import_carry_batch_rows(storage: Storage, ns: str) -> None:
    await expiring(storage, ns, ["a", "b"])
    await create(storage, ns, "live", {})
    await storage.records.commit(CommitRequest(ns, [DeleteRecord("c", "live")], ACTOR))
    await purge_all(storage)
    before = await audit(storage, ns)
    assert any(e.entity_ids for e in before)

    _, batches = await export(storage, ns)
    exported = rows_of(batches, Kind.AUDIT)
    assert [strip(e) for e in exported] == [strip(e) for e in before]
    target = f"{ns}i"
    for policy, imported in ((ConflictPolicy.FAIL, len(exported)), (ConflictPolicy.SKIP, 0)):
        request = ImportRequest(target, policy, ACTOR)
        counts = await storage.transfer.import_rows(request, replay(batches))
        assert counts[Kind.AUDIT].imported == imported  # not twice
    after = [e for e in await audit(storage, target) if e.action != "import"]
    assert [strip(e) for e in after] == [strip(e) for e in before]
    history = await audit(storage, target, entity_id="c/b")
    assert [e.action for e in history] == ["create", "expire"]


def strip(entry: LoggedAudit) -> tuple[Any, ...]:
    return (entry.action, entry.entity_id, entry.version, entry.entity_ids, entry.entity_versions)


def raw_sql(storage: Storage, engine: str) -> Callable[[str], Awaitable[None]]:
    """Run one statement on the test's database, outside every port."""
    records: Any = storage.records
    if engine == "sqlite":

        async def on_sqlite(statement: str) -> None:
            async with records._db.transaction() as tx:
                await tx.execute(statement)

        return on_sqlite

    async def on_postgres(statement: str) -> None:
        async def run(conn: Any) -> None:
            await conn.execute(statement)

        await records.runner.run(run)

    return on_postgres
