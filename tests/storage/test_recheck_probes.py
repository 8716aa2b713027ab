"""What the shared re-checks of idle streams ask the stores, on both engines: a queue's
availability (and whether it holds anything time could make available), whether a
collection has changes not readable yet, and many transcripts' states in one call."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from strata_server.config import load_settings
from strata_server.core.models import Actor, CreateRecord
from strata_server.core.queue import Availability, NewJob
from strata_server.core.transcripts import AppendEntries, NewTranscript, new_entry
from strata_server.storage.postgres import PostgresDatabase
from strata_server.storage.sqlite import SqliteDatabase

NS = "default"
ALICE = Actor("alice")
LEASE = timedelta(seconds=30)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, database_url: Callable[[str], str]) -> str:
    """A fresh database of each shape, migrated as an operator does it."""
    url = database_url(request.param)
    env = {**os.environ, "STRATA_DATABASE_URL": url}
    command = [sys.executable, "-m", "strata_server", "migrate", "up"]
    subprocess.run(command, env=env, check=True, capture_output=True)
    return url


@pytest.fixture
async def store(url: str) -> AsyncIterator[Any]:
    target = load_settings(database_url=url).database
    database: Any
    if target.kind == "sqlite":
        database = await SqliteDatabase.open(target.path, max_record_bytes=1 << 20, readers=1)
    else:
        database = await PostgresDatabase.open(
            target.dsn, max_record_bytes=1 << 20, min_size=1, max_size=2
        )
    yield database
    await database.close()


async def test_a_queue_rests_only_when_it_holds_no_ready_or_leased_job(store: Any) -> None:
    assert await store.availability(NS, "q") == Availability(now=False, held=False)
    later = datetime.now(UTC) + timedelta(hours=1)
    [scheduled] = await store.enqueue(NS, [NewJob("q", {}, run_time=later)], actor=ALICE)
    assert await store.availability(NS, "q") == Availability(now=False, held=True)
    await store.enqueue(NS, [NewJob("q", {})], actor=ALICE)
    assert await store.availability(NS, "q") == Availability(now=True, held=True)
    [leased] = await store.lease_jobs(NS, "q", 1, LEASE, actor=ALICE)
    assert await store.availability(NS, "q") == Availability(now=False, held=True)
    await store.cancel_job(NS, scheduled.id, actor=ALICE)
    assert await store.availability(NS, "q") == Availability(now=False, held=True)  # leased
    await store.ack_job(NS, leased.id, leased.lease_token, None, actor=ALICE)
    assert await store.availability(NS, "q") == Availability(now=False, held=False)
    assert await store.availability(NS, "other") == Availability(now=False, held=False)


async def test_many_transcripts_states_in_one_call(store: Any) -> None:
    ids = [f"t{i}" for i in range(3)]
    for id in ids:
        await store.create_transcript(NS, NewTranscript(id), actor=ALICE)
    entries = (new_entry("user", "hi", None, 1 << 20), new_entry("user", "yo", None, 1 << 20))
    await store.append_entries(NS, AppendEntries("t1", entries), actor=ALICE)
    await store.seal_transcript(NS, "t2", actor=ALICE)
    keys = [(NS, id) for id in ids] + [(NS, "missing"), ("elsewhere", "t0")]
    assert await store.transcript_states(keys) == {
        (NS, "t0"): (1, False),
        (NS, "t1"): (3, False),
        (NS, "t2"): (1, True),
    }
    many = [(NS, f"n{i}") for i in range(1200)]  # past SQLite's chunk of bound ids
    assert await store.transcript_states([*many, (NS, "t1")]) == {(NS, "t1"): (3, False)}
    assert await store.transcript_states([]) == {}


async def test_changes_pending_while_an_older_transaction_runs(store: Any, url: str) -> None:
    assert not await store.changes_pending(NS, "tasks")
    if not url.startswith("postgres"):
        await store.commit(NS, [CreateRecord("tasks", "a", {})], actor=ALICE)
        assert not await store.changes_pending(NS, "tasks")  # readable at once
        return
    async with await psycopg.AsyncConnection.connect(url) as older:
        await older.execute("SELECT pg_current_xact_id()")  # a transaction with an xid
        await store.commit(NS, [CreateRecord("tasks", "a", {})], actor=ALICE)
        assert await store.changes_pending(NS, "tasks")
        assert not await store.changes_pending(NS, "other")
        head = await store.changes_head(NS)
        assert (await store.record_changes(NS, "tasks", head, None, 10)).changes == ()
        await older.rollback()
    for _ in range(50):  # the older transaction has ended: settled
        if not await store.changes_pending(NS, "tasks"):
            break
        await asyncio.sleep(0.05)
    assert not await store.changes_pending(NS, "tasks")
