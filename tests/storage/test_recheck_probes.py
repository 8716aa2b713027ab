"""What the shared re-checks of idle streams ask the stores, on both engines: a queue's
availability (and whether it holds anything time could make available), whether a
collection has changes not readable yet, and many transcripts' states in one call."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from strata_server.config import load_settings
from strata_server.core.job_transitions import Availability, NewJob
from strata_server.core.models import Actor, CreateRecord
from strata_server.core.transcript_rules import AppendEntries, NewTranscript, new_entry
from strata_server.storage.composite import Storage
from strata_server.storage.ports import CommitRequest
from strata_server.storage.ports.queue import LeaseTerms
from strata_server.storage.ports.write_context import WriteContext
from strata_server.storage.postgres import open_postgres
from strata_server.storage.sqlite import open_sqlite
from tests.support.cli import run_strata

NS = "default"
ALICE = Actor("alice")
LEASE = timedelta(seconds=30)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, database_url: Callable[[str], str]) -> str:
    """A fresh database of each shape, migrated as an operator does it."""
    url = database_url(request.param)
    env = {**os.environ, "STRATA_DATABASE_URL": url}
    run_strata(["migrate", "up"], env=env).check_returncode()
    return url


@pytest.fixture
async def store(url: str) -> AsyncIterator[Storage]:
    target = load_settings(database_url=url).database
    storage: Storage
    if target.kind == "sqlite":
        storage = await open_sqlite(target.path, max_record_bytes=1 << 20, readers=1)
    else:
        storage = await open_postgres(target.dsn, max_record_bytes=1 << 20, min_size=1, max_size=2)
    yield storage
    await storage.close()


async def test_a_queue_rests_only_when_it_holds_no_ready_or_leased_job(store: Storage) -> None:
    assert await store.queue.availability(NS, "q") == Availability(now=False, held=False)
    later = datetime.now(UTC) + timedelta(hours=1)
    [scheduled] = await store.queue.enqueue(
        NS, [NewJob("q", {}, run_time=later)], WriteContext(ALICE)
    )
    assert await store.queue.availability(NS, "q") == Availability(now=False, held=True)
    await store.queue.enqueue(NS, [NewJob("q", {})], WriteContext(ALICE))
    assert await store.queue.availability(NS, "q") == Availability(now=True, held=True)
    [leased] = await store.queue.lease_jobs(NS, "q", 1, LeaseTerms(LEASE, ALICE))
    assert await store.queue.availability(NS, "q") == Availability(now=False, held=True)
    await store.queue.cancel_job(NS, scheduled.id, actor=ALICE)
    assert await store.queue.availability(NS, "q") == Availability(now=False, held=True)  # leased
    await store.queue.ack_job(NS, leased.id, leased.lease_token, None, actor=ALICE)
    assert await store.queue.availability(NS, "q") == Availability(now=False, held=False)
    assert await store.queue.availability(NS, "other") == Availability(now=False, held=False)


async def test_many_transcripts_states_in_one_call(store: Storage) -> None:
    ids = [f"t{i}" for i in range(3)]
    for id in ids:
        await store.transcripts.create_transcript(NS, NewTranscript(id), WriteContext(ALICE))
    entries = (new_entry("user", "hi", None, 1 << 20), new_entry("user", "yo", None, 1 << 20))
    await store.transcripts.append_entries(NS, AppendEntries("t1", entries), WriteContext(ALICE))
    await store.transcripts.seal_transcript(NS, "t2", actor=ALICE)
    keys = [(NS, id) for id in ids] + [(NS, "missing"), ("elsewhere", "t0")]
    assert await store.transcripts.transcript_states(keys) == {
        (NS, "t0"): (1, False),
        (NS, "t1"): (3, False),
        (NS, "t2"): (1, True),
    }
    many = [(NS, f"n{i}") for i in range(1200)]  # past SQLite's chunk of bound ids
    assert await store.transcripts.transcript_states([*many, (NS, "t1")]) == {
        (NS, "t1"): (3, False)
    }
    assert await store.transcripts.transcript_states([]) == {}


async def test_changes_pending_while_an_older_transaction_runs(store: Storage, url: str) -> None:
    assert not await store.records.changes_pending(NS, "tasks")
    if not url.startswith("postgres"):
        await store.records.commit(CommitRequest(NS, [CreateRecord("tasks", "a", {})], ALICE))
        assert not await store.records.changes_pending(NS, "tasks")  # readable at once
        return
    async with await psycopg.AsyncConnection.connect(url) as older:
        await older.execute("SELECT pg_current_xact_id()")  # a transaction with an xid
        await store.records.commit(CommitRequest(NS, [CreateRecord("tasks", "a", {})], ALICE))
        assert await store.records.changes_pending(NS, "tasks")
        assert not await store.records.changes_pending(NS, "other")
        head = await store.records.changes_head(NS)
        assert (await store.records.record_changes(NS, "tasks", head, None, 10)).changes == ()
        await older.rollback()
    for _ in range(50):  # the older transaction has ended: settled
        if not await store.records.changes_pending(NS, "tasks"):
            break
        await asyncio.sleep(0.05)
    assert not await store.records.changes_pending(NS, "tasks")
