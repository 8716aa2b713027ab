"""The QueueStore port: enqueue, leases, every transition, listing, stats, purge."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from strata_server.core.errors import FailedPrecondition, InvalidArgument, NotFound
from strata_server.core.job_transitions import Ack, Job, NewJob, Stored, Visible
from strata_server.core.models import Actor, Handoff, Idempotency
from strata_server.storage.composite import Storage
from strata_server.storage.ports.queue import Failure, JobQuery, LeaseTerms
from strata_server.storage.ports.write_context import WriteContext
from tests.ports.conftest import Reopen
from tests.ports.helpers import audit

NS = "default"
Q = "work"
BOB = Actor("bob")
LEASE = timedelta(seconds=30)
SHORT = timedelta(milliseconds=40)


async def job_audit(storage: Storage, entity_id: str) -> list[tuple[str, list[str]]]:
    """(action, changed_fields) of the audit entries about a job or queue, oldest first."""
    return [
        (e.action, list(e.changed_fields)) for e in await audit(storage, NS, entity_id=entity_id)
    ]


async def put(storage: Storage, payload: Any = None, **kw: Any) -> Job:
    [job] = await storage.queue.enqueue(
        NS, [NewJob(Q, payload if payload is not None else {}, **kw)], WriteContext(BOB)
    )
    return job


async def lease_one(storage: Storage, lease: timedelta = LEASE) -> Job:
    [job] = await storage.queue.lease_jobs(NS, Q, 1, LeaseTerms(lease, BOB))
    return job


async def test_enqueue_and_get(storage: Storage) -> None:
    job = await put(storage, {"n": 1, "s": "é"}, priority=3, max_attempts=4)
    assert job.state is Stored.READY and job.attempt == 0 and job.max_attempts == 4
    assert len(job.id) == 26 and job.run_time == job.create_time
    got = await storage.queue.get_job(NS, job.id)
    assert got == job
    assert got.visible_state(datetime.now(UTC)) is Visible.AVAILABLE
    assert [action for action, _ in await job_audit(storage, job.id)] == ["enqueue"]
    with pytest.raises(NotFound, match="does not exist"):
        await storage.queue.get_job(NS, "nope")
    with pytest.raises(NotFound):
        await storage.queue.get_job("other", job.id)


async def test_batch_enqueue_shares_one_time(storage: Storage) -> None:
    jobs = await storage.queue.enqueue(
        NS, [NewJob(Q, {"i": i}) for i in range(5)], WriteContext(BOB)
    )
    assert len({job.id for job in jobs}) == 5
    assert len({job.create_time for job in jobs}) == 1


async def test_lease_order_priority_then_run_time_then_fifo(storage: Storage) -> None:
    past = datetime.now(UTC) - timedelta(minutes=1)
    low = await put(storage, {"n": "low"}, priority=0)
    first = await put(storage, {"n": "first"}, priority=5)
    second = await put(storage, {"n": "second"}, priority=5)
    early = await put(storage, {"n": "early"}, priority=5, run_time=past)
    top = await put(storage, {"n": "top"}, priority=9)
    leased = await storage.queue.lease_jobs(NS, Q, 10, LeaseTerms(LEASE, BOB))
    assert [job.id for job in leased] == [top.id, early.id, first.id, second.id, low.id]
    for job in leased:
        assert job.state is Stored.LEASED and job.attempt == 1 and job.lease_token
        assert (await storage.queue.get_job(NS, job.id)).lease_token is None
    assert await storage.queue.lease_jobs(NS, Q, 10, LeaseTerms(LEASE, BOB)) == []


async def test_max_jobs_and_other_queues(storage: Storage) -> None:
    for i in range(3):
        await put(storage, {"i": i})
    await storage.queue.enqueue(NS, [NewJob("elsewhere", {})], WriteContext(BOB))
    assert len(await storage.queue.lease_jobs(NS, Q, 2, LeaseTerms(LEASE, BOB))) == 2
    assert len(await storage.queue.lease_jobs(NS, Q, 2, LeaseTerms(LEASE, BOB))) == 1
    assert await storage.queue.lease_jobs("other-ns", "elsewhere", 5, LeaseTerms(LEASE, BOB)) == []


async def test_scheduled_job_not_leased_before_run_time(storage: Storage) -> None:
    job = await put(storage, run_time=datetime.now(UTC) + timedelta(milliseconds=150), priority=9)
    assert job.visible_state(datetime.now(UTC)) is Visible.SCHEDULED
    assert await storage.queue.lease_jobs(NS, Q, 5, LeaseTerms(LEASE, BOB)) == []
    stats = await storage.queue.queue_stats(NS, Q)
    assert stats.counts[Visible.SCHEDULED] == 1 and stats.counts[Visible.AVAILABLE] == 0
    await asyncio.sleep(0.2)
    assert (await lease_one(storage)).id == job.id


async def test_concurrent_leases_never_share_a_job(storage: Storage, reopen: Reopen) -> None:
    await storage.queue.enqueue(NS, [NewJob(Q, {"i": i}) for i in range(60)], WriteContext(BOB))
    other = await reopen()
    try:
        calls = [
            (storage if i % 2 else other).queue.lease_jobs(NS, Q, 3, LeaseTerms(LEASE, BOB))
            for i in range(30)
        ]
        batches = await asyncio.gather(*calls)
    finally:
        await other.close()
    ids = [job.id for batch in batches for job in batch]
    assert len(ids) == 60 and len(set(ids)) == 60


async def test_ack_and_stale_token(storage: Storage) -> None:
    job = await put(storage)
    leased = await lease_one(storage)
    assert leased.lease_token is not None
    with pytest.raises(FailedPrecondition) as caught:
        await storage.queue.ack_job(NS, job.id, "0" * 32, None, actor=BOB)
    assert caught.value.reason == "LEASE_LOST"
    done = await storage.queue.ack_job(NS, job.id, leased.lease_token, {"ok": True}, actor=BOB)
    assert done.state is Stored.COMPLETED and done.result == {"ok": True}
    assert done.lease_token is None and done.finish_time is not None
    assert await storage.queue.get_job(NS, job.id) == done
    with pytest.raises(FailedPrecondition) as caught:
        await storage.queue.ack_job(NS, job.id, leased.lease_token, None, actor=BOB)
    assert caught.value.reason == "LEASE_LOST"
    with pytest.raises(NotFound):
        await storage.queue.ack_job(NS, "missing", "t", None, actor=BOB)
    actions = [action for action, _ in await job_audit(storage, job.id)]
    assert actions == ["enqueue", "lease", "ack"]
    assert "attempt" in (await job_audit(storage, job.id))[1][1]


async def test_extend_lease(storage: Storage) -> None:
    await put(storage)
    # A first lease long enough for the extend to arrive on a loaded host, and a
    # wait past its end: only the extension can still hold the job then.
    first = timedelta(seconds=1)
    leased = await lease_one(storage, first)
    assert leased.lease_token is not None and leased.lease_expire_time is not None
    extended = await storage.queue.extend_lease(NS, leased.id, leased.lease_token, LEASE, actor=BOB)
    assert extended.lease_token == leased.lease_token
    assert extended.lease_expire_time is not None
    assert extended.lease_expire_time > leased.lease_expire_time
    await asyncio.sleep(first.total_seconds() + 0.1)
    assert await storage.queue.lease_jobs(NS, Q, 1, LeaseTerms(LEASE, BOB)) == []  # still held


async def test_expired_lease_is_reclaimed_and_counted(storage: Storage) -> None:
    job = await put(storage, max_attempts=5)
    first = await lease_one(storage, SHORT)
    await asyncio.sleep(0.06)
    stats = await storage.queue.queue_stats(NS, Q)
    assert stats.counts[Visible.AVAILABLE] == 1 and stats.counts[Visible.LEASED] == 0
    assert stats.oldest_available_age > timedelta(0)
    assert stats.expired_leases == 0
    second = await lease_one(storage)
    assert second.id == job.id and second.attempt == 2
    assert second.lease_token != first.lease_token
    assert first.lease_token is not None
    with pytest.raises(FailedPrecondition) as caught:
        await storage.queue.ack_job(NS, job.id, first.lease_token, None, actor=BOB)
    assert caught.value.reason == "LEASE_LOST"
    stats = await storage.queue.queue_stats(NS, Q)
    assert stats.expired_leases == 1 and stats.counts[Visible.LEASED] == 1


async def test_expired_last_attempt_dies_and_lease_moves_on(storage: Storage) -> None:
    doomed = await put(storage, priority=9, max_attempts=1)
    await lease_one(storage, SHORT)
    spare = await put(storage, priority=0)
    await asyncio.sleep(0.06)
    leased = await storage.queue.lease_jobs(NS, Q, 1, LeaseTerms(LEASE, BOB))
    assert [job.id for job in leased] == [spare.id]
    dead = await storage.queue.get_job(NS, doomed.id)
    assert dead.state is Stored.DEAD and dead.last_error == "lease expired on the last attempt"
    assert (await storage.queue.queue_stats(NS, Q)).expired_leases == 1
    assert [action for action, _ in await job_audit(storage, doomed.id)][-1] == "dead"


async def test_fail_retries_with_backoff_then_dead(storage: Storage) -> None:
    job = await put(storage, max_attempts=2, retry_backoff=timedelta(milliseconds=50))
    leased = await lease_one(storage)
    assert leased.lease_token is not None
    failed = await storage.queue.fail_job(
        NS, job.id, leased.lease_token, Failure("boom 1"), actor=BOB
    )
    assert failed.state is Stored.READY and failed.last_error == "boom 1"
    assert failed.run_time > failed.update_time and failed.lease_token is None
    assert failed.visible_state(datetime.now(UTC)) is Visible.SCHEDULED
    assert await storage.queue.lease_jobs(NS, Q, 1, LeaseTerms(LEASE, BOB)) == []
    await asyncio.sleep(0.06)
    again = await lease_one(storage)
    assert again.attempt == 2 and again.lease_token is not None
    dead = await storage.queue.fail_job(NS, job.id, again.lease_token, Failure("boom 2"), actor=BOB)
    assert dead.state is Stored.DEAD and dead.last_error == "boom 2"
    assert (await storage.queue.get_job(NS, job.id)).last_error == "boom 2"
    actions = [action for action, _ in await job_audit(storage, job.id)]
    assert actions == ["enqueue", "lease", "fail", "lease", "dead"]


async def test_fail_with_explicit_delay(storage: Storage) -> None:
    await put(storage)
    leased = await lease_one(storage)
    assert leased.lease_token is not None
    failed = await storage.queue.fail_job(
        NS, leased.id, leased.lease_token, Failure("x", timedelta(0)), actor=BOB
    )
    assert failed.run_time == failed.update_time
    assert (await lease_one(storage)).attempt == 2


async def test_cancel_leased_then_ack_fails(storage: Storage) -> None:
    await put(storage)
    leased = await lease_one(storage)
    assert leased.lease_token is not None
    cancelled = await storage.queue.cancel_job(NS, leased.id, actor=BOB)
    assert cancelled.state is Stored.CANCELLED and cancelled.lease_token is None
    with pytest.raises(FailedPrecondition) as caught:
        await storage.queue.ack_job(NS, leased.id, leased.lease_token, None, actor=BOB)
    assert caught.value.reason == "LEASE_LOST"
    with pytest.raises(FailedPrecondition) as caught:
        await storage.queue.cancel_job(NS, leased.id, actor=BOB)
    assert caught.value.reason == "JOB_FINISHED"


async def test_retry_dead_job(storage: Storage) -> None:
    job = await put(storage, max_attempts=1)
    leased = await lease_one(storage)
    assert leased.lease_token is not None
    await storage.queue.fail_job(NS, job.id, leased.lease_token, Failure("boom"), actor=BOB)
    with pytest.raises(FailedPrecondition) as caught:
        await storage.queue.retry_job(NS, (await put(storage)).id, actor=BOB)
    assert caught.value.reason == "JOB_NOT_RETRYABLE"
    revived = await storage.queue.retry_job(NS, job.id, actor=BOB)
    assert revived.state is Stored.READY and revived.attempt == 0
    assert revived.finish_time is None and revived.last_error == "boom"
    again = await storage.queue.lease_jobs(NS, Q, 5, LeaseTerms(LEASE, BOB))
    assert job.id in {j.id for j in again}


async def test_retry_refused_while_unique_key_is_taken(storage: Storage) -> None:
    first = await put(storage, unique_key="k")
    await storage.queue.cancel_job(NS, first.id, actor=BOB)
    second = await put(storage, unique_key="k")
    assert second.id != first.id
    with pytest.raises(FailedPrecondition) as caught:
        await storage.queue.retry_job(NS, first.id, actor=BOB)
    assert caught.value.reason == "UNIQUE_KEY_IN_USE"
    assert (await storage.queue.get_job(NS, first.id)).state is Stored.CANCELLED


async def test_pause_and_resume(storage: Storage) -> None:
    await put(storage)
    await storage.queue.set_paused(NS, Q, True, actor=BOB)
    assert await storage.queue.lease_jobs(NS, Q, 5, LeaseTerms(LEASE, BOB)) == []
    assert (await storage.queue.queue_stats(NS, Q)).paused
    await storage.queue.set_paused(NS, Q, True, actor=BOB)  # idempotent upsert
    await storage.queue.set_paused(NS, Q, False, actor=BOB)
    assert not (await storage.queue.queue_stats(NS, Q)).paused
    assert len(await storage.queue.lease_jobs(NS, Q, 5, LeaseTerms(LEASE, BOB))) == 1
    assert [action for action, _ in await job_audit(storage, Q)] == ["pause", "pause", "resume"]


async def test_unique_key_concurrent_enqueues_yield_one_job(
    storage: Storage, reopen: Reopen
) -> None:
    other = await reopen()
    try:
        calls = [
            (storage if i % 2 else other).queue.enqueue(
                NS, [NewJob(Q, {"i": i}, unique_key="u")], WriteContext(BOB)
            )
            for i in range(50)
        ]
        results = await asyncio.gather(*calls)
    finally:
        await other.close()
    ids = {job.id for [job] in results}
    assert len(ids) == 1
    [id] = ids
    assert len(await job_audit(storage, id)) == 1
    # Same key twice in one batch: the second yields the first.
    a, b = await storage.queue.enqueue(
        NS, [NewJob(Q, {}, unique_key="v"), NewJob(Q, {}, unique_key="v")], WriteContext(BOB)
    )
    assert a.id == b.id
    # Another queue has its own keys.
    [elsewhere] = await storage.queue.enqueue(
        NS, [NewJob("q2", {}, unique_key="u")], WriteContext(BOB)
    )
    assert elsewhere.id != id
    # Once the job is finished the key is free again.
    leased = await storage.queue.lease_jobs(NS, Q, 5, LeaseTerms(LEASE, BOB))
    held = next(job for job in leased if job.id == id)
    assert held.lease_token is not None
    again = await put(storage, unique_key="u")
    assert again.id == id and again.state is Stored.LEASED and again.lease_token is None
    await storage.queue.ack_job(NS, id, held.lease_token, None, actor=BOB)
    fresh = await put(storage, unique_key="u")
    assert fresh.id != id and fresh.state is Stored.READY


async def test_idempotent_enqueue(storage: Storage) -> None:
    key = Idempotency("req-1", "fp-1")
    jobs = [NewJob(Q, {"i": 1}, retry_backoff=timedelta(seconds=2)), NewJob(Q, {"i": 2})]
    first = await storage.queue.enqueue(NS, jobs, WriteContext(BOB, key))
    again = await storage.queue.enqueue(NS, jobs, WriteContext(BOB, key))
    assert again == first
    listed = await storage.queue.list_jobs(NS, JobQuery(Q, None, 10))
    assert len(listed.items) == 2
    with pytest.raises(InvalidArgument) as caught:
        await storage.queue.enqueue(NS, jobs[:1], WriteContext(BOB, Idempotency("req-1", "fp-2")))
    assert caught.value.violations[0].field == "request_id"
    # Request ids are per namespace.
    elsewhere = await storage.queue.enqueue("other", jobs, WriteContext(BOB, key))
    assert {job.id for job in elsewhere}.isdisjoint(job.id for job in first)


async def test_list_jobs_paging_and_state_filter(storage: Storage) -> None:
    jobs = []
    for i in range(5):
        jobs.append(await put(storage, {"i": i}))
    future = await put(storage, run_time=datetime.now(UTC) + timedelta(hours=1))
    leased = await lease_one(storage)
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = await storage.queue.list_jobs(NS, JobQuery(Q, None, 2, after))
        seen.extend(job.id for job in page.items)
        pages += 1
        if page.last_key is None:
            break
        after = page.last_key
    assert seen == [job.id for job in [*jobs, future]] and pages == 3
    assert all(
        job.lease_token is None
        for job in (await storage.queue.list_jobs(NS, JobQuery(Q, None, 9))).items
    )

    async def ids(state: Visible) -> list[str]:
        return [job.id for job in (await storage.queue.list_jobs(NS, JobQuery(Q, state, 10))).items]

    assert await ids(Visible.SCHEDULED) == [future.id]
    assert await ids(Visible.LEASED) == [leased.id]
    assert await ids(Visible.AVAILABLE) == [job.id for job in jobs if job.id != leased.id]
    assert await ids(Visible.COMPLETED) == []
    with pytest.raises(InvalidArgument):
        await storage.queue.list_jobs(NS, JobQuery(Q, None, 2, ("x", 1)))
    page = await storage.queue.list_jobs(
        NS, JobQuery(Q, None, 2, (jobs[1].create_time, jobs[1].id))
    )
    assert [job.id for job in page.items] == [jobs[2].id, jobs[3].id]
    stats = await storage.queue.queue_stats(NS, Q)
    assert stats.counts[Visible.AVAILABLE] == 4
    assert stats.counts[Visible.SCHEDULED] == 1 and stats.counts[Visible.LEASED] == 1
    assert stats.counts[Visible.DEAD] == 0


async def test_purge_completed(storage: Storage) -> None:
    for _ in range(3):
        await put(storage)
    kept = await put(storage)
    for job in await storage.queue.lease_jobs(NS, Q, 3, LeaseTerms(LEASE, BOB)):
        assert job.lease_token is not None
        await storage.queue.ack_job(NS, job.id, job.lease_token, None, actor=BOB)
    assert await storage.queue.purge_completed(datetime.now(UTC) - timedelta(hours=1), 10) == 0
    assert await storage.queue.purge_completed(datetime.now(UTC), 2) == 2
    assert await storage.queue.purge_completed(datetime.now(UTC), 2) == 1
    assert await storage.queue.purge_completed(datetime.now(UTC), 2) == 0
    assert (await storage.queue.get_job(NS, kept.id)).state is Stored.READY


async def test_many_workers_drain_a_queue_each_job_once(storage: Storage) -> None:
    await storage.queue.enqueue(NS, [NewJob(Q, {"i": i}) for i in range(200)], WriteContext(BOB))

    async def worker() -> list[str]:
        got: list[str] = []
        while batch := await storage.queue.lease_jobs(NS, Q, 7, LeaseTerms(LEASE, BOB)):
            got.extend(job.id for job in batch)
        return got

    results = await asyncio.gather(*(worker() for _ in range(10)))
    ids = [job_id for got in results for job_id in got]
    assert len(ids) == 200 and len(set(ids)) == 200


async def test_release_ack_jobs_held_leases_and_available(storage: Storage) -> None:
    first, second, third = [await put(storage, {"i": i}) for i in range(3)]
    assert (await storage.queue.availability(NS, Q)).now
    leased = {
        job.id: job for job in await storage.queue.lease_jobs(NS, Q, 3, LeaseTerms(LEASE, BOB))
    }
    assert not (await storage.queue.availability(NS, Q)).now
    tokens = {id: job.lease_token or "" for id, job in leased.items()}
    assert await storage.queue.held_leases(NS, {**tokens, "nope": "x"}) == set(tokens)
    assert await storage.queue.held_leases(NS, {first.id: "stale"}) == set()
    assert await storage.queue.held_leases(NS, {}) == set()

    released = await storage.queue.release_job(NS, first.id, tokens[first.id], actor=BOB)
    assert released.state is Stored.READY and released.attempt == 0
    assert released.lease_token is None and (await storage.queue.availability(NS, Q)).now
    with pytest.raises(FailedPrecondition) as lost:
        await storage.queue.release_job(NS, first.id, tokens[first.id], actor=BOB)
    assert lost.value.reason == "LEASE_LOST"

    acks = [
        Ack(second.id, tokens[second.id], {"n": 2}),
        Ack(third.id, "stale", None),
        Ack("nope", "x", None),
    ]
    done, stale, missing = await storage.queue.ack_jobs(NS, acks, actor=BOB)
    assert isinstance(done, Job) and done.state is Stored.COMPLETED and done.result == {"n": 2}
    assert isinstance(stale, FailedPrecondition) and stale.reason == "LEASE_LOST"
    assert isinstance(missing, NotFound)
    assert [action for action, _ in await job_audit(storage, first.id)] == [
        "enqueue",
        "lease",
        "release",
    ]


async def test_enqueue_and_lease_hands_the_new_job_over_when_first_in_line(
    storage: Storage,
) -> None:
    handoff = Handoff(LEASE, "sub1", Actor("worker"))
    job, leased = await storage.queue.enqueue_and_lease(
        NS, NewJob(Q, {"n": 1}), handoff, WriteContext(BOB)
    )
    # The job comes back as it is after the call: leased, on both engines.
    assert [j.id for j in leased] == [job.id] and leased[0].state is Stored.LEASED
    assert job.state is Stored.LEASED
    assert (leased[0].lease_token or "").startswith("sub1.")
    await storage.queue.set_paused(NS, Q, True, actor=BOB)
    paused, none = await storage.queue.enqueue_and_lease(
        NS, NewJob(Q, {}), handoff, WriteContext(BOB)
    )
    assert none == [] and paused.state is Stored.READY
    await storage.queue.set_paused(NS, Q, False, actor=BOB)
    # A job whose unique_key is held yields the holder, leased to nobody new.
    holder = await put(storage, unique_key="u")
    got, leased = await storage.queue.enqueue_and_lease(
        NS, NewJob(Q, {}, unique_key="u"), handoff, WriteContext(BOB)
    )
    assert got.id == holder.id
    assert all(j.state is Stored.LEASED and j.lease_token for j in leased)


async def test_list_queues_gives_each_queue_its_stats_in_name_order(storage: Storage) -> None:
    assert (await storage.queue.list_queues(NS, 10, None)).items == []

    async def add(queue: str, **kw: Any) -> Job:
        [job] = await storage.queue.enqueue(NS, [NewJob(queue, {}, **kw)], WriteContext(BOB))
        return job

    # "b": a job in every state; one lease expired and reclaimed, one expired and not
    async def lease_new(lease: timedelta, **kw: Any) -> Job:
        await add("b", **kw)
        [job] = await storage.queue.lease_jobs(NS, "b", 1, LeaseTerms(lease, BOB))
        assert job.lease_token is not None
        return job

    done = await lease_new(LEASE)
    await storage.queue.ack_job(NS, done.id, done.lease_token or "", None, actor=BOB)
    dying = await lease_new(LEASE, max_attempts=1)
    await storage.queue.fail_job(NS, dying.id, dying.lease_token or "", Failure("x"), actor=BOB)
    await lease_new(SHORT)
    await asyncio.sleep(0.06)
    await storage.queue.lease_jobs(NS, "b", 1, LeaseTerms(LEASE, BOB))  # reclaims it
    await lease_new(SHORT)
    await asyncio.sleep(0.06)  # lapsed: available again, not reclaimed yet
    cancelled = await add("b")
    await storage.queue.cancel_job(NS, cancelled.id, actor=BOB)
    await add("b", run_time=datetime.now(UTC) + timedelta(hours=1))
    await add("c-paused")
    await storage.queue.set_paused(NS, "c-paused", True, actor=BOB)
    await storage.queue.set_paused(NS, "a-empty-paused", True, actor=BOB)
    await storage.queue.set_paused(NS, "d-resumed", False, actor=BOB)  # not listed
    await storage.queue.enqueue("elsewhere", [NewJob("x", {})], WriteContext(BOB))

    listed = (await storage.queue.list_queues(NS, 10, None)).items
    assert [stats.queue for stats in listed] == ["a-empty-paused", "b", "c-paused"]
    empty, busy, paused = listed
    assert empty.paused and set(empty.counts.values()) == {0}
    assert empty.oldest_available_age == timedelta(0)
    assert paused.paused and paused.counts[Visible.AVAILABLE] == 1
    for stats in listed:
        single = await storage.queue.queue_stats(NS, stats.queue)
        assert replace(stats, oldest_available_age=single.oldest_available_age) == single
        assert abs(stats.oldest_available_age - single.oldest_available_age) < timedelta(seconds=1)
    assert set(busy.counts.values()) == {1} and len(busy.counts) == len(Visible)
    assert busy.expired_leases == 1 and not busy.paused
    assert busy.oldest_available_age > timedelta(0)

    first = await storage.queue.list_queues(NS, 2, None)
    assert [stats.queue for stats in first.items] == ["a-empty-paused", "b"]
    assert first.last_key == ("b",)
    rest = await storage.queue.list_queues(NS, 2, "b")
    assert [stats.queue for stats in rest.items] == ["c-paused"] and rest.last_key is None
    assert not (await storage.queue.list_queues(NS, 0, None)).items
