"""Wakeups between replicas: an Enqueue on one server wakes a LeaseJobs long poll
waiting on another at once, through PostgreSQL LISTEN/NOTIFY or Redis pub/sub, and
degrades to the long poll's 1 s fallback re-check while the channel is down.

The latency bound (< 0.5 s, median < 0.2 s over 5 tries) is below what the fallback
poll could give: the enqueue comes ~0.3 s into the wait, so the next re-check would
be ~0.7 s later.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
from google.protobuf import duration_pb2
from redis.asyncio import Redis

from strata.v1 import queue_pb2, queue_pb2_grpc, records_pb2, records_pb2_grpc
from strata_server.config import ConfigError, load_settings
from strata_server.storage.events_relay import POSTGRES_CHANNEL
from strata_server.storage.memory.events import LocalEvents
from strata_server.storage.postgres.events import PostgresEvents
from strata_server.storage.redis.events import CHANNEL, RedisEvents
from strata_server.storage.redis.wire import Endpoint
from tests.support.pg import PgServer
from tests.support.ports import free_port
from tests.support.redis import RedisServer
from tests.support.server import StrataProcess

WAIT_SECONDS = 5.0
SETTLE_SECONDS = 0.3
"""How long the long poll runs before the enqueue: past its first lease query."""
TRIES = 5


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


def _servers(database_url: str, workdir: Path, **env: str) -> tuple[StrataProcess, StrataProcess]:
    a = StrataProcess(database_url, workdir / "a", **env)
    b = StrataProcess(database_url, workdir / "b", **env)
    a.start()
    try:
        b.start()
    except BaseException:
        a.stop()
        raise
    return a, b


def _stop(*servers: StrataProcess) -> None:
    for server in servers:
        status = server.stop()
        assert status == 0, server.log()
        assert "Traceback" not in server.log(), server.log()


@pytest.fixture(scope="module", params=["postgres", "redis"])
def replicas(
    request: pytest.FixtureRequest,
    database_url: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[StrataProcess, StrataProcess]]:
    """Two servers on one PostgreSQL database, woken through the parametrized channel."""
    env = {}
    if request.param == "redis":
        env["STRATA_REDIS_URL"] = request.getfixturevalue("redis_server").url
    a, b = _servers(database_url("postgres"), tmp_path_factory.mktemp("wakeups"), **env)
    yield a, b
    _stop(a, b)


def _duration(value: float) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromNanoseconds(int(value * 1e9))
    return message


def _wake_latency(waiter: StrataProcess, enqueuer: StrataProcess) -> float:
    """Seconds from the start of an Enqueue on `enqueuer` until a LeaseJobs long poll
    already waiting on `waiter` returns the job."""
    queue = f"q{uuid.uuid4().hex[:12]}"
    with waiter.channel() as wait_channel, enqueuer.channel() as enqueue_channel:
        waiting = queue_pb2_grpc.QueueServiceStub(wait_channel)
        enqueuing = queue_pb2_grpc.QueueServiceStub(enqueue_channel)
        # Warm both channels up so connection set-up is not part of the measurement.
        for stub in (waiting, enqueuing):
            stub.LeaseJobs(queue_pb2.LeaseJobsRequest(queue=queue, max_jobs=1), timeout=10)
        leased: list[queue_pb2.Job] = []
        returned = 0.0
        failure: list[BaseException] = []

        def lease() -> None:
            nonlocal returned
            try:
                reply = waiting.LeaseJobs(
                    queue_pb2.LeaseJobsRequest(
                        queue=queue, max_jobs=1, wait=_duration(WAIT_SECONDS)
                    ),
                    timeout=WAIT_SECONDS + 10,
                )
                returned = time.monotonic()
                leased.extend(reply.jobs)
            except BaseException as error:
                failure.append(error)

        thread = threading.Thread(target=lease)
        thread.start()
        time.sleep(SETTLE_SECONDS)
        enqueued = time.monotonic()
        job = enqueuing.Enqueue(queue_pb2.EnqueueRequest(queue=queue), timeout=10)
        thread.join(WAIT_SECONDS + 15)
        assert not thread.is_alive()
        assert not failure, failure
        assert [j.id for j in leased] == [job.id]
        return returned - enqueued


def test_enqueue_on_one_replica_wakes_a_long_poll_on_another(
    replicas: tuple[StrataProcess, StrataProcess],
) -> None:
    a, b = replicas
    latencies = [_wake_latency(a, b) for _ in range(TRIES)]
    print("wake latencies (s):", ", ".join(f"{x:.4f}" for x in latencies))
    assert max(latencies) < 0.5, latencies
    assert statistics.median(latencies) < 0.2, latencies
    # And the other way round.
    assert _wake_latency(b, a) < 0.5


def test_redis_outage_falls_back_to_polling_then_recovers(
    database_url: Callable[[str], str], tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    try:
        a, b = _servers(database_url("postgres"), tmp_path, STRATA_REDIS_URL=redis.url)
        try:
            assert _wake_latency(a, b) < 0.5

            redis.stop()
            # Wakeups are lost now, but jobs are not: the 1 s re-check finds them.
            during = [_wake_latency(a, b) for _ in range(3)]
            print("wake latencies with Redis down (s):", ", ".join(f"{x:.3f}" for x in during))
            assert max(during) < WAIT_SECONDS - 1, during
            with b.channel() as channel:
                stub = queue_pb2_grpc.QueueServiceStub(channel)
                queue = f"q{uuid.uuid4().hex[:12]}"
                job = stub.Enqueue(queue_pb2.EnqueueRequest(queue=queue), timeout=10)
                reply = stub.LeaseJobs(
                    queue_pb2.LeaseJobsRequest(queue=queue, max_jobs=1), timeout=10
                )
                assert [j.id for j in reply.jobs] == [job.id]

            redis.start()  # the same port
            restarted = time.monotonic()
            after: list[float] = []
            while len(after) < 3 or max(after[-3:]) >= 0.3:
                assert time.monotonic() < restarted + 15, f"no recovery after restart: {after}"
                after.append(_wake_latency(a, b))
            print(
                "wake latencies after Redis restarted (s):",
                ", ".join(f"{x:.3f}" for x in after),
                f"(fast again {time.monotonic() - restarted:.1f} s after the restart)",
            )
        finally:
            logs = [a.log(), b.log()]
            _stop(a, b)
        for log in logs:
            assert log.count("events connection lost") == 1, log
    finally:
        redis.stop()


# The adapters on their own, in this process.


async def _exercise(
    first: PostgresEvents | RedisEvents, second: PostgresEvents | RedisEvents
) -> None:
    topic = f"queue:default:q{uuid.uuid4().hex[:8]}"
    # Across instances: a notify on one wakes a waiter on the other.
    waiter = asyncio.create_task(second.wait(topic, 5))
    await asyncio.sleep(0.05)
    start = time.monotonic()
    first.notify(topic)
    assert await waiter
    assert time.monotonic() - start < 0.5
    # Locally at once, without a round trip.
    waiter = asyncio.create_task(first.wait(topic, 5))
    await asyncio.sleep(0)
    first.notify(topic)
    assert await asyncio.wait_for(waiter, 0.05)
    # A waiter on another topic is not woken.
    assert not await _crosses(first, second, topic, waiting_on=topic + "x")


async def _crosses(
    first: PostgresEvents | RedisEvents,
    second: PostgresEvents | RedisEvents,
    topic: str,
    *,
    waiting_on: str | None = None,
) -> bool:
    """Whether a notify of `topic` on `first` wakes a waiter on `second` (waiting on
    `waiting_on`, by default the same topic) within 0.3 s."""
    woken, _ = await asyncio.gather(
        second.wait(waiting_on or topic, 0.3), _notify_soon(first, topic)
    )
    return woken


async def _notify_soon(events: PostgresEvents | RedisEvents, topic: str) -> None:
    await asyncio.sleep(0.05)
    events.notify(topic)


def _own_tasks() -> set[asyncio.Task[object]]:
    return {task for task in asyncio.all_tasks() if task.get_name().startswith("strata-events")}


async def test_postgres_events_between_instances(database_url: Callable[[str], str]) -> None:
    dsn = database_url("postgres")
    first = await PostgresEvents.open(dsn)
    second = await PostgresEvents.open(dsn)
    try:
        await _exercise(first, second)
        # The listening connections name themselves (and are not the store's pool's).
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            cursor = await conn.execute(
                "SELECT application_name FROM pg_stat_activity WHERE query = %s",
                (f"LISTEN {POSTGRES_CHANNEL}",),
            )
            names = [row[0] for row in await cursor.fetchall()]
        assert len(names) >= 2 and set(names) == {"strata-events"}, names
        # Its own notifications come back through LISTEN; they do not wake it twice.
        topic = f"queue:default:q{uuid.uuid4().hex[:8]}"
        first.notify(topic)
        assert not await first.wait(topic, 0.3)
        # Coalescing: many notifies of one topic, one wakeup each side, no backlog.
        for _ in range(1000):
            first.notify(topic)
        assert await second.wait(topic, 2)
    finally:
        await first.close()
        await second.close()
    assert not _own_tasks()


async def test_postgres_commit_notices_wake_the_other_instances_at_commit(
    database_url: Callable[[str], str],
) -> None:
    dsn = database_url("postgres")
    first = await PostgresEvents.open(dsn)
    second = await PostgresEvents.open(dsn)
    topic = f"transcript:default:t{uuid.uuid4().hex[:8]}"
    notice = first.commit_notice(topic)
    assert notice is not None and topic in notice
    # Wakeups through Redis, or within one process, have nothing to send at commit.
    assert RedisEvents(Endpoint()).commit_notice(topic) is None
    assert LocalEvents().commit_notice(topic) is None
    try:
        # A write's own connection sends the notice; nothing arrives before commit,
        # and a rolled-back write's notice never does.
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            for outcome in ("rollback", "commit"):
                with second.listen(topic) as heard:
                    async with conn.transaction(force_rollback=outcome == "rollback"):
                        await conn.execute("SELECT pg_notify(%s, %s)", (POSTGRES_CHANNEL, notice))
                        assert not await heard.wait(0.2)
                    committed = outcome == "commit"
                    assert bool(await heard.wait(2 if committed else 0.3)) is committed
        # The instance that made the notice woke its own waiters already (notify
        # with announced=True): its listener skips the notice when it comes back.
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            with first.listen(topic) as own, second.listen(topic) as other:
                await conn.execute("SELECT pg_notify(%s, %s)", (POSTGRES_CHANNEL, notice))
                assert await other.wait(2)  # delivered: so it reached `first` too
                assert not await own.wait(0.3)
                first.notify(topic, announced=True)  # local only: the other hears nothing
                assert await own.wait(0.1)
                assert not await other.wait(0.3)
    finally:
        await first.close()
        await second.close()


async def test_postgres_events_reconnect_after_a_database_restart(tmp_path: Path) -> None:
    pg = PgServer(tmp_path)
    pg.start()
    try:
        dsn = pg.create_database("wakeups")
        first = await PostgresEvents.open(dsn)
        second = await PostgresEvents.open(dsn)
        try:
            await _exercise(first, second)
            await asyncio.to_thread(pg.stop)
            first.notify("queue:default:lost")  # dropped, without raising or blocking
            await asyncio.to_thread(pg.start)
            # Both LISTEN and send again once their backoff lets them reconnect.
            deadline = time.monotonic() + 15
            topic = f"queue:default:q{uuid.uuid4().hex[:8]}"
            while not await _crosses(first, second, topic):
                assert time.monotonic() < deadline, "no wakeups after the database restarted"
            await _exercise(first, second)
        finally:
            await first.close()
            await second.close()
    finally:
        await asyncio.to_thread(pg.cleanup)
    assert not _own_tasks()


async def test_redis_events_between_instances(redis_server: RedisServer) -> None:
    first = await RedisEvents.open(redis_server.url)
    second = await RedisEvents.open(redis_server.url)
    try:
        await _exercise(first, second)
    finally:
        await first.close()
        await second.close()
    assert not _own_tasks()


async def test_redis_events_publish_a_steps_notifies_once_per_topic(
    redis_server: RedisServer,
) -> None:
    events = await RedisEvents.open(redis_server.url)
    observer = Redis.from_url(redis_server.url)
    pubsub = observer.pubsub()
    try:
        await pubsub.subscribe(CHANNEL)
        assert (await pubsub.get_message(timeout=2))["type"] == "subscribe"
        for _ in range(100):  # a burst within one step, as a BatchEnqueue's would be
            events.notify("queue:default:a")
        events.notify("queue:default:b")
        await asyncio.sleep(0.01)
        events.notify("queue:default:a")  # a later step publishes again
        heard = []
        while (message := await pubsub.get_message(timeout=0.5)) is not None:
            heard.append(message["data"])
        assert sorted(heard[:2]) == [b"queue:default:a", b"queue:default:b"]
        assert heard[2:] == [b"queue:default:a"]
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await observer.aclose()
        await events.close()


async def test_redis_events_unreachable_stay_local() -> None:
    port = free_port()  # nobody listens on it
    start = time.monotonic()
    events = await RedisEvents.open(f"redis://127.0.0.1:{port}/0")
    try:
        assert time.monotonic() - start < 2, "an unreachable Redis must not hold up start-up"
        topic = "queue:default:local"
        waiter = asyncio.create_task(events.wait(topic, 5))
        await asyncio.sleep(0)
        events.notify(topic)  # must neither raise nor block
        assert await asyncio.wait_for(waiter, 0.1)
        await asyncio.sleep(0.3)  # the sender fails and backs off meanwhile
    finally:
        await events.close()
    assert not _own_tasks()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        (
            "rediss://user:secret@cache.internal:6380/2",
            "rediss://user:secret@cache.internal:6380/2",
        ),
        ("", None),
    ],
)
def test_redis_url_setting(value: str, expected: str | None) -> None:
    assert load_settings(redis_url=value).redis_url == expected


@pytest.mark.parametrize(
    "value", ["http://127.0.0.1:6379", "127.0.0.1:6379", "redis://", "redis://h:notaport/0"]
)
def test_redis_url_setting_rejects(value: str) -> None:
    with pytest.raises(ConfigError, match="redis_url"):
        load_settings(redis_url=value)


def test_a_subscription_on_one_replica_is_fed_and_freed_by_calls_on_another(
    replicas: tuple[StrataProcess, StrataProcess],
) -> None:
    """SubscribeJobs on A: an Enqueue on B pushes the job within the wakeup bound,
    and with the stream at max_in_flight, an AckJob on B frees the slot at once."""
    a, b = replicas
    queue = f"q{uuid.uuid4().hex[:12]}"
    with a.channel() as a_channel, b.channel() as b_channel:
        on_a = queue_pb2_grpc.QueueServiceStub(a_channel)
        on_b = queue_pb2_grpc.QueueServiceStub(b_channel)
        on_b.GetQueueStats(queue_pb2.GetQueueStatsRequest(queue=queue), timeout=10)  # warm up
        stream = on_a.SubscribeJobs(
            queue_pb2.SubscribeJobsRequest(queue=queue, max_in_flight=1), timeout=30
        )
        pushed: list[tuple[float, queue_pb2.Job]] = []

        def read() -> None:
            with contextlib.suppress(grpc.RpcError):  # the cancel at the end
                pushed.extend((time.monotonic(), job) for job in stream)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        time.sleep(SETTLE_SECONDS)
        enqueued = time.monotonic()
        first = on_b.Enqueue(queue_pb2.EnqueueRequest(queue=queue), timeout=10)
        second = on_b.Enqueue(queue_pb2.EnqueueRequest(queue=queue), timeout=10)
        deadline = time.monotonic() + 5
        while not pushed and time.monotonic() < deadline:
            time.sleep(0.005)
        assert [job.id for _, job in pushed] == [first.id]
        assert pushed[0][0] - enqueued < 0.5
        time.sleep(SETTLE_SECONDS)  # the stream is full: second waits
        assert len(pushed) == 1
        acked = time.monotonic()
        on_b.AckJob(
            queue_pb2.AckJobRequest(id=first.id, lease_token=pushed[0][1].lease_token),
            timeout=10,
        )
        while len(pushed) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        stream.cancel()
        reader.join(5)
        assert [job.id for _, job in pushed] == [first.id, second.id]
        # a wakeup from B's ack, not A's 1 s fallback re-check, freed the slot
        assert pushed[1][0] - acked < 0.5, pushed[1][0] - acked


def test_a_record_watch_on_one_replica_sees_writes_through_another(
    replicas: tuple[StrataProcess, StrataProcess],
) -> None:
    """WatchRecords on A while 4 writers update records through B: every version
    once, in order per record, the first within the wakeup bound."""
    a, b = replicas
    collection = f"c{uuid.uuid4().hex[:12]}"
    writers, rounds = 4, 10
    with a.channel() as a_channel, b.channel() as b_channel:
        on_a = records_pb2_grpc.RecordServiceStub(a_channel)
        on_b = records_pb2_grpc.RecordServiceStub(b_channel)
        watch = on_a.WatchRecords(records_pb2.WatchRecordsRequest(collection=collection))
        assert next(watch).WhichOneof("event") == "started"
        received: list[tuple[float, records_pb2.RecordChange]] = []

        def read() -> None:
            with contextlib.suppress(grpc.RpcError):  # the cancel at the end
                for message in watch:
                    received.append((time.monotonic(), message.change))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        time.sleep(SETTLE_SECONDS)
        started = time.monotonic()

        def write(w: int) -> None:
            for _ in range(rounds):
                on_b.UpdateRecord(
                    records_pb2.UpdateRecordRequest(
                        collection=collection, id=f"w{w}", allow_missing=True
                    ),
                    timeout=10,
                )

        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        deadline = time.monotonic() + 10
        while len(received) < writers * rounds and time.monotonic() < deadline:
            time.sleep(0.01)
        watch.cancel()
        reader.join(5)
    assert len(received) == writers * rounds
    assert received[0][0] - started < 0.5
    for w in range(writers):
        versions = [change.version for _, change in received if change.record_id == f"w{w}"]
        assert versions == list(range(1, rounds + 1))
