"""The PostgreSQL job queue against the session's PostgreSQL 15 (tests/support/pg.py).

One database of the session's server per module, schema from
migrations/postgres/0001_records.sql and 0002_queue.sql; every test works in its own namespace.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from strata_server.core.errors import FailedPrecondition, InvalidArgument, NotFound
from strata_server.core.models import Actor, Idempotency
from strata_server.core.queue import Job, NewJob, Stored, Visible
from strata_server.storage.composite import Storage
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
        ns, [NewJob(queue, kw.pop("payload", {"n": 1}), **kw)], actor=ACTOR
    )
    return job


async def expire_leases(pg: Database, ns: str) -> None:
    await sql(
        pg,
        "UPDATE jobs SET lease_expire_time = now() - interval '1 second' "
        "WHERE namespace = %s AND state = 'leased'",
        ns,
    )


async def test_enqueue_get_and_audit(db: Storage, pg: Database, ns: str) -> None:
    job = await put(db, ns, payload={"task": "x"}, priority=3, max_attempts=5)
    assert job.state is Stored.READY and job.attempt == 0 and len(job.id) == 26
    assert job.run_time == job.create_time == job.update_time
    assert await db.queue.get_job(ns, job.id) == job
    with pytest.raises(NotFound, match="job nope does not exist"):
        await db.queue.get_job(ns, "nope")
    with pytest.raises(NotFound):
        await db.queue.ack_job(ns, "nope", "t", None, actor=ACTOR)
    rows = await sql(
        pg, "SELECT action, entity, entity_id, actor FROM audit_log WHERE namespace = %s", ns
    )
    assert rows == [("enqueue", "job", job.id, "tester")]
    with pytest.raises(InvalidArgument) as bad:
        await db.queue.enqueue(ns, [NewJob("q", {}), NewJob("q", {"s": "a\x00b"})], actor=ACTOR)
    assert bad.value.metadata["job_index"] == "1"
    assert len((await db.queue.list_jobs(ns, "q", None, 10, None)).items) == 1


async def test_lease_order_priority_run_time_fifo(db: Storage, ns: str) -> None:
    base = datetime.now(UTC) - timedelta(minutes=1)
    low = await put(db, ns, priority=0, run_time=base)
    late = await put(db, ns, priority=5, run_time=base + timedelta(seconds=2))
    early = await put(db, ns, priority=5, run_time=base + timedelta(seconds=1))
    fifo_a = await put(db, ns, priority=1, run_time=base)
    fifo_b = await put(db, ns, priority=1, run_time=base)
    leased = await db.queue.lease_jobs(ns, "q", 10, LEASE, actor=ACTOR)
    assert [job.id for job in leased] == [early.id, late.id, fifo_a.id, fifo_b.id, low.id]
    assert all(job.state is Stored.LEASED and job.attempt == 1 for job in leased)
    assert all(job.lease_token for job in leased)
    assert len({job.lease_token for job in leased}) == 5
    assert (await db.queue.get_job(ns, low.id)).lease_token is None
    assert await db.queue.lease_jobs(ns, "q", 10, LEASE, actor=ACTOR) == []
    assert await db.queue.lease_jobs(ns, "other", 10, LEASE, actor=ACTOR) == []


async def test_scheduled_not_leased_early(db: Storage, ns: str) -> None:
    future = await put(db, ns, run_time=datetime.now(UTC) + timedelta(seconds=1))
    now_job = await put(db, ns)
    leased = await db.queue.lease_jobs(ns, "q", 10, LEASE, actor=ACTOR)
    assert [job.id for job in leased] == [now_job.id]
    stats = await db.queue.queue_stats(ns, "q")
    assert stats.counts[Visible.SCHEDULED] == 1 and stats.counts[Visible.LEASED] == 1
    assert stats.counts[Visible.AVAILABLE] == 0
    assert stats.oldest_available_age == timedelta(0)
    await asyncio.sleep(1.05)
    [later] = await db.queue.lease_jobs(ns, "q", 10, LEASE, actor=ACTOR)
    assert later.id == future.id


async def test_concurrent_leases_never_share_a_job(db: Storage, ns: str) -> None:
    await db.queue.enqueue(ns, [NewJob("q", {"i": i}) for i in range(500)], actor=ACTOR)

    async def worker() -> list[str]:
        got: list[str] = []
        while batch := await db.queue.lease_jobs(ns, "q", 7, LEASE, actor=ACTOR):
            got.extend(job.id for job in batch)
        return got

    results = await asyncio.gather(*(worker() for _ in range(20)))
    counts = Counter(job_id for got in results for job_id in got)
    assert len(counts) == 500 and set(counts.values()) == {1}
    assert sum(1 for got in results if got) > 1  # the work was really shared


async def test_stale_token_is_lease_lost(db: Storage, ns: str) -> None:
    await put(db, ns)
    [job] = await db.queue.lease_jobs(ns, "q", 1, LEASE, actor=ACTOR)
    assert job.lease_token is not None
    with pytest.raises(FailedPrecondition) as lost:
        await db.queue.ack_job(ns, job.id, "not-the-token", None, actor=ACTOR)
    assert lost.value.reason == "LEASE_LOST"
    extended = await db.queue.extend_lease(
        ns, job.id, job.lease_token, timedelta(minutes=5), actor=ACTOR
    )
    assert extended.lease_token == job.lease_token
    assert extended.lease_expire_time is not None and job.lease_expire_time is not None
    assert extended.lease_expire_time > job.lease_expire_time
    done = await db.queue.ack_job(ns, job.id, job.lease_token, {"ok": True}, actor=ACTOR)
    assert done.state is Stored.COMPLETED and done.result == {"ok": True}
    assert done.lease_token is None and done.finish_time is not None
    with pytest.raises(FailedPrecondition) as again:
        await db.queue.ack_job(ns, job.id, job.lease_token, None, actor=ACTOR)
    assert again.value.reason == "LEASE_LOST"


async def test_expired_lease_reclaimed(db: Storage, pg: Database, ns: str) -> None:
    await put(db, ns, max_attempts=2)
    [first] = await db.queue.lease_jobs(ns, "q", 1, LEASE, actor=ACTOR)
    await expire_leases(pg, ns)
    stats = await db.queue.queue_stats(ns, "q")
    assert stats.counts[Visible.AVAILABLE] == 1 and stats.expired_leases == 0
    assert stats.oldest_available_age > timedelta(0)
    [second] = await db.queue.lease_jobs(ns, "q", 1, LEASE, actor=ACTOR)
    assert second.id == first.id and second.attempt == 2
    assert second.lease_token != first.lease_token
    assert first.lease_token is not None
    with pytest.raises(FailedPrecondition):
        await db.queue.ack_job(ns, first.id, first.lease_token, None, actor=ACTOR)
    stats = await db.queue.queue_stats(ns, "q")
    assert stats.expired_leases == 1 and stats.counts[Visible.LEASED] == 1
    # Expired on its last attempt: dies instead of being leased, and is not returned.
    await expire_leases(pg, ns)
    assert await db.queue.lease_jobs(ns, "q", 1, LEASE, actor=ACTOR) == []
    dead = await db.queue.get_job(ns, first.id)
    assert dead.state is Stored.DEAD and dead.last_error == "lease expired on the last attempt"
    assert (await db.queue.queue_stats(ns, "q")).expired_leases == 2
    actions = await sql(pg, "SELECT action FROM audit_log WHERE namespace = %s ORDER BY seq", ns)
    assert [a for (a,) in actions] == ["enqueue", "lease", "lease", "dead"]


async def test_fail_backoff_then_dead(db: Storage, ns: str) -> None:
    job = await put(db, ns, max_attempts=2, retry_backoff=timedelta(seconds=10))
    [leased] = await db.queue.lease_jobs(ns, "q", 1, LEASE, actor=ACTOR)
    assert leased.lease_token is not None
    failed = await db.queue.fail_job(ns, job.id, leased.lease_token, "boom", None, actor=ACTOR)
    assert failed.state is Stored.READY and failed.last_error == "boom"
    assert failed.visible_state(datetime.now(UTC)) is Visible.SCHEDULED
    assert timedelta(seconds=7) < failed.run_time - failed.update_time <= timedelta(seconds=10)
    assert await db.queue.lease_jobs(ns, "q", 1, LEASE, actor=ACTOR) == []
    with pytest.raises(FailedPrecondition):  # the failed lease is gone
        await db.queue.fail_job(ns, job.id, leased.lease_token, "again", None, actor=ACTOR)
    # Dead-lettering: cancel and retry it (attempts start over), then fail twice with
    # an explicit retry_delay of zero, which makes it available again at once.
    await db.queue.cancel_job(ns, job.id, actor=ACTOR)
    retried = await db.queue.retry_job(ns, job.id, actor=ACTOR)
    assert retried.state is Stored.READY and retried.attempt == 0
    [leased] = await db.queue.lease_jobs(ns, "q", 1, LEASE, actor=ACTOR)
    assert leased.lease_token is not None
    failed = await db.queue.fail_job(
        ns, job.id, leased.lease_token, "e1", timedelta(0), actor=ACTOR
    )
    assert failed.state is Stored.READY
    [leased] = await db.queue.lease_jobs(ns, "q", 1, LEASE, actor=ACTOR)
    assert leased.attempt == 2 and leased.lease_token is not None
    dead = await db.queue.fail_job(ns, job.id, leased.lease_token, "e2", timedelta(0), actor=ACTOR)
    assert dead.state is Stored.DEAD and dead.last_error == "e2" and dead.finish_time
    assert (await db.queue.get_job(ns, job.id)).last_error == "e2"
    assert (await db.queue.queue_stats(ns, "q")).counts[Visible.DEAD] == 1


async def test_cancel_and_retry(db: Storage, ns: str) -> None:
    job = await put(db, ns)
    [leased] = await db.queue.lease_jobs(ns, "q", 1, LEASE, actor=ACTOR)
    assert leased.lease_token is not None
    cancelled = await db.queue.cancel_job(ns, job.id, actor=ACTOR)
    assert cancelled.state is Stored.CANCELLED and cancelled.lease_token is None
    with pytest.raises(FailedPrecondition) as lost:
        await db.queue.ack_job(ns, job.id, leased.lease_token, None, actor=ACTOR)
    assert lost.value.reason == "LEASE_LOST"
    with pytest.raises(FailedPrecondition) as finished:
        await db.queue.cancel_job(ns, job.id, actor=ACTOR)
    assert finished.value.reason == "JOB_FINISHED"
    retried = await db.queue.retry_job(ns, job.id, actor=ACTOR)
    assert retried.state is Stored.READY and retried.attempt == 0
    assert retried.finish_time is None
    with pytest.raises(FailedPrecondition) as not_retryable:
        await db.queue.retry_job(ns, job.id, actor=ACTOR)
    assert not_retryable.value.reason == "JOB_NOT_RETRYABLE"
    [again] = await db.queue.lease_jobs(ns, "q", 1, LEASE, actor=ACTOR)
    assert again.id == job.id and again.attempt == 1


async def test_retry_dead_with_taken_unique_key(db: Storage, ns: str) -> None:
    job = await put(db, ns, unique_key="k")
    await db.queue.cancel_job(ns, job.id, actor=ACTOR)
    other = await put(db, ns, unique_key="k")
    assert other.id != job.id
    with pytest.raises(FailedPrecondition) as taken:
        await db.queue.retry_job(ns, job.id, actor=ACTOR)
    assert taken.value.reason == "UNIQUE_KEY_IN_USE"
    assert (await db.queue.get_job(ns, job.id)).state is Stored.CANCELLED


async def test_pause_resume(db: Storage, pg: Database, ns: str) -> None:
    await put(db, ns)
    await db.queue.set_paused(ns, "q", True, actor=ACTOR)
    assert (await db.queue.queue_stats(ns, "q")).paused
    assert await db.queue.lease_jobs(ns, "q", 5, LEASE, actor=ACTOR) == []
    await db.queue.set_paused(ns, "q", True, actor=ACTOR)  # idempotent upsert
    await db.queue.set_paused(ns, "q", False, actor=ACTOR)
    stats = await db.queue.queue_stats(ns, "q")
    assert not stats.paused and stats.counts[Visible.AVAILABLE] == 1
    assert len(await db.queue.lease_jobs(ns, "q", 5, LEASE, actor=ACTOR)) == 1
    rows = await sql(
        pg,
        "SELECT action, entity_id FROM audit_log WHERE namespace = %s AND action <> 'enqueue' "
        "AND action <> 'lease' ORDER BY seq",
        ns,
    )
    assert rows == [("pause", "q"), ("pause", "q"), ("resume", "q")]


async def test_concurrent_unique_key_yields_one_job(db: Storage, ns: str) -> None:
    results = await asyncio.gather(
        *(put(db, ns, unique_key="once", payload={"i": i}) for i in range(50))
    )
    assert len({job.id for job in results}) == 1
    assert len((await db.queue.list_jobs(ns, "q", None, 100, None)).items) == 1
    # Same key in another queue, and twice in one batch.
    a, b = await db.queue.enqueue(
        ns, [NewJob("q2", {}, unique_key="once"), NewJob("q2", {}, unique_key="once")], actor=ACTOR
    )
    assert a.id == b.id and a.queue == "q2"
    # Once the holder finished, the key is free again.
    [leased] = await db.queue.lease_jobs(ns, "q", 1, LEASE, actor=ACTOR)
    assert leased.lease_token is not None
    await db.queue.ack_job(ns, leased.id, leased.lease_token, None, actor=ACTOR)
    fresh = await put(db, ns, unique_key="once")
    assert fresh.id != leased.id


async def test_idempotent_enqueue(db: Storage, pg: Database, ns: str) -> None:
    key = Idempotency("r1", "fp1")
    jobs = [NewJob("q", {"i": 1}), NewJob("q", {"i": 2}, unique_key="u")]
    first = await db.queue.enqueue(ns, jobs, actor=ACTOR, idempotency=key)
    again = await db.queue.enqueue(ns, jobs, actor=ACTOR, idempotency=key)
    assert again == first
    with pytest.raises(InvalidArgument) as reused:
        await db.queue.enqueue(ns, jobs, actor=ACTOR, idempotency=Idempotency("r1", "other"))
    assert reused.value.violations[0].field == "request_id"
    assert len((await db.queue.list_jobs(ns, "q", None, 100, None)).items) == 2
    # A retry whose job was skipped for its unique_key stores the holder's job.
    holder = await put(db, ns, queue="z", unique_key="h")
    key2 = Idempotency("r2", "fp2")
    [got] = await db.queue.enqueue(
        ns, [NewJob("z", {}, unique_key="h")], actor=ACTOR, idempotency=key2
    )
    assert got == holder
    assert await db.queue.enqueue(ns, [NewJob("z", {})], actor=ACTOR, idempotency=key2) == [holder]
    count = await sql(pg, "SELECT count(*) FROM audit_log WHERE namespace = %s", ns)
    assert count == [(3,)]


async def test_list_jobs_paging_and_state_filter(db: Storage, ns: str) -> None:
    created = await db.queue.enqueue(ns, [NewJob("q", {"i": i}) for i in range(7)], actor=ACTOR)
    await put(db, ns, queue="other")
    future = await put(db, ns, run_time=datetime.now(UTC) + timedelta(hours=1))
    seen: list[str] = []
    keys: list[tuple[datetime, str]] = []
    after = None
    pages = 0
    while True:
        page = await db.queue.list_jobs(ns, "q", None, 3, after)
        seen.extend(job.id for job in page.items)
        keys.extend((job.create_time, job.id) for job in page.items)
        pages += 1
        if page.last_key is None:
            break
        after = page.last_key
    assert keys == sorted(keys) and len(set(seen)) == 8 and pages == 3
    assert set(seen) == {job.id for job in created} | {future.id}

    leased = await db.queue.lease_jobs(ns, "q", 2, LEASE, actor=ACTOR)
    assert all(job.lease_token for job in leased)

    async def ids(state: Visible) -> set[str]:
        page = await db.queue.list_jobs(ns, "q", state, 100, None)
        assert all(job.lease_token is None for job in page.items)
        return {job.id for job in page.items}

    assert await ids(Visible.LEASED) == {job.id for job in leased}
    assert await ids(Visible.SCHEDULED) == {future.id}
    assert len(await ids(Visible.AVAILABLE)) == 5
    assert await ids(Visible.COMPLETED) == set()
    token = leased[0].lease_token
    assert token is not None
    await db.queue.ack_job(ns, leased[0].id, token, None, actor=ACTOR)
    assert await ids(Visible.COMPLETED) == {leased[0].id}


async def test_purge_completed(db: Storage, pg: Database, ns: str) -> None:
    await db.queue.enqueue(ns, [NewJob("q", {"i": i}) for i in range(4)], actor=ACTOR)
    leased = await db.queue.lease_jobs(ns, "q", 3, LEASE, actor=ACTOR)
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
    created = await db.queue.enqueue(ns, [NewJob("q", {"i": i}) for i in range(3)], actor=ACTOR)
    jobs = sorted(created, key=lambda job: (job.create_time, job.id))  # one create_time
    first = jobs[0]
    micros = (first.create_time - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    page = await db.queue.list_jobs(ns, "q", None, 10, (micros, first.id))
    assert [job.id for job in page.items] == [job.id for job in jobs[1:]]
    with pytest.raises(InvalidArgument):
        await db.queue.list_jobs(ns, "q", None, 10, ("x",))
