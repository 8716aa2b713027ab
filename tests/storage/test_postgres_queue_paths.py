"""The PostgreSQL adapter's own paths, against a real PostgreSQL 15: the queue's
release_job, held_leases, lease tokens with a prefix, and the one-statement
ack/release/extend/lease with their fallbacks (the audit entries they write, the
errors of a lost lease); and the order of the record change feed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from strata_server.core.errors import FailedPrecondition, NotFound
from strata_server.core.job_transitions import (
    Job,
    NewJob,
    Stored,
    Visible,
    plan_ack,
    plan_extend,
    plan_lease,
    plan_release,
)
from strata_server.core.models import Actor
from strata_server.storage.composite import Storage
from strata_server.storage.ports.queue import Failure, LeaseTerms
from strata_server.storage.ports.write_context import WriteContext
from strata_server.storage.postgres import open_postgres
from strata_server.storage.postgres.job_rows import _changed
from strata_server.storage.postgres.queue import FIRST_TOKENS
from tests.storage.conftest import Database, database_with, every_migration

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations" / "postgres"
ACTOR = Actor("tester")
LEASE = timedelta(seconds=30)
HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def pg(pg: Database) -> Database:
    return database_with(pg, *every_migration())


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


async def lease_one(db: Storage, ns: str, token_prefix: str = "") -> tuple[Job, str]:
    [job] = await db.queue.lease_jobs(ns, "q", 1, LeaseTerms(LEASE, ACTOR, token_prefix))
    assert job.lease_token is not None
    return job, job.lease_token


async def audits(pg: Database, ns: str) -> list[tuple[Any, ...]]:
    """(action, entity_id, version, changed_fields, actor) in log order."""
    return await sql(
        pg,
        "SELECT action, entity_id, version, changed_fields, actor FROM audit_log "
        "WHERE namespace = %s ORDER BY seq",
        ns,
    )


async def expire_leases(pg: Database, ns: str) -> None:
    await sql(
        pg,
        "UPDATE jobs SET lease_expire_time = now() - interval '1 second' "
        "WHERE namespace = %s AND state = 'leased'",
        ns,
    )


# --- Tokens ---------------------------------------------------------------------------


async def test_lease_tokens_with_and_without_prefix(db: Storage, ns: str) -> None:
    await db.queue.enqueue(ns, [NewJob("q", {"i": i}) for i in range(4)], WriteContext(ACTOR))
    plain = await db.queue.lease_jobs(ns, "q", 2, LeaseTerms(LEASE, ACTOR))
    tagged = await db.queue.lease_jobs(ns, "q", 2, LeaseTerms(LEASE, ACTOR, token_prefix="sub1"))
    assert all(job.lease_token and HEX32.fullmatch(job.lease_token) for job in plain)
    for job in tagged:
        assert job.lease_token is not None
        prefix, _, rest = job.lease_token.partition(".")
        assert prefix == "sub1" and HEX32.fullmatch(rest)
    tokens = {job.lease_token for job in plain + tagged}
    assert len(tokens) == 4


# --- Ack ------------------------------------------------------------------------------


async def test_ack_result_and_audit(db: Storage, pg: Database, ns: str) -> None:
    first = await put(db, ns)
    second = await put(db, ns)
    job, token = await lease_one(db, ns)
    assert job.id == first.id
    done = await db.queue.ack_job(ns, job.id, token, {"ok": [1, "two"]}, actor=Actor("acker"))
    assert done.state is Stored.COMPLETED and done.result == {"ok": [1, "two"]}
    assert done.lease_token is None and done.lease_expire_time is None
    assert done.finish_time == done.update_time and done.attempt == 1
    assert done.payload == {"n": 1} and done.create_time == first.create_time
    assert await db.queue.get_job(ns, job.id) == done
    # No result: `result` is unchanged (None), so not among the changed fields.
    job2, token2 = await lease_one(db, ns)
    assert job2.id == second.id
    plain = await db.queue.ack_job(ns, job2.id, token2, None, actor=ACTOR)
    assert plain.result is None and plain.state is Stored.COMPLETED
    rows = [row for row in await audits(pg, ns) if row[0] == "ack"]
    assert rows == [
        (
            "ack",
            first.id,
            1,
            ["state", "lease_token", "lease_expire_time", "result", "finish_time"],
            "acker",
        ),
        (
            "ack",
            second.id,
            1,
            ["state", "lease_token", "lease_expire_time", "finish_time"],
            "tester",
        ),
    ]


async def test_ack_errors(db: Storage, pg: Database, ns: str) -> None:
    with pytest.raises(NotFound, match="job nope does not exist"):
        await db.queue.ack_job(ns, "nope", "t", None, actor=ACTOR)
    ready = await put(db, ns)
    with pytest.raises(FailedPrecondition) as lost:
        await db.queue.ack_job(ns, ready.id, "t", None, actor=ACTOR)
    assert lost.value.reason == "LEASE_LOST" and lost.value.metadata == {"state": "available"}
    assert f"job {ready.id} is not leased under this token" in str(lost.value)
    job, token = await lease_one(db, ns)
    with pytest.raises(FailedPrecondition) as wrong:
        await db.queue.ack_job(ns, job.id, token + "x", None, actor=ACTOR)
    assert wrong.value.reason == "LEASE_LOST" and wrong.value.metadata == {"state": "leased"}
    await expire_leases(pg, ns)
    with pytest.raises(FailedPrecondition) as expired:
        await db.queue.ack_job(ns, job.id, token, None, actor=ACTOR)
    assert expired.value.metadata == {"state": "available"}
    assert (await db.queue.get_job(ns, job.id)).state is Stored.LEASED
    assert [row[0] for row in await audits(pg, ns)] == ["enqueue", "lease"]


async def test_concurrent_acks_one_wins(db: Storage, pg: Database, ns: str) -> None:
    await put(db, ns)
    job, token = await lease_one(db, ns)
    results = await asyncio.gather(
        *(db.queue.ack_job(ns, job.id, token, {"i": i}, actor=ACTOR) for i in range(10)),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, Job)]
    lost = [r for r in results if isinstance(r, FailedPrecondition)]
    assert len(won) == 1 and len(lost) == 9
    assert all(error.metadata == {"state": "completed"} for error in lost)
    assert [row[0] for row in await audits(pg, ns)] == ["enqueue", "lease", "ack"]


# --- Release, extend, fail ------------------------------------------------------------


async def test_release(db: Storage, pg: Database, ns: str) -> None:
    with pytest.raises(NotFound):
        await db.queue.release_job(ns, "nope", "t", actor=ACTOR)
    queued = await put(db, ns, run_time=datetime.now(UTC) - timedelta(minutes=5))
    job, token = await lease_one(db, ns, token_prefix="s")
    assert job.attempt == 1
    with pytest.raises(FailedPrecondition) as lost:
        await db.queue.release_job(ns, job.id, "s.other", actor=ACTOR)
    assert lost.value.reason == "LEASE_LOST"
    released = await db.queue.release_job(ns, job.id, token, actor=ACTOR)
    assert released.state is Stored.READY and released.attempt == 0
    assert released.lease_token is None and released.lease_expire_time is None
    assert released.run_time == released.update_time > queued.run_time
    assert released.visible_state(datetime.now(UTC)) is Visible.AVAILABLE
    assert await db.queue.get_job(ns, job.id) == released
    with pytest.raises(FailedPrecondition):
        await db.queue.release_job(ns, job.id, token, actor=ACTOR)
    again, _ = await lease_one(db, ns)
    assert again.id == job.id and again.attempt == 1
    rows = await audits(pg, ns)
    assert rows[2] == (
        "release",
        job.id,
        0,
        ["state", "run_time", "attempt", "lease_token", "lease_expire_time"],
        "tester",
    )


async def test_extend(db: Storage, pg: Database, ns: str) -> None:
    with pytest.raises(NotFound):
        await db.queue.extend_lease(ns, "nope", "t", LEASE, actor=ACTOR)
    await put(db, ns)
    job, token = await lease_one(db, ns)
    extended = await db.queue.extend_lease(ns, job.id, token, timedelta(minutes=5), actor=ACTOR)
    assert extended.lease_token == token and extended.state is Stored.LEASED
    assert extended.lease_expire_time == extended.update_time + timedelta(minutes=5)
    with pytest.raises(FailedPrecondition) as lost:
        await db.queue.extend_lease(ns, job.id, "other", LEASE, actor=ACTOR)
    assert lost.value.reason == "LEASE_LOST"
    stored = await db.queue.get_job(ns, job.id)
    assert stored.lease_expire_time == extended.lease_expire_time
    rows = await audits(pg, ns)
    assert rows[2] == ("extend", job.id, 1, ["lease_expire_time"], "tester")


async def test_fail_audits(db: Storage, pg: Database, ns: str) -> None:
    job = await put(db, ns, max_attempts=2)
    _, token = await lease_one(db, ns)
    await db.queue.fail_job(ns, job.id, token, Failure("boom", timedelta(0)), actor=ACTOR)
    _, token = await lease_one(db, ns)
    dead = await db.queue.fail_job(ns, job.id, token, Failure("boom"), actor=ACTOR)
    assert dead.state is Stored.DEAD
    rows = [row[:4] for row in await audits(pg, ns)]
    assert rows[2] == (
        "fail",
        job.id,
        1,
        ["state", "run_time", "lease_token", "lease_expire_time", "last_error"],
    )
    assert rows[4] == (
        "dead",
        job.id,
        2,
        ["state", "lease_token", "lease_expire_time", "finish_time"],
    )


# --- held_leases ----------------------------------------------------------------------


async def test_held_leases(db: Storage, pg: Database, ns: str) -> None:
    assert await db.queue.held_leases(ns, {}) == set()
    await db.queue.enqueue(ns, [NewJob("q", {"i": i}) for i in range(4)], WriteContext(ACTOR))
    a, b, c, d = await db.queue.lease_jobs(ns, "q", 4, LeaseTerms(LEASE, ACTOR, token_prefix="s"))
    tokens = {job.id: job.lease_token or "" for job in (a, b, c, d)}
    assert await db.queue.held_leases(ns, tokens) == set(tokens)
    assert await db.queue.held_leases("elsewhere", tokens) == set()
    await db.queue.ack_job(ns, a.id, tokens[a.id], None, actor=ACTOR)
    await db.queue.release_job(ns, b.id, tokens[b.id], actor=ACTOR)
    wrong = {**tokens, c.id: "s.nothex", "unknown": "s.x"}
    assert await db.queue.held_leases(ns, wrong) == {d.id}
    await expire_leases(pg, ns)
    assert await db.queue.held_leases(ns, tokens) == set()


# --- Lease ----------------------------------------------------------------------------


async def test_lease_audits_and_expiry_paths(db: Storage, pg: Database, ns: str) -> None:
    doomed = await put(db, ns, max_attempts=1, priority=9)
    again = await put(db, ns, max_attempts=3, priority=8)
    fresh = await db.queue.enqueue(
        ns, [NewJob("q", {"i": i}) for i in range(3)], WriteContext(ACTOR)
    )
    first = await db.queue.lease_jobs(ns, "q", 2, LeaseTerms(LEASE, ACTOR))
    assert [job.id for job in first] == [doomed.id, again.id]
    await expire_leases(pg, ns)
    # The dead one uses up no slot: 3 wanted, 3 leased (the reclaimed one among them).
    leased = await db.queue.lease_jobs(ns, "q", 3, LeaseTerms(LEASE, ACTOR))
    assert [job.id for job in leased] == [again.id, fresh[0].id, fresh[1].id]
    assert [job.attempt for job in leased] == [2, 1, 1]
    dead = await db.queue.get_job(ns, doomed.id)
    assert dead.state is Stored.DEAD and dead.last_error == "lease expired on the last attempt"
    assert dead.finish_time == dead.update_time and dead.lease_expire_time is None
    assert dead.attempt == 1
    stats = await db.queue.queue_stats(ns, "q")
    assert stats.expired_leases == 2 and stats.counts[Visible.DEAD] == 1
    rows = [row[:4] for row in await audits(pg, ns)][5:]
    lease_fields = ["state", "attempt", "lease_token", "lease_expire_time"]
    assert rows[:2] == [
        ("lease", doomed.id, 1, lease_fields),
        ("lease", again.id, 1, lease_fields),
    ]
    assert sorted(rows[2:], key=lambda row: (row[0], row[2])) == sorted(
        [
            (
                "dead",
                doomed.id,
                1,
                ["state", "lease_token", "lease_expire_time", "last_error", "finish_time"],
            ),
            ("lease", again.id, 2, ["attempt", "lease_token", "lease_expire_time"]),
            ("lease", fresh[0].id, 1, lease_fields),
            ("lease", fresh[1].id, 1, lease_fields),
        ],
        key=lambda row: (row[0], row[2]),
    )


async def test_lease_only_dead_candidates(db: Storage, pg: Database, ns: str) -> None:
    jobs = await db.queue.enqueue(
        ns, [NewJob("q", {"i": i}, max_attempts=1) for i in range(3)], WriteContext(ACTOR)
    )
    assert len(await db.queue.lease_jobs(ns, "q", 3, LeaseTerms(LEASE, ACTOR))) == 3
    await expire_leases(pg, ns)
    assert await db.queue.lease_jobs(ns, "q", 2, LeaseTerms(LEASE, ACTOR)) == []
    states = [(await db.queue.get_job(ns, job.id)).state for job in jobs]
    assert states == [Stored.DEAD] * 3


async def test_lease_pause_and_other_queue(db: Storage, ns: str) -> None:
    await put(db, ns)
    await put(db, ns, queue="other")
    await db.queue.set_paused(ns, "q", True, actor=ACTOR)
    assert await db.queue.lease_jobs(ns, "q", 5, LeaseTerms(LEASE, ACTOR)) == []
    [other] = await db.queue.lease_jobs(ns, "other", 5, LeaseTerms(LEASE, ACTOR))
    assert other.queue == "other"
    await db.queue.set_paused(ns, "q", False, actor=ACTOR)
    assert len(await db.queue.lease_jobs(ns, "q", 5, LeaseTerms(LEASE, ACTOR))) == 1
    assert await db.queue.lease_jobs(ns, "q", 0, LeaseTerms(LEASE, ACTOR)) == []


async def test_lease_more_than_first_tokens(db: Storage, pg: Database, ns: str) -> None:
    created = await db.queue.enqueue(
        ns, [NewJob("q", {"i": i}, priority=i % 3) for i in range(50)], WriteContext(ACTOR)
    )
    assert FIRST_TOKENS < 45
    leased = await db.queue.lease_jobs(ns, "q", 45, LeaseTerms(LEASE, ACTOR, token_prefix="p"))
    order = sorted(created, key=lambda job: (-job.priority, job.run_time, job.create_time, job.id))
    assert [job.id for job in leased] == [job.id for job in order[:45]]
    assert len({job.lease_token for job in leased}) == 45
    assert all((job.lease_token or "").startswith("p.") for job in leased)
    assert len(await db.queue.lease_jobs(ns, "q", 45, LeaseTerms(LEASE, ACTOR))) == 5
    counts = await sql(
        pg, "SELECT action, count(*) FROM audit_log WHERE namespace = %s GROUP BY 1", ns
    )
    assert dict(counts) == {"enqueue": 50, "lease": 50}


async def test_concurrent_drain_with_acks(db: Storage, pg: Database, ns: str) -> None:
    await db.queue.enqueue(ns, [NewJob("q", {"i": i}) for i in range(300)], WriteContext(ACTOR))
    acked: Counter[str] = Counter()

    async def worker() -> None:
        while batch := await db.queue.lease_jobs(ns, "q", 10, LeaseTerms(LEASE, ACTOR)):
            done = await asyncio.gather(
                *(
                    db.queue.ack_job(ns, job.id, job.lease_token or "", None, actor=ACTOR)
                    for job in batch
                )
            )
            acked.update(job.id for job in done)

    await asyncio.gather(*(worker() for _ in range(8)))
    assert len(acked) == 300 and set(acked.values()) == {1}
    counts = await sql(
        pg, "SELECT action, count(*) FROM audit_log WHERE namespace = %s GROUP BY 1", ns
    )
    assert dict(counts) == {"enqueue": 300, "lease": 300, "ack": 300}


# --- The SQL transitions are core.job_transitions's ----------------------------------------------


def public(job: Job) -> Job:
    return dataclasses.replace(job, lease_token=None)


async def audit_of(pg: Database, ns: str, id: str, action: str) -> tuple[int, list[str]]:
    """(version, changed_fields) of the newest `action` entry of job `id`."""
    rows = await sql(
        pg,
        "SELECT version, changed_fields FROM audit_log WHERE namespace = %s AND entity_id = %s "
        "AND action = %s ORDER BY seq DESC LIMIT 1",
        ns,
        id,
        action,
    )
    return rows[0]


async def test_sql_transitions_match_core_plans(db: Storage, pg: Database, ns: str) -> None:
    """Each one-statement transition writes, returns and audits exactly what
    core.job_transitions plans for the job it found, at the time it wrote (update_time)."""
    # lease of a ready job
    ready = await put(db, ns, payload={"k": [1, 2]}, max_attempts=2, priority=1)
    before = await db.queue.get_job(ns, ready.id)
    [leased] = await db.queue.lease_jobs(ns, "q", 1, LeaseTerms(LEASE, ACTOR))
    assert leased.lease_token is not None
    planned = plan_lease(before, leased.lease_token, LEASE, leased.update_time)
    assert leased == planned
    assert await audit_of(pg, ns, ready.id, "lease") == (
        planned.attempt,
        json.loads(_changed(before, planned)),
    )
    # extend
    extended = await db.queue.extend_lease(ns, ready.id, leased.lease_token, LEASE * 2, actor=ACTOR)
    planned = plan_extend(leased, leased.lease_token, LEASE * 2, extended.update_time)
    assert extended == planned
    assert await audit_of(pg, ns, ready.id, "extend") == (1, json.loads(_changed(leased, planned)))
    # release
    released = await db.queue.release_job(ns, ready.id, leased.lease_token, actor=ACTOR)
    planned = plan_release(extended, leased.lease_token, released.update_time)
    assert released == public(planned)
    assert await audit_of(pg, ns, ready.id, "release") == (
        0,
        json.loads(_changed(extended, planned)),
    )
    # lease again, expire, reclaim (attempt 2 of 2)
    [first] = await db.queue.lease_jobs(ns, "q", 1, LeaseTerms(LEASE, ACTOR))
    await expire_leases(pg, ns)
    expired = dataclasses.replace(
        first, lease_expire_time=(await db.queue.get_job(ns, ready.id)).lease_expire_time
    )
    [reclaimed] = await db.queue.lease_jobs(ns, "q", 1, LeaseTerms(LEASE, ACTOR))
    assert reclaimed.lease_token is not None
    planned = plan_lease(expired, reclaimed.lease_token, LEASE, reclaimed.update_time)
    assert reclaimed == planned and reclaimed.attempt == 2
    assert await audit_of(pg, ns, ready.id, "lease") == (2, json.loads(_changed(expired, planned)))
    # ack with a result
    done = await db.queue.ack_job(ns, ready.id, reclaimed.lease_token, {"r": 1.5}, actor=ACTOR)
    planned = plan_ack(reclaimed, reclaimed.lease_token, {"r": 1.5}, done.update_time)
    assert done == public(planned)
    assert await audit_of(pg, ns, ready.id, "ack") == (2, json.loads(_changed(reclaimed, planned)))
    # death of an expired lease on its last attempt
    doomed = await put(db, ns, max_attempts=1)
    [last] = await db.queue.lease_jobs(ns, "q", 1, LeaseTerms(LEASE, ACTOR))
    assert last.id == doomed.id
    await expire_leases(pg, ns)
    expired = dataclasses.replace(
        last, lease_expire_time=(await db.queue.get_job(ns, doomed.id)).lease_expire_time
    )
    assert await db.queue.lease_jobs(ns, "q", 1, LeaseTerms(LEASE, ACTOR)) == []
    dead = await db.queue.get_job(ns, doomed.id)
    planned = plan_lease(expired, "unused", LEASE, dead.update_time)
    assert planned.state is Stored.DEAD and dead == planned
    assert await audit_of(pg, ns, doomed.id, "dead") == (1, json.loads(_changed(expired, planned)))


async def test_queue_depths(db: Storage, ns: str) -> None:
    for _ in range(3):
        await put(db, ns)
    await put(db, ns, run_time=datetime.now(UTC) + timedelta(hours=1))
    await put(db, ns, queue="other")
    await lease_one(db, ns)
    await asyncio.sleep(0.05)
    depths = {
        (d.queue, d.available, d.scheduled, d.leased)
        for d in await db.usage.queue_depths()
        if d.namespace == ns
    }
    assert depths == {("q", 2, 1, 1), ("other", 1, 0, 0)}
    [q] = [d for d in await db.usage.queue_depths() if d.namespace == ns and d.queue == "q"]
    assert 0.04 < q.oldest_available_seconds < 30


async def test_record_changes_come_in_xid_order_across_a_digit_boundary(
    db: Storage, pg: Database, ns: str
) -> None:
    """Entries of transactions 9 and 10 (long ended) come as 9 then 10, whatever
    their seq: ordered as text, the feed sent 10 first, then took 9's cursor and
    sent 10 again."""
    for xact in (10, 9):  # 10 gets the lower seq
        await sql(
            pg,
            "INSERT INTO audit_log (namespace, time, actor, action, entity, entity_id,"
            " version, changed_fields, xact) VALUES (%s, now(), 't', 'delete', 'record',"
            " %s, 1, '[]', %s::text::xid8)",
            ns,
            f"c/r{xact}",
            str(xact),
        )
    batch = await db.records.record_changes(ns, "c", "p0.0", None, 10)
    assert [change.record_id for change in batch.changes] == ["r9", "r10"]
    assert batch.cursor == batch.changes[-1].cursor
    assert (await db.records.record_changes(ns, "c", batch.cursor, None, 10)).changes == ()
