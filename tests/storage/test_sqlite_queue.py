"""The SQLite job queue against real SQLite files built from the migration SQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from strata_server.core.errors import FailedPrecondition, InvalidArgument, NotFound
from strata_server.core.models import Actor, Idempotency
from strata_server.core.queue import Job, NewJob, Stored, Visible
from strata_server.storage.composite import Storage
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


def audit(path: str, entity_id: str) -> list[tuple[str, list[str]]]:
    with raw(path) as conn:
        rows = conn.execute(
            "SELECT action, changed_fields FROM audit_log WHERE entity = 'job' AND entity_id = ? "
            "ORDER BY seq",
            (entity_id,),
        ).fetchall()
    return [(action, json.loads(fields)) for action, fields in rows]


async def put(db: Storage, payload: Any = None, **kw: Any) -> Job:
    [job] = await db.queue.enqueue(
        NS, [NewJob(Q, payload if payload is not None else {}, **kw)], actor=BOB
    )
    return job


async def lease_one(db: Storage, lease: timedelta = LEASE) -> Job:
    [job] = await db.queue.lease_jobs(NS, Q, 1, lease, actor=BOB)
    return job


async def test_enqueue_and_get(db: Storage, db_path: str) -> None:
    job = await put(db, {"n": 1, "s": "é"}, priority=3, max_attempts=4)
    assert job.state is Stored.READY and job.attempt == 0 and job.max_attempts == 4
    assert len(job.id) == 26 and job.run_time == job.create_time
    got = await db.queue.get_job(NS, job.id)
    assert got == job
    assert got.visible_state(datetime.now(UTC)) is Visible.AVAILABLE
    assert [action for action, _ in audit(db_path, job.id)] == ["enqueue"]
    with pytest.raises(NotFound, match="does not exist"):
        await db.queue.get_job(NS, "nope")
    with pytest.raises(NotFound):
        await db.queue.get_job("other", job.id)


async def test_batch_enqueue_shares_one_time(db: Storage) -> None:
    jobs = await db.queue.enqueue(NS, [NewJob(Q, {"i": i}) for i in range(5)], actor=BOB)
    assert len({job.id for job in jobs}) == 5
    assert len({job.create_time for job in jobs}) == 1


async def test_lease_order_priority_then_run_time_then_fifo(db: Storage) -> None:
    past = datetime.now(UTC) - timedelta(minutes=1)
    low = await put(db, {"n": "low"}, priority=0)
    first = await put(db, {"n": "first"}, priority=5)
    second = await put(db, {"n": "second"}, priority=5)
    early = await put(db, {"n": "early"}, priority=5, run_time=past)
    top = await put(db, {"n": "top"}, priority=9)
    leased = await db.queue.lease_jobs(NS, Q, 10, LEASE, actor=BOB)
    assert [job.id for job in leased] == [top.id, early.id, first.id, second.id, low.id]
    for job in leased:
        assert job.state is Stored.LEASED and job.attempt == 1 and job.lease_token
        assert (await db.queue.get_job(NS, job.id)).lease_token is None
    assert await db.queue.lease_jobs(NS, Q, 10, LEASE, actor=BOB) == []


async def test_max_jobs_and_other_queues(db: Storage) -> None:
    for i in range(3):
        await put(db, {"i": i})
    await db.queue.enqueue(NS, [NewJob("elsewhere", {})], actor=BOB)
    assert len(await db.queue.lease_jobs(NS, Q, 2, LEASE, actor=BOB)) == 2
    assert len(await db.queue.lease_jobs(NS, Q, 2, LEASE, actor=BOB)) == 1
    assert await db.queue.lease_jobs("other-ns", "elsewhere", 5, LEASE, actor=BOB) == []


async def test_scheduled_job_not_leased_before_run_time(db: Storage) -> None:
    job = await put(db, run_time=datetime.now(UTC) + timedelta(milliseconds=150), priority=9)
    assert job.visible_state(datetime.now(UTC)) is Visible.SCHEDULED
    assert await db.queue.lease_jobs(NS, Q, 5, LEASE, actor=BOB) == []
    stats = await db.queue.queue_stats(NS, Q)
    assert stats.counts[Visible.SCHEDULED] == 1 and stats.counts[Visible.AVAILABLE] == 0
    await asyncio.sleep(0.2)
    assert (await lease_one(db)).id == job.id


async def test_concurrent_leases_never_share_a_job(db: Storage, db_path: str) -> None:
    await db.queue.enqueue(NS, [NewJob(Q, {"i": i}) for i in range(60)], actor=BOB)
    other = await open_sqlite(db_path, max_record_bytes=4096, readers=1)
    try:
        calls = [
            (db if i % 2 else other).queue.lease_jobs(NS, Q, 3, LEASE, actor=BOB) for i in range(30)
        ]
        batches = await asyncio.gather(*calls)
    finally:
        await other.close()
    ids = [job.id for batch in batches for job in batch]
    assert len(ids) == 60 and len(set(ids)) == 60


async def test_ack_and_stale_token(db: Storage, db_path: str) -> None:
    job = await put(db)
    leased = await lease_one(db)
    assert leased.lease_token is not None
    with pytest.raises(FailedPrecondition) as caught:
        await db.queue.ack_job(NS, job.id, "0" * 32, None, actor=BOB)
    assert caught.value.reason == "LEASE_LOST"
    done = await db.queue.ack_job(NS, job.id, leased.lease_token, {"ok": True}, actor=BOB)
    assert done.state is Stored.COMPLETED and done.result == {"ok": True}
    assert done.lease_token is None and done.finish_time is not None
    assert await db.queue.get_job(NS, job.id) == done
    with pytest.raises(FailedPrecondition) as caught:
        await db.queue.ack_job(NS, job.id, leased.lease_token, None, actor=BOB)
    assert caught.value.reason == "LEASE_LOST"
    with pytest.raises(NotFound):
        await db.queue.ack_job(NS, "missing", "t", None, actor=BOB)
    actions = [action for action, _ in audit(db_path, job.id)]
    assert actions == ["enqueue", "lease", "ack"]
    assert "attempt" in audit(db_path, job.id)[1][1]


async def test_extend_lease(db: Storage) -> None:
    await put(db)
    leased = await lease_one(db, SHORT)
    assert leased.lease_token is not None and leased.lease_expire_time is not None
    extended = await db.queue.extend_lease(NS, leased.id, leased.lease_token, LEASE, actor=BOB)
    assert extended.lease_token == leased.lease_token
    assert extended.lease_expire_time is not None
    assert extended.lease_expire_time > leased.lease_expire_time
    await asyncio.sleep(0.06)
    assert await db.queue.lease_jobs(NS, Q, 1, LEASE, actor=BOB) == []  # still held


async def test_expired_lease_is_reclaimed_and_counted(db: Storage) -> None:
    job = await put(db, max_attempts=5)
    first = await lease_one(db, SHORT)
    await asyncio.sleep(0.06)
    stats = await db.queue.queue_stats(NS, Q)
    assert stats.counts[Visible.AVAILABLE] == 1 and stats.counts[Visible.LEASED] == 0
    assert stats.oldest_available_age > timedelta(0)
    assert stats.expired_leases == 0
    second = await lease_one(db)
    assert second.id == job.id and second.attempt == 2
    assert second.lease_token != first.lease_token
    assert first.lease_token is not None
    with pytest.raises(FailedPrecondition) as caught:
        await db.queue.ack_job(NS, job.id, first.lease_token, None, actor=BOB)
    assert caught.value.reason == "LEASE_LOST"
    stats = await db.queue.queue_stats(NS, Q)
    assert stats.expired_leases == 1 and stats.counts[Visible.LEASED] == 1


async def test_expired_last_attempt_dies_and_lease_moves_on(db: Storage, db_path: str) -> None:
    doomed = await put(db, priority=9, max_attempts=1)
    await lease_one(db, SHORT)
    spare = await put(db, priority=0)
    await asyncio.sleep(0.06)
    leased = await db.queue.lease_jobs(NS, Q, 1, LEASE, actor=BOB)
    assert [job.id for job in leased] == [spare.id]
    dead = await db.queue.get_job(NS, doomed.id)
    assert dead.state is Stored.DEAD and dead.last_error
    assert [action for action, _ in audit(db_path, doomed.id)][-1] == "dead"


async def test_fail_retries_with_backoff_then_dead(db: Storage, db_path: str) -> None:
    job = await put(db, max_attempts=2, retry_backoff=timedelta(milliseconds=50))
    leased = await lease_one(db)
    assert leased.lease_token is not None
    failed = await db.queue.fail_job(NS, job.id, leased.lease_token, "boom 1", None, actor=BOB)
    assert failed.state is Stored.READY and failed.last_error == "boom 1"
    assert failed.run_time > failed.update_time and failed.lease_token is None
    assert failed.visible_state(datetime.now(UTC)) is Visible.SCHEDULED
    assert await db.queue.lease_jobs(NS, Q, 1, LEASE, actor=BOB) == []
    await asyncio.sleep(0.06)
    again = await lease_one(db)
    assert again.attempt == 2 and again.lease_token is not None
    dead = await db.queue.fail_job(NS, job.id, again.lease_token, "boom 2", None, actor=BOB)
    assert dead.state is Stored.DEAD and dead.last_error == "boom 2"
    assert (await db.queue.get_job(NS, job.id)).last_error == "boom 2"
    actions = [action for action, _ in audit(db_path, job.id)]
    assert actions == ["enqueue", "lease", "fail", "lease", "dead"]


async def test_fail_with_explicit_delay(db: Storage) -> None:
    await put(db)
    leased = await lease_one(db)
    assert leased.lease_token is not None
    failed = await db.queue.fail_job(
        NS, leased.id, leased.lease_token, "x", timedelta(0), actor=BOB
    )
    assert failed.run_time == failed.update_time
    assert (await lease_one(db)).attempt == 2


async def test_cancel_leased_then_ack_fails(db: Storage) -> None:
    await put(db)
    leased = await lease_one(db)
    assert leased.lease_token is not None
    cancelled = await db.queue.cancel_job(NS, leased.id, actor=BOB)
    assert cancelled.state is Stored.CANCELLED and cancelled.lease_token is None
    with pytest.raises(FailedPrecondition) as caught:
        await db.queue.ack_job(NS, leased.id, leased.lease_token, None, actor=BOB)
    assert caught.value.reason == "LEASE_LOST"
    with pytest.raises(FailedPrecondition) as caught:
        await db.queue.cancel_job(NS, leased.id, actor=BOB)
    assert caught.value.reason == "JOB_FINISHED"


async def test_retry_dead_job(db: Storage) -> None:
    job = await put(db, max_attempts=1)
    leased = await lease_one(db)
    assert leased.lease_token is not None
    await db.queue.fail_job(NS, job.id, leased.lease_token, "boom", None, actor=BOB)
    with pytest.raises(FailedPrecondition) as caught:
        await db.queue.retry_job(NS, (await put(db)).id, actor=BOB)
    assert caught.value.reason == "JOB_NOT_RETRYABLE"
    revived = await db.queue.retry_job(NS, job.id, actor=BOB)
    assert revived.state is Stored.READY and revived.attempt == 0
    assert revived.finish_time is None and revived.last_error == "boom"
    again = await db.queue.lease_jobs(NS, Q, 5, LEASE, actor=BOB)
    assert job.id in {j.id for j in again}


async def test_retry_refused_while_unique_key_is_taken(db: Storage) -> None:
    first = await put(db, unique_key="k")
    await db.queue.cancel_job(NS, first.id, actor=BOB)
    second = await put(db, unique_key="k")
    assert second.id != first.id
    with pytest.raises(FailedPrecondition) as caught:
        await db.queue.retry_job(NS, first.id, actor=BOB)
    assert caught.value.reason == "UNIQUE_KEY_IN_USE"
    assert (await db.queue.get_job(NS, first.id)).state is Stored.CANCELLED


async def test_pause_and_resume(db: Storage, db_path: str) -> None:
    await put(db)
    await db.queue.set_paused(NS, Q, True, actor=BOB)
    assert await db.queue.lease_jobs(NS, Q, 5, LEASE, actor=BOB) == []
    assert (await db.queue.queue_stats(NS, Q)).paused
    await db.queue.set_paused(NS, Q, True, actor=BOB)  # idempotent upsert
    await db.queue.set_paused(NS, Q, False, actor=BOB)
    assert not (await db.queue.queue_stats(NS, Q)).paused
    assert len(await db.queue.lease_jobs(NS, Q, 5, LEASE, actor=BOB)) == 1
    assert [action for action, _ in audit(db_path, Q)] == ["pause", "pause", "resume"]


async def test_unique_key_concurrent_enqueues_yield_one_job(db: Storage, db_path: str) -> None:
    other = await open_sqlite(db_path, max_record_bytes=4096, readers=1)
    try:
        calls = [
            (db if i % 2 else other).queue.enqueue(
                NS, [NewJob(Q, {"i": i}, unique_key="u")], actor=BOB
            )
            for i in range(50)
        ]
        results = await asyncio.gather(*calls)
    finally:
        await other.close()
    ids = {job.id for [job] in results}
    assert len(ids) == 1
    [id] = ids
    assert len(audit(db_path, id)) == 1
    # Same key twice in one batch: the second yields the first.
    a, b = await db.queue.enqueue(
        NS, [NewJob(Q, {}, unique_key="v"), NewJob(Q, {}, unique_key="v")], actor=BOB
    )
    assert a.id == b.id
    # Another queue has its own keys.
    [elsewhere] = await db.queue.enqueue(NS, [NewJob("q2", {}, unique_key="u")], actor=BOB)
    assert elsewhere.id != id
    # Once the job is finished the key is free again.
    leased = await db.queue.lease_jobs(NS, Q, 5, LEASE, actor=BOB)
    held = next(job for job in leased if job.id == id)
    assert held.lease_token is not None
    again = await put(db, unique_key="u")
    assert again.id == id and again.state is Stored.LEASED and again.lease_token is None
    await db.queue.ack_job(NS, id, held.lease_token, None, actor=BOB)
    fresh = await put(db, unique_key="u")
    assert fresh.id != id and fresh.state is Stored.READY


async def test_idempotent_enqueue(db: Storage) -> None:
    key = Idempotency("req-1", "fp-1")
    jobs = [NewJob(Q, {"i": 1}, retry_backoff=timedelta(seconds=2)), NewJob(Q, {"i": 2})]
    first = await db.queue.enqueue(NS, jobs, actor=BOB, idempotency=key)
    again = await db.queue.enqueue(NS, jobs, actor=BOB, idempotency=key)
    assert again == first
    listed = await db.queue.list_jobs(NS, Q, None, 10, None)
    assert len(listed.items) == 2
    with pytest.raises(InvalidArgument) as caught:
        await db.queue.enqueue(NS, jobs[:1], actor=BOB, idempotency=Idempotency("req-1", "fp-2"))
    assert caught.value.violations[0].field == "request_id"
    # Request ids are per namespace.
    elsewhere = await db.queue.enqueue("other", jobs, actor=BOB, idempotency=key)
    assert {job.id for job in elsewhere}.isdisjoint(job.id for job in first)


async def test_list_jobs_paging_and_state_filter(db: Storage) -> None:
    jobs = []
    for i in range(5):
        jobs.append(await put(db, {"i": i}))
    future = await put(db, run_time=datetime.now(UTC) + timedelta(hours=1))
    leased = await lease_one(db)
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = await db.queue.list_jobs(NS, Q, None, 2, after)
        seen.extend(job.id for job in page.items)
        pages += 1
        if page.last_key is None:
            break
        after = page.last_key
    assert seen == [job.id for job in [*jobs, future]] and pages == 3
    assert all(
        job.lease_token is None for job in (await db.queue.list_jobs(NS, Q, None, 9, None)).items
    )

    async def ids(state: Visible) -> list[str]:
        return [job.id for job in (await db.queue.list_jobs(NS, Q, state, 10, None)).items]

    assert await ids(Visible.SCHEDULED) == [future.id]
    assert await ids(Visible.LEASED) == [leased.id]
    assert await ids(Visible.AVAILABLE) == [job.id for job in jobs if job.id != leased.id]
    assert await ids(Visible.COMPLETED) == []
    with pytest.raises(InvalidArgument):
        await db.queue.list_jobs(NS, Q, None, 2, ("x", 1))
    page = await db.queue.list_jobs(NS, Q, None, 2, (jobs[1].create_time, jobs[1].id))
    assert [job.id for job in page.items] == [jobs[2].id, jobs[3].id]
    stats = await db.queue.queue_stats(NS, Q)
    assert stats.counts[Visible.AVAILABLE] == 4
    assert stats.counts[Visible.SCHEDULED] == 1 and stats.counts[Visible.LEASED] == 1
    assert stats.counts[Visible.DEAD] == 0


async def test_purge_completed(db: Storage, db_path: str) -> None:
    for _ in range(3):
        await put(db)
    kept = await put(db)
    for job in await db.queue.lease_jobs(NS, Q, 3, LEASE, actor=BOB):
        assert job.lease_token is not None
        await db.queue.ack_job(NS, job.id, job.lease_token, None, actor=BOB)
    assert await db.queue.purge_completed(datetime.now(UTC) - timedelta(hours=1), 10) == 0
    assert await db.queue.purge_completed(datetime.now(UTC), 2) == 2
    assert await db.queue.purge_completed(datetime.now(UTC), 2) == 1
    assert await db.queue.purge_completed(datetime.now(UTC), 2) == 0
    assert (await db.queue.get_job(NS, kept.id)).state is Stored.READY
    with raw(db_path) as conn:
        conn.execute(
            "INSERT INTO lease_expiries VALUES (?, ?, 'j', 0), (?, ?, 'k', ?)",
            (NS, Q, NS, Q, int(datetime.now(UTC).timestamp() * 1e6)),
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
    from yoyo import get_backend, read_migrations

    backend = get_backend(f"sqlite:///{db_path}")
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
