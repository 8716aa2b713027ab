"""The SQLite adapters' own paths (tests/ports holds what both engines share): an
in-memory database, yoyo's schema version and rollback, driver errors, stored wire
forms, snapshots cancelled mid-BEGIN."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from strata_server.core.errors import (
    Unavailable,
)
from strata_server.core.models import (
    Actor,
    CreateRecord,
    Record,
)
from strata_server.core.transcript_rules import AppendEntries, NewTranscript, new_entry
from strata_server.storage import migrations
from strata_server.storage.composite import Storage
from strata_server.storage.ports import CommitRequest
from strata_server.storage.ports.write_context import WriteContext
from strata_server.storage.sqlite import open_sqlite
from strata_server.storage.sqlite.connection import Connections
from tests.support.wire import sent

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations" / "sqlite"
SCHEMA = (MIGRATIONS / "0001_records.sql").read_text() + (
    MIGRATIONS / "0014_record_owners.sql"
).read_text()
ROLLBACK = (MIGRATIONS / "0001_records.rollback.sql").read_text()
NS = "default"
ALICE = Actor("alice")
PAST = datetime(2000, 1, 1, tzinfo=UTC)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "strata.db")


@pytest.fixture
async def db(db_path: str) -> AsyncIterator[Storage]:
    database = await open_sqlite(db_path, max_record_bytes=4096, readers=2, schema_sql=SCHEMA)
    yield database
    await database.close()


@contextlib.contextmanager
def raw(path: str) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(path)
    try:
        yield conn
    finally:
        conn.close()


async def create(
    db: Storage, id: str, data: dict[str, Any], *, collection: str = "tasks", **kw: Any
) -> Record:
    [result] = await db.records.commit(
        CommitRequest(NS, [CreateRecord(collection, id, data, **kw)], ALICE)
    )
    assert isinstance(result, Record)
    return result


async def test_memory_database_shares_data_between_connections() -> None:
    db = await open_sqlite(":memory:", max_record_bytes=1024, readers=3, schema_sql=SCHEMA)
    try:
        await asyncio.gather(*(create(db, f"m{i}", {"i": i}) for i in range(10)))
        got = await asyncio.gather(
            *(db.records.get_record(NS, "tasks", f"m{i}") for i in range(10))
        )
        assert [r.data["i"] for r in got] == list(range(10))
        facts = await db.facts()
        assert (facts.backend, facts.schema_version) == ("sqlite", "memory")
        assert "search" in facts.capabilities
        await db.ping()
    finally:
        await db.close()


async def test_schema_version_from_yoyo_and_rollback(db_path: str) -> None:
    from yoyo import read_migrations

    from strata_server.storage.migrations import sqlite_backend

    backend = sqlite_backend(f"sqlite:///{db_path}")  # 0023 rolls back with its function
    migrations = read_migrations(str(MIGRATIONS))
    with backend.lock():
        backend.apply_migrations(backend.to_apply(migrations))
    db = await open_sqlite(db_path, max_record_bytes=1024)
    try:
        assert (await db.facts()).schema_version == migrations[-1].id
    finally:
        await db.close()
    with backend.lock():
        backend.rollback_migrations(backend.to_rollback(migrations))
    backend.connection.close()
    with raw(db_path) as conn:
        left = conn.execute(
            "SELECT name FROM sqlite_master WHERE name NOT LIKE '%yoyo%'"
            " AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
    assert left == []


async def test_driver_errors_become_domain_errors(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="cannot open"):
        await open_sqlite(str(tmp_path / "no" / "such" / "dir.db"), max_record_bytes=1)
    db = await open_sqlite(str(tmp_path / "empty.db"), max_record_bytes=1024)
    try:
        with pytest.raises(Unavailable, match="strata migrate"):
            await db.records.get_record(NS, "tasks", "x")
        with pytest.raises(Unavailable):
            await create(db, "x", {})
    finally:
        await db.close()
    with pytest.raises(Unavailable, match="closed"):
        await db.ping()


async def test_transcript_batches_are_stored_wire_forms_or_encoded_on_read(
    db_path: str,
) -> None:
    db = await open_sqlite(
        db_path, max_record_bytes=4096, readers=2, schema_sql=migrations.memory_schema()
    )
    try:
        await transcript_batches(db, db_path)
    finally:
        await db.close()


async def transcript_batches(db: Storage, db_path: str) -> None:
    await db.transcripts.create_transcript(NS, NewTranscript("t"), WriteContext(ALICE))
    for n in range(3):
        entries = [
            new_entry("user", f"question {n}", None, 4096),
            new_entry("tool", "", {"calls": [n, "x"], "ok": True}, 4096),
        ]
        await db.transcripts.append_entries(NS, AppendEntries("t", entries), WriteContext(ALICE))

    stored = sent(await db.transcripts.read_batch(NS, "t", 1, 1 << 20))
    assert [(e.seq, e.role, e.content) for e in stored] == [
        (1, "user", "question 0"),
        (2, "tool", ""),
        (3, "user", "question 1"),
        (4, "tool", ""),
        (5, "user", "question 2"),
        (6, "tool", ""),
    ]
    assert dict(stored[3].data) == {"calls": [1, "x"], "ok": True}
    # Entries stored before migration 0009 have no wire form, and their data in the
    # column (since 0023 the others' is in the wire tail only): encoded on read, the same.
    with raw(db_path) as conn:
        conn.execute(
            "UPDATE transcript_entries SET data = CASE seq WHEN 2"
            """ THEN '{"calls":[0,"x"],"ok":true}' END, wire_head = NULL, wire_tail = NULL"""
            " WHERE seq IN (2, 5)"
        )
        conn.commit()
    assert sent(await db.transcripts.read_batch(NS, "t", 1, 1 << 20)) == stored
    assert sent(await db.transcripts.read_batch(NS, "t", 5, 1 << 20)) == stored[4:]
    assert await db.transcripts.read_batch(NS, "t", 7, 1 << 20) is None


async def test_a_snapshot_cancelled_while_it_begins_leaves_its_reader_usable(
    db_path: str,
) -> None:
    """A caller cancelled while its snapshot's BEGIN is on the reader's thread (an
    export whose client went away) must not hand the reader back inside that
    transaction: the fuzz suite found every later export drawing it failing with
    INTERNAL, "cannot start a transaction within a transaction"."""
    connections = await Connections.open(db_path, readers=1, schema_sql=SCHEMA)
    try:

        async def export() -> None:
            async with connections.snapshot() as snap:
                await snap.fetchall("SELECT count(*) FROM records")

        for _ in range(5):
            task = asyncio.create_task(export())
            await asyncio.sleep(0)  # the task is now waiting for its BEGIN
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            async with connections.snapshot() as snap:
                assert await snap.fetchall("SELECT count(*) FROM records") == [(0,)]
    finally:
        await connections.close()
