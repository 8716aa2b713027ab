"""The PostgreSQL job queue's own paths (tests/ports/test_queue.py holds what both
engines share): payloads jsonb cannot hold, old lease expiries purged, SQLite's page
keys accepted.

One database of the session's server per module, schema from
migrations/postgres/0001_records.sql and 0002_queue.sql; every test works in its own namespace.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from strata_server.core.errors import InvalidArgument
from strata_server.core.job_transitions import Job, NewJob, Visible
from strata_server.core.models import Actor
from strata_server.storage.composite import Storage
from strata_server.storage.ports.queue import JobQuery, LeaseTerms
from strata_server.storage.ports.write_context import WriteContext
from strata_server.storage.postgres import open_postgres
from tests.storage.conftest import Database, database_with

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations" / "postgres"
ACTOR = Actor("tester")
LEASE = timedelta(seconds=30)


@pytest.fixture(scope="module")
def pg(pg: Database) -> Database:
    return database_with(pg, "0001_records.sql", "0002_queue.sql")


@pytest.fixture(scope="module")
async def db(pg: Database) -> AsyncIterator[Storage]:
    database = await open_postgres(pg.dsn, max_record_bytes=64 * 1024, max_size=25)
    yield database
    await database.close()


@pytest.fixture
def ns() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


async def sql(pg: Database, query: str, *params: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(pg.dsn, autocommit=True) as conn:
        cursor = await conn.execute(query, params)
        return await cursor.fetchall() if cursor.description else []


async def put(db: Storage, ns: str, queue: str = "q", **kw: Any) -> Job:
    [job] = await db.queue.enqueue(
        ns, [NewJob(queue, kw.pop("payload", {"n": 1}), **kw)], WriteContext(ACTOR)
    )
    return job


async def test_a_payload_jsonb_cannot_hold_is_refused_with_its_index(db: Storage, ns: str) -> None:
    with pytest.raises(InvalidArgument) as bad:
        await db.queue.enqueue(
            ns, [NewJob("q", {}), NewJob("q", {"s": "a\x00b"})], WriteContext(ACTOR)
        )
    assert bad.value.metadata["job_index"] == "1"
    assert (await db.queue.list_jobs(ns, JobQuery("q", None, 10))).items == []


async def test_purge_completed(db: Storage, pg: Database, ns: str) -> None:
    await db.queue.enqueue(ns, [NewJob("q", {"i": i}) for i in range(4)], WriteContext(ACTOR))
    leased = await db.queue.lease_jobs(ns, "q", 3, LeaseTerms(LEASE, ACTOR))
    for job in leased:
        assert job.lease_token is not None
        await db.queue.ack_job(ns, job.id, job.lease_token, None, actor=ACTOR)
    await sql(
        pg,
        "INSERT INTO lease_expiries VALUES (%s, 'q', now() - interval '1 hour', 'old')",
        ns,
    )
    assert await db.queue.purge_completed(datetime.now(UTC) - timedelta(hours=1), 10) == 0
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert await db.queue.purge_completed(later, 2) == 2
    assert await db.queue.purge_completed(later, 10) >= 1
    assert await db.queue.purge_completed(later, 0) == 0
    stats = await db.queue.queue_stats(ns, "q")
    assert stats.counts[Visible.COMPLETED] == 0 and stats.counts[Visible.AVAILABLE] == 1
    assert await sql(pg, "SELECT * FROM lease_expiries WHERE namespace = %s", ns) == []


async def test_list_jobs_accepts_micros_key(db: Storage, ns: str) -> None:
    created = await db.queue.enqueue(
        ns, [NewJob("q", {"i": i}) for i in range(3)], WriteContext(ACTOR)
    )
    jobs = sorted(created, key=lambda job: (job.create_time, job.id))  # one create_time
    first = jobs[0]
    micros = (first.create_time - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    page = await db.queue.list_jobs(ns, JobQuery("q", None, 10, (micros, first.id)))
    assert [job.id for job in page.items] == [job.id for job in jobs[1:]]
    with pytest.raises(InvalidArgument):
        await db.queue.list_jobs(ns, JobQuery("q", None, 10, ("x",)))
