"""The application layer runs without gRPC: services over a real SQLite file and the
in-process events adapter, driven directly, the way app.py wires them.

These pin what the use cases themselves promise (the wire is the contract suite's
business): an enqueue hands its job to a consumer already waiting on this replica,
in the insert itself; a Commit wakes a long poll through the same topics a single
enqueue would; a follower gets new entries, heartbeats while idle, and the seal.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from strata_server.core import job_transitions as queue
from strata_server.core import transcript_rules as transcripts
from strata_server.core.models import Actor, CreateRecord, RecordChange
from strata_server.services.commit_service import Commits
from strata_server.services.queue_service import Queues
from strata_server.services.records_service import Records, WatchStarted
from strata_server.services.transcripts_service import (
    Heartbeat,
    Sealed,
    Transcripts,
    UpToDate,
)
from strata_server.storage import migrations
from strata_server.storage.composite import Storage
from strata_server.storage.memory.events import LocalEvents
from strata_server.storage.sqlite.backend import open_sqlite

NS = "default"
WORKER = Actor("worker")
LEASE = timedelta(seconds=30)
PATIENCE = 10.0
"""Seconds a test waits for something that should happen at once before failing
(a hang is a failure, not a slow pass)."""


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Storage]:
    """A fresh SQLite file with every migration applied."""
    opened = await open_sqlite(
        str(tmp_path / "strata.db"),
        max_record_bytes=1 << 20,
        readers=2,
        schema_sql=migrations.memory_schema(),
    )
    yield opened
    await opened.close()


@pytest.fixture
async def events() -> AsyncIterator[LocalEvents]:
    """The embedded shape's wakeups, shared by every service as in app.py."""
    local = LocalEvents()
    yield local
    await local.close()


async def _until(condition: Callable[[], bool]) -> None:
    """Return once `condition` holds (checked every 10 ms), fail after PATIENCE."""
    for _ in range(int(PATIENCE / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


async def test_an_enqueue_hands_its_job_to_a_waiting_long_poll(
    database: Storage, events: LocalEvents
) -> None:
    queues = Queues(database.queue, events)
    poll = asyncio.create_task(
        queues.lease(NS, "handoff", 1, LEASE, timedelta(seconds=PATIENCE), actor=WORKER)
    )
    await _until(lambda: queues.parked(NS, "handoff") == 1)

    [enqueued] = await queues.enqueue(
        NS, [queue.NewJob("handoff", {"n": 1})], actor=Actor("producer"), idempotency=None
    )
    [leased] = await asyncio.wait_for(poll, PATIENCE)

    # The insert leased it for the parked poll: the enqueue's answer is already
    # leased, and only the consumer holds the token.
    assert enqueued.visible_state(datetime.now(UTC)) is queue.Visible.LEASED
    assert enqueued.lease_token is None
    assert leased.id == enqueued.id and leased.lease_token and leased.attempt == 1
    assert queues.parked(NS, "handoff") == 0
    done = await queues.ack(NS, leased.id, leased.lease_token, {"ok": True}, actor=WORKER)
    assert done.visible_state(datetime.now(UTC)) is queue.Visible.COMPLETED


async def test_a_long_poll_that_ends_leaves_no_consumer_parked(
    database: Storage, events: LocalEvents
) -> None:
    queues = Queues(database.queue, events)
    poll = asyncio.create_task(
        queues.lease(NS, "gone", 1, LEASE, timedelta(seconds=PATIENCE), actor=WORKER)
    )
    await _until(lambda: queues.parked(NS, "gone") == 1)
    poll.cancel()
    with pytest.raises(asyncio.CancelledError):
        await poll

    assert queues.parked(NS, "gone") == 0
    [job] = await queues.enqueue(
        NS, [queue.NewJob("gone", {})], actor=Actor("producer"), idempotency=None
    )
    assert job.visible_state(datetime.now(UTC)) is queue.Visible.AVAILABLE


async def test_a_subscription_closed_gives_back_the_jobs_it_never_handed_over(
    database: Storage, events: LocalEvents
) -> None:
    """A subscription leases a batch, then hands its jobs to the transport one at a
    time. Closed on the first, the rest of the batch was never handed over: released at
    once (no attempt spent). The one handed over may have been delivered, so it stays
    leased like any job of a broken stream."""
    queues = Queues(database.queue, events)
    await queues.enqueue(
        NS,
        [queue.NewJob("subscribed", {"n": n}) for n in range(3)],
        actor=Actor("producer"),
        idempotency=None,
    )
    jobs = queues.subscribe(NS, "subscribed", 3, LEASE, actor=WORKER)
    handed_over = await anext(jobs)  # the batch of three is leased; the caller stops
    await jobs.aclose()

    now = datetime.now(UTC)
    assert (await queues.get_job(NS, handed_over.id)).visible_state(now) is queue.Visible.LEASED
    again = await queues.lease(NS, "subscribed", 5, LEASE, timedelta(0), actor=WORKER)
    assert len(again) == 2 and handed_over.id not in {job.id for job in again}
    assert [job.attempt for job in again] == [1, 1]  # released, so this is attempt 1


async def test_a_commit_wakes_a_long_poll_and_a_watch(
    database: Storage, events: LocalEvents
) -> None:
    queues, records = Queues(database.queue, events), Records(database.records, events)
    changes = records.watch(NS, "executions", None, "")
    assert isinstance(await anext(changes), WatchStarted)
    poll = asyncio.create_task(
        queues.lease(NS, "runs", 1, LEASE, timedelta(seconds=PATIENCE), actor=WORKER)
    )
    await _until(lambda: queues.parked(NS, "runs") == 1)

    await Commits(database.records, events).commit(
        NS,
        [CreateRecord("executions", "e1", {"step": 1}), queue.NewJob("runs", {"id": "e1"})],
        actor=Actor("api"),
        idempotency=None,
    )

    [leased] = await asyncio.wait_for(poll, PATIENCE)
    assert leased.payload == {"id": "e1"}
    change = await asyncio.wait_for(anext(changes), PATIENCE)
    assert isinstance(change, RecordChange) and change.record_id == "e1"
    await changes.aclose()


async def test_a_follower_gets_entries_heartbeats_and_the_seal(
    database: Storage, events: LocalEvents
) -> None:
    service = Transcripts(database.transcripts, events, heartbeat_seconds=0.05)
    writer = Actor("agent")
    new = transcripts.new_transcript("chat", "alice", "", {})
    first = (await service.create(NS, new, actor=writer, idempotency=None)).next_seq
    follow = service.read(NS, "chat", 0, transcripts.DEFAULT_BATCH_BYTES, follow=True)

    async def next_item() -> object:
        return await asyncio.wait_for(anext(follow), PATIENCE)

    assert await next_item() == UpToDate(first)
    heartbeat = await next_item()  # nothing appended yet: the stream is idle
    assert isinstance(heartbeat, Heartbeat) and heartbeat.next_seq == first

    entries = [transcripts.new_entry("user", text, None, 1 << 20) for text in ("hi", "there")]
    appended = await service.append(
        NS, transcripts.AppendEntries("chat", entries), actor=writer, idempotency=None
    )
    assert (appended.first_seq, appended.next_seq) == (first, first + 2)
    batch = await next_item()
    assert isinstance(batch, transcripts.EntryBatch) and batch.next_seq == first + 2
    assert b"hi" in batch.wire and b"there" in batch.wire
    assert await next_item() == UpToDate(first + 2)

    await service.seal(NS, "chat", actor=writer)
    while isinstance(item := await next_item(), Heartbeat):
        pass  # a heartbeat may fall due before the seal's wakeup is read
    assert isinstance(item, Sealed) and item.transcript.sealed
    with pytest.raises(StopAsyncIteration):
        await next_item()
