"""The SQLite job queue's own paths (tests/ports/test_queue.py holds what both engines
share): old lease expiries purged, the queue migration rolled back."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from strata_server.core.job_transitions import Job, NewJob
from strata_server.core.models import Actor
from strata_server.storage.composite import Storage
from strata_server.storage.ports.write_context import WriteContext
from strata_server.storage.sqlite import open_sqlite

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations" / "sqlite"
SCHEMA = (MIGRATIONS / "0001_records.sql").read_text() + (MIGRATIONS / "0002_queue.sql").read_text()
ROLLBACK = (MIGRATIONS / "0002_queue.rollback.sql").read_text() + (
    MIGRATIONS / "0001_records.rollback.sql"
).read_text()
NS = "default"
Q = "work"
BOB = Actor("bob")
LEASE = timedelta(seconds=30)
SHORT = timedelta(milliseconds=40)


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


async def put(db: Storage, payload: Any = None, **kw: Any) -> Job:
    [job] = await db.queue.enqueue(
        NS, [NewJob(Q, payload if payload is not None else {}, **kw)], WriteContext(BOB)
    )
    return job


async def test_purge_completed_also_drops_old_lease_expiries(db: Storage, db_path: str) -> None:
    """Lease expiries count in the stats for core.job_transitions.EXPIRY_WINDOW; a purge drops
    older ones (rows planted here: a real one would take the window to age)."""
    now_us = int(datetime.now(UTC).timestamp() * 1e6)
    with raw(db_path) as conn:
        conn.execute(
            "INSERT INTO lease_expiries VALUES (?, ?, 'j', 0), (?, ?, 'k', ?)",
            (NS, Q, NS, Q, now_us),
        )
        conn.commit()
    assert (await db.queue.queue_stats(NS, Q)).expired_leases == 1
    await db.queue.purge_completed(datetime.now(UTC), 10)
    with raw(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM lease_expiries").fetchone()[0] == 1


def test_migration_rolls_back_cleanly(db_path: str) -> None:
    with raw(db_path) as conn:
        conn.executescript(SCHEMA)
        conn.executescript(ROLLBACK)
        left = conn.execute("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
        assert left.fetchall() == []


def test_yoyo_applies_and_rolls_back_the_queue_migration(db_path: str) -> None:
    from yoyo import read_migrations

    from strata_server.storage.migrations import sqlite_backend

    backend = sqlite_backend(f"sqlite:///{db_path}")  # 0023 rolls back with its function
    migrations = read_migrations(str(MIGRATIONS))
    with backend.lock():
        backend.apply_migrations(backend.to_apply(migrations))
        assert {"0001_records", "0002_queue"} <= {m.id for m in migrations}
        assert not backend.to_apply(migrations)
        backend.rollback_migrations(backend.to_rollback(migrations))
    backend.connection.close()
    with raw(db_path) as conn:
        left = conn.execute(
            "SELECT name FROM sqlite_master WHERE name NOT LIKE '%yoyo%'"
            " AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
    assert left == []
