"""WatchRecords over a real channel, on both storage shapes: a change feed of one
collection, in commit order, resumable from any cursor with no gap and no
duplicate."""

from __future__ import annotations

import asyncio
import os
import queue as stdlib_queue
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf import timestamp_pb2

from strata.v1 import admin_pb2, records_pb2, records_pb2_grpc
from strata_server.api.records_rpc import RecordService
from strata_server.config import load_settings
from strata_server.core.paging import PageTokens
from strata_server.services.records_service import Records
from strata_server.services.topics import records_topic
from strata_server.storage.event_rechecks import probe_task_name
from strata_server.storage.memory.events import LocalEvents
from strata_server.storage.postgres import open_postgres
from tests.contract.helpers import (
    commit,
    create,
    create_write,
    data_of,
    delete,
    delete_write,
    expect_error,
    to_struct,
    unique,
    update,
    update_write,
)
from tests.support.cli import run_strata

CREATED = records_pb2.CHANGE_KIND_CREATED
UPDATED = records_pb2.CHANGE_KIND_UPDATED
DELETED = records_pb2.CHANGE_KIND_DELETED


class Watch:
    """A WatchRecords call read by a background thread."""

    def __init__(self, stubs: Any, collection: str, **fields: Any) -> None:
        self.call = stubs.records.WatchRecords(
            records_pb2.WatchRecordsRequest(collection=collection, **fields)
        )
        self._items: stdlib_queue.Queue[Any] = stdlib_queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.started = self._next(10).started.cursor

    def _read(self) -> None:
        try:
            for message in self.call:
                self._items.put(message)
        except grpc.RpcError as error:
            self._items.put(error)

    def _next(self, timeout: float) -> records_pb2.WatchRecordsResponse:
        item = self._items.get(timeout=timeout)
        if isinstance(item, grpc.RpcError):
            raise item
        return item

    def changes(self, n: int, timeout: float = 10) -> list[records_pb2.RecordChange]:
        out = []
        for _ in range(n):
            message = self._next(timeout)
            assert message.WhichOneof("event") == "change"
            out.append(message.change)
        return out

    def silent(self, within: float = 0.5) -> bool:
        try:
            item = self._items.get(timeout=within)
        except stdlib_queue.Empty:
            return True
        self._items.put(item)
        return False

    def close(self) -> None:
        self.call.cancel()


@pytest.fixture
def watches():
    opened: list[Watch] = []
    yield lambda *args, **fields: opened.append(Watch(*args, **fields)) or opened[-1]
    for watch in opened:
        watch.close()


def summary(changes: list[records_pb2.RecordChange]) -> list[tuple[int, str, int]]:
    return [(change.kind, change.record_id, change.version) for change in changes]


def test_streams_creates_updates_and_deletes_in_order(stubs, collection, watches):
    watch = watches(stubs, collection)
    assert watch.started
    create(stubs, collection, "a", {"n": 1})
    update(stubs, collection, "a", {"n": 2})
    create(stubs, collection, "b", {"n": 3})
    delete(stubs, collection, "a")
    changes = watch.changes(4)
    assert summary(changes) == [
        (CREATED, "a", 1),
        (UPDATED, "a", 2),
        (CREATED, "b", 1),
        (DELETED, "a", 2),
    ]
    assert data_of(changes[2].record) == {"n": 3}
    assert not changes[3].HasField("record")
    delete(stubs, collection, "never", allow_missing=True)  # deletes nothing: no change
    assert watch.silent()
    assert all(change.collection == collection for change in changes)
    assert len({change.cursor for change in changes}) == 4
    assert all(change.time.seconds > 0 for change in changes)
    assert watch.silent()


def test_a_change_arrives_within_milliseconds(stubs, collection, watches):
    watch = watches(stubs, collection)
    time.sleep(0.2)
    written = time.monotonic()
    create(stubs, collection, "fast", {})
    watch.changes(1)
    # a wakeup, not the 1 s fallback re-read, delivered it
    assert time.monotonic() - written < 0.6


def test_records_purged_after_expiry_reach_the_watch_at_once(stubs, collection, watches):
    watch = watches(stubs, collection)
    expire = timestamp_pb2.Timestamp()
    expire.FromDatetime(datetime.now(UTC) + timedelta(seconds=1))
    create(stubs, collection, "brief", {}, expire_time=expire)
    assert summary(watch.changes(1)) == [(CREATED, "brief", 1)]
    time.sleep(1.2)
    request = admin_pb2.RunCleanupRequest(all_namespaces=True)
    list(stubs.admin.RunCleanup(request))
    # The purge wakes the watch: nothing re-reads the collection meanwhile (its
    # safety re-check is minutes away).
    [change] = watch.changes(1, timeout=5)
    assert (change.kind, change.record_id) == (DELETED, "brief")


def test_an_updated_record_carries_its_newest_state(stubs, collection, watches):
    create(stubs, collection, "a", {"n": 1})
    head = watches(stubs, collection).started
    update(stubs, collection, "a", {"n": 2})
    update(stubs, collection, "a", {"n": 3})
    # read both changes only now: each carries the record as it is at read time
    changes = watches(stubs, collection, from_cursor=head).changes(2)
    assert summary(changes) == [(UPDATED, "a", 2), (UPDATED, "a", 3)]
    assert [change.record.version for change in changes] == [3, 3]


def test_resume_from_a_cursor_has_no_gap_and_no_duplicate(stubs, collection, watches):
    first = watches(stubs, collection)
    for i in range(5):
        create(stubs, collection, f"r{i}", {"i": i})
    seen = first.changes(3)
    first.close()
    for i in range(5, 8):
        create(stubs, collection, f"r{i}", {"i": i})
    resumed = watches(stubs, collection, from_cursor=seen[-1].cursor)
    assert resumed.started == seen[-1].cursor
    rest = resumed.changes(5)
    assert [c.record_id for c in seen + rest] == [f"r{i}" for i in range(8)]
    assert resumed.silent()
    # the first stream's starting cursor replays everything
    replay = watches(stubs, collection, from_cursor=first.started).changes(8)
    assert [c.cursor for c in replay] == [c.cursor for c in seen + rest]


def test_resume_sends_changes_of_records_deleted_since(stubs, collection, watches):
    watch = watches(stubs, collection)
    create(stubs, collection, "a", {"n": 1})
    update(stubs, collection, "a", {"n": 2})
    delete(stubs, collection, "a")
    live = watch.changes(3)
    assert summary(live) == [(CREATED, "a", 1), (UPDATED, "a", 2), (DELETED, "a", 2)]
    # read again after the delete: the update is still there, with no record to carry
    resumed = watches(stubs, collection, from_cursor=live[0].cursor).changes(2)
    assert summary(resumed) == [(UPDATED, "a", 2), (DELETED, "a", 2)]
    assert [c.cursor for c in resumed] == [c.cursor for c in live[1:]]
    assert not any(c.HasField("record") for c in resumed)
    replay = watches(stubs, collection, from_cursor=watch.started)
    assert summary(replay.changes(3)) == summary(live)
    assert replay.silent()


def test_changes_of_a_deleted_record_never_carry_its_successor(stubs, collection, watches):
    head = watches(stubs, collection).started
    create(stubs, collection, "a", {"n": 1})
    update(stubs, collection, "a", {"n": 2})
    delete(stubs, collection, "a")
    create(stubs, collection, "a", {"n": 3})
    changes = watches(stubs, collection, from_cursor=head).changes(4)
    assert summary(changes) == [
        (CREATED, "a", 1),
        (UPDATED, "a", 2),
        (DELETED, "a", 2),
        (CREATED, "a", 1),
    ]
    assert [c.HasField("record") for c in changes] == [False, False, False, True]
    assert data_of(changes[3].record) == {"n": 3}


def test_a_filter_skips_changes_of_records_deleted_since(stubs, collection, watches):
    head = watches(stubs, collection).started
    create(stubs, collection, "a", {"status": "open"})
    update(stubs, collection, "a", {"status": "open", "n": 2})
    delete(stubs, collection, "a")
    create(stubs, collection, "b", {"status": "open"})
    watch = watches(stubs, collection, from_cursor=head, filter='data.status = "open"')
    assert summary(watch.changes(2)) == [(DELETED, "a", 2), (CREATED, "b", 1)]
    assert watch.silent()


def test_only_the_watched_collection_and_commit_writes_count(stubs, collection, watches):
    other = unique("other")
    watch = watches(stubs, collection)
    create(stubs, other, "x", {})
    commit(
        stubs,
        [
            create_write(collection, "c1", {"v": 1}),
            create_write(other, "c2", {}),
            create_write(collection, "c3", {"v": 3}),
        ],
    )
    commit(stubs, [update_write(collection, "c1", {"v": 2}), delete_write(collection, "c3")])
    assert summary(watch.changes(4)) == [
        (CREATED, "c1", 1),
        (CREATED, "c3", 1),
        (UPDATED, "c1", 2),
        (DELETED, "c3", 1),
    ]
    assert watch.silent()


def test_a_filter_keeps_matching_creates_and_updates_and_every_delete(stubs, collection, watches):
    watch = watches(stubs, collection, filter='data.status = "open"')
    create(stubs, collection, "open1", {"status": "open"})
    create(stubs, collection, "closed1", {"status": "closed"})
    update(stubs, collection, "open1", {"status": "open", "n": 2})
    delete(stubs, collection, "closed1")
    assert summary(watch.changes(3)) == [
        (CREATED, "open1", 1),
        (UPDATED, "open1", 2),
        (DELETED, "closed1", 1),
    ]
    assert watch.silent()


def test_concurrent_writers_are_seen_exactly_once_in_commit_order(stubs, collection, watches):
    watch = watches(stubs, collection)
    writers, rounds = 8, 12

    def write(w: int) -> None:
        create(stubs, collection, f"w{w}", {"round": 0})
        for r in range(1, rounds):
            update(stubs, collection, f"w{w}", {"round": r})

    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(write, range(writers)))
    changes = watch.changes(writers * rounds, timeout=15)
    assert watch.silent()
    for w in range(writers):
        versions = [c.version for c in changes if c.record_id == f"w{w}"]
        assert versions == list(range(1, rounds + 1))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"from_cursor": "nonsense"}, "from_cursor"),
        ({"from_cursor": "s-1"}, "from_cursor"),
        ({"from_cursor": "p1.x"}, "from_cursor"),
        ({"filter": "data.a = "}, "filter"),
    ],
)
def test_bad_input_is_invalid_argument(stubs, collection, fields, field):
    call = stubs.records.WatchRecords(
        records_pb2.WatchRecordsRequest(collection=collection, **fields)
    )
    expect_error(lambda: next(call), grpc.StatusCode.INVALID_ARGUMENT, field=field)


def test_bad_collection_is_invalid_argument(stubs):
    call = stubs.records.WatchRecords(records_pb2.WatchRecordsRequest(collection="1bad"))
    expect_error(lambda: next(call), grpc.StatusCode.INVALID_ARGUMENT, field="collection")


# A change PostgreSQL holds back (an older transaction still runs when it commits)
# reaches the watch through its collection's shared re-check, not its own wakeup.
# The first test shows it on the session's server; the two after it force, on a
# server in this process, the two interleavings of the re-check with the end of the
# older transaction that used to lose the change until the next write (or the
# 300 s safety re-check).


def test_a_change_held_back_by_an_older_transaction_arrives_once_it_ends(
    server, shape, stubs, collection, watches
):
    if shape != "postgres":
        pytest.skip("SQLite commits one write at a time: nothing older can hold one back")
    watch = watches(stubs, collection)
    with psycopg.connect(server.database_url) as older:
        older.execute("SELECT pg_current_xact_id()")  # a write transaction, begun first
        create(stubs, collection, "a", {})
        create(stubs, collection, "b", {})
        assert watch.silent(within=1.5)  # held back, however often it is re-checked
        older.rollback()
        ended = time.monotonic()
        assert summary(watch.changes(2, timeout=3)) == [(CREATED, "a", 1), (CREATED, "b", 1)]
    assert time.monotonic() - ended < 2.5  # the next re-check, about a second


class ProbeGate:
    """A real record store whose calls from the watched collection's re-check probe
    (the task `probe_task_name` names) wait at `held` methods until `release`, so a
    test can end a transaction at an exact point of a probe. It also tells when a
    stream's read begun after `mark` has ended."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.held: set[str] = set()
        self.entered = asyncio.Event()
        self.released = asyncio.Event()
        self.stream_read = asyncio.Event()
        self._marks = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def mark(self) -> None:
        self._marks += 1
        self.stream_read.clear()

    async def _call(self, name: str, *args: Any) -> Any:
        task = asyncio.current_task()
        probing = task is not None and task.get_name().startswith(probe_task_name(""))
        if probing and name in self.held:
            self.entered.set()
            await self.released.wait()
        mark = self._marks
        result = await getattr(self._store, name)(*args)
        if not probing and name == "record_changes" and mark == self._marks:
            self.stream_read.set()
        return result

    async def changes_head(self, *args: Any) -> Any:
        return await self._call("changes_head", *args)

    async def record_changes(self, *args: Any) -> Any:
        return await self._call("record_changes", *args)

    async def changes_pending(self, *args: Any) -> Any:
        return await self._call("changes_pending", *args)


@dataclass
class GatedServer:
    """A RecordService in this process over PostgreSQL, its store behind a ProbeGate."""

    dsn: str
    gate: ProbeGate
    stub: records_pb2_grpc.RecordServiceStub

    async def watch(self, collection: str) -> grpc.aio.UnaryStreamCall:
        call = self.stub.WatchRecords(records_pb2.WatchRecordsRequest(collection=collection))
        first = await asyncio.wait_for(call.read(), 10)
        assert first.WhichOneof("event") == "started"
        return call

    async def create(self, collection: str, record_id: str) -> None:
        request = records_pb2.CreateRecordRequest(
            collection=collection, record_id=record_id, data=to_struct({})
        )
        await self.stub.CreateRecord(request)


@pytest.fixture(scope="module")
def gated_dsn(database_url) -> str:
    """A fresh PostgreSQL database, migrated as an operator does it."""
    url = database_url("postgres")
    env = {**os.environ, "STRATA_DATABASE_URL": url}
    run_strata(["migrate", "up"], env=env).check_returncode()
    return load_settings(database_url=url).database.dsn


@pytest.fixture
async def gated(gated_dsn: str) -> AsyncIterator[GatedServer]:
    storage = await open_postgres(gated_dsn, max_record_bytes=1 << 20, min_size=1, max_size=4)
    events = LocalEvents()  # the safety re-check 300 s away: a lost change stays lost
    gate = ProbeGate(storage.records)
    server = grpc.aio.server()
    records_pb2_grpc.add_RecordServiceServicer_to_server(
        RecordService(
            Records(gate, events), 1 << 20, tokens=PageTokens(b"watch tests page tokens")
        ),
        server,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield GatedServer(gated_dsn, gate, records_pb2_grpc.RecordServiceStub(channel))
    finally:
        gate.released.set()
        await channel.close()
        await server.stop(None)
        await events.close()
        await storage.close()


async def next_change(call: grpc.aio.UnaryStreamCall, within: float) -> records_pb2.RecordChange:
    message = await asyncio.wait_for(call.read(), within)
    assert message.WhichOneof("event") == "change"
    return message.change


async def test_an_older_transaction_ending_between_the_re_checks_reads_is_not_missed(
    gated: GatedServer, collection: str
) -> None:
    call = await gated.watch(collection)
    probe = probe_task_name(records_topic("default", collection))
    # the re-check's first round has run (its task is made as the watch starts)
    await asyncio.gather(*(task for task in asyncio.all_tasks() if task.get_name() == probe))
    async with await psycopg.AsyncConnection.connect(gated.dsn) as older:
        await older.execute("SELECT pg_current_xact_id()")
        gated.gate.held = {"changes_pending"}
        await gated.create(collection, "a")  # held back by `older`
        await asyncio.wait_for(gated.gate.entered.wait(), 5)  # the re-check its wakeup asks
        await older.rollback()  # `a` is readable from now on
    gated.gate.released.set()
    change = await next_change(call, 3)
    assert (change.kind, change.record_id) == (CREATED, "a")
    call.cancel()


async def test_a_change_settling_before_the_first_re_check_is_not_missed(
    gated: GatedServer, collection: str
) -> None:
    async with await psycopg.AsyncConnection.connect(gated.dsn) as older:
        await older.execute("SELECT pg_current_xact_id()")
        gated.gate.held = {"changes_head", "record_changes", "changes_pending"}
        call = await gated.watch(collection)  # its re-check is held from the start
        gated.gate.mark()
        await gated.create(collection, "a")  # held back by `older`
        await asyncio.wait_for(gated.gate.stream_read.wait(), 5)  # the watch found nothing
        await older.rollback()  # `a` is readable before the re-check first reads
    gated.gate.released.set()
    change = await next_change(call, 3)
    assert (change.kind, change.record_id) == (CREATED, "a")
    call.cancel()
