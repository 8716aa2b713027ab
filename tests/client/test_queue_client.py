"""The job queue in the Python client: the QueueService methods of strata.Client
and strata.AsyncClient, and the workers of `client.queue(name)`.

End-to-end tests run against real servers on both shapes (`server` fixture); the
unit tests at the end cover the pure pieces without a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

import strata
from strata import _job_args, _leases, _queue_requests, _worker
from strata._convert import dict_from_struct, struct_from_dict
from strata.v1 import queue_pb2
from tests.client.test_client_unit import server_error
from tests.support.server import StrataProcess

SHORT_WAIT = timedelta(seconds=1)


@pytest.fixture
def queue() -> str:
    """A queue name no other test uses."""
    return f"q_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def client(server: StrataProcess) -> Iterator[strata.Client]:
    with strata.Client(server.target, actor="queue-test") as client:
        yield client


def _states(client: strata.Client, queue: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job in client.list_jobs(queue):
        counts[job.state] = counts.get(job.state, 0) + 1
    return counts


# --- the QueueService methods, end to end -------------------------------------


def test_enqueue_lease_ack(client: strata.Client, queue: str) -> None:
    low = client.enqueue(queue, {"to": "low@example.com"})
    high = client.enqueue(queue, {"to": "high@example.com"}, priority=5, max_attempts=3)
    assert (high.priority, high.max_attempts, high.attempt) == (5, 3, 0)
    assert client.get_job(high).state == "available"
    assert high.payload == {"to": "high@example.com"}
    assert high.lease_token is None and high.finish_time is None

    [leased] = client.lease_jobs(queue, lease_duration=timedelta(seconds=10))
    assert leased.id == high.id  # highest priority first
    assert (leased.state, leased.attempt) == ("leased", 1)
    assert leased.lease_token and leased.lease_expire_time is not None

    extended = client.extend_lease(leased, timedelta(seconds=20))
    assert extended.lease_token == leased.lease_token
    assert extended.lease_expire_time is not None
    assert extended.lease_expire_time > leased.lease_expire_time

    done = client.ack_job(extended, result={"message_id": "m-1", "n": 2})
    assert (done.state, done.result) == ("completed", {"message_id": "m-1", "n": 2})
    assert done.finish_time is not None
    fetched = client.get_job(high.id)
    assert (fetched.state, fetched.result, fetched.lease_token) == ("completed", done.result, None)
    with pytest.raises(strata.LeaseLost) as lost:
        client.ack_job(leased)
    assert isinstance(lost.value, strata.FailedPrecondition)
    assert lost.value.reason == "LEASE_LOST"

    stats = client.queue_stats(queue)
    assert (stats.available, stats.leased, stats.completed, stats.paused) == (1, 0, 1, False)
    assert [job.id for job in client.list_jobs(queue, "available")] == [low.id]
    assert [job.id for job in client.list_jobs(queue, page_size=1)] == [low.id, high.id]


def test_ack_and_fail_need_the_current_token(client: strata.Client, queue: str) -> None:
    job = client.enqueue(queue, {})
    [leased] = client.lease_jobs(queue)
    assert leased.lease_token is not None
    with pytest.raises(strata.LeaseLost):
        client.ack_job(job.id, "not-the-token")
    with pytest.raises(ValueError, match="no lease token"):
        client.ack_job(job)  # enqueue's Job holds no lease
    with pytest.raises(strata.NotFound):
        client.ack_job("01ARZ3NDEKTSV4RRFFQ69G5FAV", leased.lease_token)
    assert client.ack_job(job.id, leased.lease_token).state == "completed"


def test_ack_jobs_completes_a_batch_each_on_its_own(client: strata.Client, queue: str) -> None:
    client.batch_enqueue(queue, [{"n": i} for i in range(3)])
    first, second, third = client.lease_jobs(queue, max_jobs=3)
    client.ack_job(second)
    outcomes = client.ack_jobs([first, second, (third, {"done": 3})])
    assert isinstance(outcomes[0], strata.Job) and outcomes[0].state == "completed"
    assert isinstance(outcomes[1], strata.LeaseLost), "acked already: its token is stale"
    assert isinstance(outcomes[2], strata.Job) and outcomes[2].result == {"done": 3}
    assert _states(client, queue) == {"completed": 3}


def test_async_ack_jobs(server: StrataProcess, queue: str) -> None:
    async def run() -> list[strata.Job | strata.StrataError]:
        async with strata.AsyncClient(server.target) as client:
            await client.batch_enqueue(queue, [{"n": 1}, {"n": 2}])
            return await client.ack_jobs(await client.lease_jobs(queue, max_jobs=2))

    outcomes = asyncio.run(run())
    assert [getattr(job, "state", None) for job in outcomes] == ["completed", "completed"]


def test_list_queues_on_both_clients(client: strata.Client, server: StrataProcess) -> None:
    namespace = f"lq{uuid.uuid4().hex[:10]}"
    assert list(client.list_queues(namespace=namespace)) == []
    client.enqueue("b", {}, namespace=namespace)
    client.pause_queue("a", namespace=namespace)
    listed = list(client.list_queues(page_size=1, namespace=namespace))
    assert [(s.queue, s.paused, s.available) for s in listed] == [("a", True, 0), ("b", False, 1)]
    single = client.queue_stats("b", namespace=namespace)
    no_age = timedelta(0)
    assert replace(listed[1], oldest_available_age=no_age) == replace(
        single, oldest_available_age=no_age
    )

    async def run() -> list[strata.QueueStats]:
        async with strata.AsyncClient(server.target, namespace=namespace) as aclient:
            return [stats async for stats in aclient.list_queues()]

    assert [stats.queue for stats in asyncio.run(run())] == ["a", "b"]


def test_fail_retry_and_dead_letter(client: strata.Client, queue: str) -> None:
    job = client.enqueue(queue, {"n": 1}, max_attempts=2, retry_backoff=timedelta(seconds=30))

    [first] = client.lease_jobs(queue)
    again = client.fail_job(first, "smtp timeout")
    assert (again.state, again.last_error, again.attempt) == ("scheduled", "smtp timeout", 1)
    assert again.run_time > datetime.now(UTC) + timedelta(seconds=10)  # the backoff
    assert client.lease_jobs(queue) == []

    # Only a fresh lease can complete the job; retry_delay overrides the backoff.
    client.cancel_job(job)
    assert client.retry_job(job).state == "available"
    [second] = client.lease_jobs(queue)
    assert second.attempt == 1  # retry_job starts the count afresh
    client.fail_job(second, ValueError("bad address"), retry_delay=timedelta(0))
    [third] = client.lease_jobs(queue)
    dead = client.fail_job(third, "still broken")
    assert (dead.state, dead.last_error, dead.attempt) == ("dead", "still broken", 2)
    assert dead.finish_time is not None
    assert client.queue_stats(queue).dead == 1
    assert [j.id for j in client.list_jobs(queue, state="dead")] == [job.id]

    revived = client.retry_job(job.id)
    assert (revived.state, revived.attempt) == ("available", 0)
    cancelled = client.cancel_job(job.id)
    assert cancelled.state == "cancelled"
    with pytest.raises(strata.FailedPrecondition) as finished:
        client.cancel_job(job.id)
    assert finished.value.reason == "JOB_FINISHED"
    with pytest.raises(strata.FailedPrecondition) as not_retryable:
        client.retry_job(client.enqueue(queue, {}))
    assert not_retryable.value.reason == "JOB_NOT_RETRYABLE"


def test_fail_records_an_exception_as_its_type_and_message(
    client: strata.Client, queue: str
) -> None:
    client.enqueue(queue, {}, max_attempts=1)
    [leased] = client.lease_jobs(queue)

    dead = client.fail_job(leased, ValueError("bad address"))

    assert dead.last_error == "ValueError: bad address\n"


def test_batch_enqueue_payloads_and_specs(client: strata.Client, queue: str) -> None:
    plain = client.batch_enqueue(queue, [{"n": n} for n in range(3)])
    assert [job.payload for job in plain] == [{"n": 0}, {"n": 1}, {"n": 2}]

    later = datetime.now(UTC) + timedelta(hours=1)
    specs = client.batch_enqueue(
        queue,
        specs=[
            {"payload": {"n": 3}, "priority": 9},
            {"payload": {"n": 4}, "run_time": later, "unique_key": "k-4"},
        ],
        request_id=strata.new_request_id(),
    )
    assert [job.priority for job in specs] == [9, 0]
    assert [client.get_job(job).state for job in specs] == ["available", "scheduled"]
    assert specs[1].unique_key == "k-4"
    with pytest.raises(strata.InvalidArgument) as bad:
        client.batch_enqueue(queue, specs=[{"payload": {}}, {"payload": {}, "max_attempts": -1}])
    assert bad.value.metadata["job_index"] == "1"
    assert client.queue_stats(queue).available + client.queue_stats(queue).scheduled == 5


def test_request_id_and_unique_key_deduplicate(client: strata.Client, queue: str) -> None:
    request_id = strata.new_request_id()
    first = client.enqueue(queue, {"a": 1}, request_id=request_id)
    assert client.enqueue(queue, {"a": 1}, request_id=request_id).id == first.id

    keyed = client.enqueue(queue, {"b": 1}, unique_key="user-7")
    assert client.enqueue(queue, {"b": 2}, unique_key="user-7").id == keyed.id
    assert len(list(client.list_jobs(queue))) == 2


def test_delay_and_pause(client: strata.Client, queue: str) -> None:
    delayed = client.enqueue(queue, {}, delay=timedelta(minutes=5))
    assert delayed.state == "scheduled"
    assert client.lease_jobs(queue) == []

    assert client.pause_queue(queue).paused is True
    client.enqueue(queue, {})  # enqueues still succeed
    assert client.lease_jobs(queue) == []
    assert client.resume_queue(queue).paused is False
    assert len(client.lease_jobs(queue, 10)) == 1


def test_long_poll_deadline_is_wait_plus_timeout(server: StrataProcess, queue: str) -> None:
    with strata.Client(server.target, timeout=1.0) as client:
        started = time.monotonic()
        assert client.lease_jobs(queue, wait=timedelta(seconds=2)) == []  # no DEADLINE_EXCEEDED
        assert time.monotonic() - started >= 1.9


def test_long_poll_returns_when_a_job_arrives(client: strata.Client, queue: str) -> None:
    timer = threading.Timer(0.5, client.enqueue, (queue, {"late": True}))
    timer.start()
    started = time.monotonic()
    [job] = client.lease_jobs(queue, wait=timedelta(seconds=10))
    assert job.payload == {"late": True}
    assert time.monotonic() - started < 5
    timer.join()


def test_namespace_per_call_and_from_the_job(client: strata.Client, queue: str) -> None:
    job = client.enqueue(queue, {}, namespace="other")
    assert job.namespace == "other"
    with pytest.raises(strata.NotFound):
        client.get_job(job.id)
    assert client.get_job(job).namespace == "other"  # a Job carries its namespace
    assert client.lease_jobs(queue) == []
    [leased] = client.lease_jobs(queue, namespace="other")
    assert client.ack_job(leased).state == "completed"


# --- the worker: QueueHandle.work ---------------------------------------------


def test_worker_runs_50_jobs_4_at_a_time_and_stops(client: strata.Client, queue: str) -> None:
    client.batch_enqueue(queue, [{"n": n} for n in range(50)])
    stop = threading.Event()
    lock = threading.Lock()
    seen: list[int] = []
    active = 0
    most_active = 0

    def handler(job: strata.Job) -> dict[str, Any]:
        nonlocal active, most_active
        with lock:
            active += 1
            most_active = max(most_active, active)
        time.sleep(0.02)
        with lock:
            active -= 1
            seen.append(job.payload["n"])
            if len(seen) == 50:
                stop.set()
        return {"double": job.payload["n"] * 2}

    started = time.monotonic()
    client.queue(queue).work(handler, concurrency=4, stop=stop)  # default wait: 20 s
    assert time.monotonic() - started < 15

    assert sorted(seen) == list(range(50))
    assert 1 < most_active <= 4
    completed = list(client.list_jobs(queue, "completed"))
    assert len(completed) == 50
    assert all(job.result == {"double": job.payload["n"] * 2} for job in completed)


def test_worker_returns_soon_after_stop_while_it_waits(client: strata.Client, queue: str) -> None:
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()

    client.queue(queue).work(lambda job: None, stop=stop, wait=timedelta(seconds=30))

    assert time.monotonic() - started < 3  # the long poll was cancelled
    client.enqueue(queue, {})
    assert client.queue_stats(queue).available == 1  # and leased nothing


def test_handler_that_raises_fails_its_job(client: strata.Client, queue: str) -> None:
    client.enqueue(queue, {"to": "nobody"}, max_attempts=1)
    stop = threading.Event()

    def handler(job: strata.Job) -> None:
        stop.set()
        raise ValueError(f"bad address {job.payload['to']}")

    client.queue(queue).work(handler, stop=stop, wait=SHORT_WAIT)

    [dead] = client.list_jobs(queue)
    assert (dead.state, dead.last_error) == ("dead", "ValueError: bad address nobody\n")


def test_handler_result_that_is_not_a_dict_fails_the_job(client: strata.Client, queue: str) -> None:
    client.enqueue(queue, {}, max_attempts=1)
    stop = threading.Event()

    def handler(job: strata.Job) -> Any:
        stop.set()
        return ["not", "a", "dict"]

    client.queue(queue).work(handler, stop=stop, wait=SHORT_WAIT)

    [dead] = client.list_jobs(queue)
    assert dead.state == "dead"
    assert dead.last_error == "TypeError: the handler returned a list, not a dict or None\n"


def test_heartbeat_keeps_a_short_lease_alive(
    server: StrataProcess, client: strata.Client, queue: str
) -> None:
    job = client.enqueue(queue, {})
    stop = threading.Event()
    stolen: list[list[strata.Job]] = []

    def slow(leased: strata.Job) -> dict[str, Any]:
        time.sleep(2.5)  # past the 2 s lease: only the heartbeat keeps it
        with strata.Client(server.target) as other:
            stolen.append(other.lease_jobs(queue, 10))
        time.sleep(0.5)
        stop.set()
        return {"slow": True}

    client.queue(queue).work(slow, stop=stop, lease_duration=timedelta(seconds=2), wait=SHORT_WAIT)

    assert stolen == [[]]
    done = client.get_job(job)
    assert (done.state, done.attempt, done.result) == ("completed", 1, {"slow": True})
    assert client.queue_stats(queue).expired_leases == 0


def test_lost_lease_is_logged_and_skipped(
    client: strata.Client, queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    cancelled = client.enqueue(queue, {"cancel": True}, priority=1)
    normal = client.enqueue(queue, {"cancel": False})
    stop = threading.Event()
    handled: list[str] = []

    def handler(job: strata.Job) -> None:
        handled.append(job.id)
        if job.payload["cancel"]:
            client.cancel_job(job)  # the ack then finds the lease gone
        else:
            stop.set()

    with caplog.at_level(logging.WARNING, logger="strata.worker"):
        client.queue(queue).work(handler, stop=stop, wait=SHORT_WAIT)

    assert handled == [cancelled.id, normal.id]
    assert client.get_job(cancelled).state == "cancelled"
    assert client.get_job(normal).state == "completed"
    assert any("lease lost" in record.getMessage() for record in caplog.records)


def test_worker_stops_on_sigterm(client: strata.Client, queue: str) -> None:
    client.batch_enqueue(queue, [{"n": n} for n in range(3)])
    before = signal.getsignal(signal.SIGTERM)
    handled: list[str] = []

    def handler(job: strata.Job) -> None:
        handled.append(job.id)
        if len(handled) == 1:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)  # the job in hand still finishes

    client.queue(queue).work(handler, wait=SHORT_WAIT)

    assert len(handled) == 1
    assert _states(client, queue) == {"completed": 1, "available": 2}
    assert signal.getsignal(signal.SIGTERM) is before


# --- the worker: for job in QueueHandle.jobs() ----------------------------------


def test_for_loop_acks_each_job_whose_body_finishes(client: strata.Client, queue: str) -> None:
    client.batch_enqueue(queue, [{"n": n} for n in range(5)])
    stop = threading.Event()
    seen = []

    for job in client.queue(queue).jobs(max_jobs=2, wait=SHORT_WAIT, stop=stop):
        assert client.get_job(job).state == "leased"
        seen.append(job.payload["n"])
        if len(seen) == 5:
            stop.set()

    assert sorted(seen) == list(range(5))
    assert _states(client, queue) == {"completed": 5}


def test_for_loop_fails_the_job_whose_body_raises(client: strata.Client, queue: str) -> None:
    backoff = timedelta(minutes=1)
    client.batch_enqueue(queue, specs=[{"payload": {}, "retry_backoff": backoff}] * 3)
    order = []

    with pytest.raises(RuntimeError, match="boom"):
        for job in client.queue(queue).jobs(max_jobs=3, wait=SHORT_WAIT):
            order.append(job.id)
            if len(order) == 2:
                raise RuntimeError("boom")

    first, second, third = (
        client.get_job(job_id) for job_id in [*order, _other(client, queue, order)]
    )
    assert first.state == "completed"
    assert (second.state, second.last_error) == ("scheduled", _worker.ABANDONED)  # retried later
    # given back unworked: runnable at once, the attempt not counted
    assert (third.state, third.attempt, third.last_error) == ("available", 0, None)


def _other(client: strata.Client, queue: str, ids: list[str]) -> str:
    [job_id] = {job.id for job in client.list_jobs(queue)} - set(ids)
    return job_id


def test_for_loop_break_gives_the_job_back(client: strata.Client, queue: str) -> None:
    job = client.enqueue(queue, {}, retry_backoff=timedelta(minutes=1))

    for _ in client.queue(queue).jobs(wait=SHORT_WAIT):
        break

    assert (client.get_job(job).state, client.get_job(job).attempt) == ("scheduled", 1)


def test_for_loop_heartbeat_runs_while_the_body_runs(
    server: StrataProcess, client: strata.Client, queue: str
) -> None:
    job = client.enqueue(queue, {})
    stop = threading.Event()
    handle = client.queue(queue)

    for leased in handle.jobs(lease_duration=timedelta(seconds=2), wait=SHORT_WAIT, stop=stop):
        assert leased.id == job.id
        time.sleep(3)
        with strata.Client(server.target) as other:
            assert other.lease_jobs(queue) == []
        stop.set()

    done = client.get_job(job)
    assert (done.state, done.attempt) == ("completed", 1)


# --- the asyncio worker -------------------------------------------------------


def test_async_worker(server: StrataProcess, queue: str) -> None:
    async def scenario() -> None:
        async with strata.AsyncClient(server.target) as client:
            await client.batch_enqueue(queue, [{"n": n} for n in range(20)])
            await client.enqueue(queue, {"n": -1}, max_attempts=1, priority=-1)
            stop = asyncio.Event()
            seen: list[int] = []
            active = 0
            most_active = 0

            async def handler(job: strata.Job) -> dict[str, Any]:
                nonlocal active, most_active
                active += 1
                most_active = max(most_active, active)
                await asyncio.sleep(0.02)
                active -= 1
                seen.append(job.payload["n"])
                if len(seen) == 21:
                    stop.set()
                if job.payload["n"] < 0:
                    raise LookupError("no such user")
                return {"n": job.payload["n"]}

            started = time.monotonic()
            await client.queue(queue).work(handler, concurrency=4, stop=stop)
            assert time.monotonic() - started < 15
            assert sorted(seen) == list(range(-1, 20))
            assert 1 < most_active <= 4
            stats = await client.queue_stats(queue)
            assert (stats.completed, stats.dead) == (20, 1)
            dead = [job async for job in client.list_jobs(queue, state="dead")]
            assert dead[0].last_error == "LookupError: no such user\n"

    asyncio.run(scenario())


def test_async_worker_heartbeat_and_stop(server: StrataProcess, queue: str) -> None:
    async def scenario() -> None:
        async with strata.AsyncClient(server.target) as client:
            job = await client.enqueue(queue, {})
            stop = asyncio.Event()
            stolen: list[list[strata.Job]] = []

            async def slow(leased: strata.Job) -> None:
                await asyncio.sleep(3)
                stolen.append(await client.lease_jobs(queue))
                stop.set()

            await client.queue(queue).work(slow, stop=stop, lease_duration=timedelta(seconds=2))
            assert stolen == [[]]
            done = await client.get_job(job)
            assert (done.state, done.attempt) == ("completed", 1)

            stop = asyncio.Event()
            asyncio.get_running_loop().call_later(0.5, stop.set)
            started = time.monotonic()
            await client.queue(queue).work(slow, stop=stop, wait=timedelta(seconds=30))
            assert time.monotonic() - started < 3

    asyncio.run(scenario())


def test_async_for_loop(server: StrataProcess, queue: str) -> None:
    async def scenario() -> None:
        async with strata.AsyncClient(server.target) as client:
            await client.batch_enqueue(queue, [{"n": n} for n in range(4)])
            stop = asyncio.Event()
            seen = []
            async for job in client.queue(queue).jobs(stop=stop, wait=SHORT_WAIT):
                seen.append(job.payload["n"])
                if len(seen) == 3:
                    stop.set()  # the rest of the batch is still handed out
            assert sorted(seen) == [0, 1, 2, 3]

            specs: list[strata.EnqueueSpec] = [{"payload": {}, "retry_backoff": timedelta(hours=1)}]
            await client.batch_enqueue(queue, specs=specs * 2)
            with pytest.raises(KeyError):
                async with contextlib.aclosing(client.queue(queue).jobs(wait=SHORT_WAIT)) as jobs:
                    async for job in jobs:
                        raise KeyError(job.id)
            states = sorted([job.state async for job in client.list_jobs(queue)])
            assert states == ["available", *["completed"] * 4, "scheduled"]

    asyncio.run(scenario())


# --- unit tests of the pure pieces --------------------------------------------


def _job_message(**fields: Any) -> queue_pb2.Job:
    defaults: dict[str, Any] = {
        "namespace": "acme",
        "queue": "emails",
        "id": "j-1",
        "state": queue_pb2.JOB_STATE_LEASED,
        "payload": struct_from_dict({"to": "a@example.com"}),
        "priority": 2,
        "attempt": 1,
        "max_attempts": 10,
        "lease_token": "tok",
    }
    message = queue_pb2.Job(**{**defaults, **fields})
    message.run_time.FromDatetime(datetime(2026, 1, 1, tzinfo=UTC))
    message.create_time.FromDatetime(datetime(2026, 1, 1, tzinfo=UTC))
    message.update_time.FromDatetime(datetime(2026, 1, 2, tzinfo=UTC))
    message.lease_expire_time.FromDatetime(datetime(2026, 1, 2, 0, 0, 30, tzinfo=UTC))
    return message


def _leased(job_id: str = "j-1", token: str = "tok") -> strata.Job:
    return strata.Job.from_proto(_job_message(id=job_id, lease_token=token))


def test_job_from_proto() -> None:
    job = _leased()

    assert job == strata.Job(
        namespace="acme",
        queue="emails",
        id="j-1",
        state="leased",
        payload={"to": "a@example.com"},
        priority=2,
        run_time=datetime(2026, 1, 1, tzinfo=UTC),
        attempt=1,
        max_attempts=10,
        create_time=datetime(2026, 1, 1, tzinfo=UTC),
        update_time=datetime(2026, 1, 2, tzinfo=UTC),
        lease_token="tok",
        lease_expire_time=datetime(2026, 1, 2, 0, 0, 30, tzinfo=UTC),
    )
    assert (job.last_error, job.result, job.unique_key, job.finish_time) == (None,) * 4
    assert hash(job) == hash(_leased())


def test_job_from_proto_optional_fields_and_unknown_state() -> None:
    message = _job_message(
        last_error="boom", unique_key="k", result=struct_from_dict({"ok": True}), state=99
    )
    message.finish_time.FromDatetime(datetime(2026, 1, 3, tzinfo=UTC))
    message.retry_backoff.FromTimedelta(timedelta(seconds=5))

    job = strata.Job.from_proto(message)

    assert (job.last_error, job.unique_key, job.result) == ("boom", "k", {"ok": True})
    assert job.finish_time == datetime(2026, 1, 3, tzinfo=UTC)
    assert job.retry_backoff == timedelta(seconds=5)
    assert job.state == "unspecified"


def test_queue_stats_from_proto() -> None:
    message = queue_pb2.QueueStats(namespace="acme", queue="emails", paused=True, dead=2)
    message.oldest_available_age.FromTimedelta(timedelta(seconds=90))
    message.expiry_window.FromTimedelta(timedelta(minutes=5))

    stats = strata.QueueStats.from_proto(message)

    assert (stats.paused, stats.dead, stats.available) == (True, 2, 0)
    assert stats.oldest_available_age == timedelta(seconds=90)
    assert stats.expiry_window == timedelta(minutes=5)


def test_lease_lost_is_a_failed_precondition() -> None:
    err = server_error(grpc.StatusCode.FAILED_PRECONDITION, "stale token", "LEASE_LOST")

    error = strata.from_rpc_error(err)

    assert type(error) is strata.LeaseLost
    assert isinstance(error, strata.FailedPrecondition)
    other = server_error(grpc.StatusCode.FAILED_PRECONDITION, "done", "JOB_FINISHED")
    assert type(strata.from_rpc_error(other)) is strata.FailedPrecondition


def test_enqueue_request() -> None:
    rpc = _queue_requests.enqueue(
        "emails",
        {"to": "a"},
        priority=3,
        delay=timedelta(seconds=90),
        max_attempts=5,
        unique_key="u",
        retry_backoff=timedelta(seconds=2),
        request_id="req-1",
    )

    request = rpc.request("acme")

    assert isinstance(request, queue_pb2.EnqueueRequest)
    assert (rpc.service, rpc.method, rpc.idempotent, rpc.wait) == ("queue", "Enqueue", True, 0.0)
    assert (request.namespace, request.queue, request.priority) == ("acme", "emails", 3)
    assert (request.max_attempts, request.unique_key, request.request_id) == (5, "u", "req-1")
    assert request.delay.ToTimedelta() == timedelta(seconds=90)
    assert request.retry_backoff.ToTimedelta() == timedelta(seconds=2)
    assert not request.HasField("run_time")
    assert dict_from_struct(request.payload) == {"to": "a"}
    assert _queue_requests.enqueue("emails", {}).idempotent is False


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"delay": 5}, TypeError),
        ({"run_time": datetime(2030, 1, 1)}, ValueError),
        ({"retry_backoff": 1.5}, TypeError),
    ],
)
def test_enqueue_refuses_ambiguous_times(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        _queue_requests.enqueue("emails", {}, **kwargs)


def test_batch_enqueue_request() -> None:
    rpc = _queue_requests.batch_enqueue(
        "emails", specs=[{"payload": {"n": 1}, "priority": 4}, {"payload": {"n": 2}}]
    )

    request = rpc.request("acme")

    assert isinstance(request, queue_pb2.BatchEnqueueRequest)
    assert rpc.idempotent is False
    assert request.namespace == "acme"
    assert [(job.queue, job.priority, job.namespace) for job in request.jobs] == [
        ("emails", 4, ""),
        ("emails", 0, ""),
    ]
    payloads = _queue_requests.batch_enqueue("emails", [{"n": 1}], request_id="r")
    assert payloads.idempotent is True
    with pytest.raises(TypeError):
        _queue_requests.batch_enqueue("emails")
    with pytest.raises(TypeError):
        _queue_requests.batch_enqueue("emails", [{}], specs=[{"payload": {}}])
    with pytest.raises(TypeError):
        _queue_requests.batch_enqueue("emails", {"n": 1})


def test_lease_jobs_deadline_includes_the_wait() -> None:
    rpc = _queue_requests.lease_jobs("emails", 5, wait=timedelta(seconds=20))

    with strata.Client("127.0.0.1:1", timeout=3.0) as client:
        prepared = client._transport.prepare(rpc)
    request, timeout = prepared.request, prepared.timeout

    assert isinstance(request, queue_pb2.LeaseJobsRequest)
    assert (request.max_jobs, request.lease_duration.ToTimedelta()) == (5, timedelta(seconds=30))
    assert timeout == pytest.approx(23.0)
    assert rpc.idempotent is False


def test_ack_fail_extend_take_token_and_namespace_from_the_job() -> None:
    job = _leased()

    ack = _queue_requests.ack_job(job, result={"ok": 1})
    fail = _queue_requests.fail_job(job, KeyError("x"), retry_delay=timedelta(0))
    extend = _queue_requests.extend_lease(job, timedelta(minutes=1), namespace="other")
    ack_request = ack.request("default")
    fail_request = fail.request("default")
    extend_request = extend.request("default")

    assert isinstance(ack_request, queue_pb2.AckJobRequest)
    assert (ack_request.namespace, ack_request.id, ack_request.lease_token) == (
        "acme",
        "j-1",
        "tok",
    )
    assert dict_from_struct(ack_request.result) == {"ok": 1}
    assert isinstance(fail_request, queue_pb2.FailJobRequest)
    assert fail_request.error == "KeyError: 'x'\n"
    assert fail_request.HasField("retry_delay")
    assert isinstance(extend_request, queue_pb2.ExtendLeaseRequest)
    assert (extend_request.namespace, extend_request.lease_token) == ("other", "tok")
    assert {ack.idempotent, fail.idempotent, extend.idempotent} == {False}
    unleased = extend.parse(_job_message(lease_token=""))
    assert unleased.lease_token == "tok"  # the holder keeps its token
    by_id = _queue_requests.ack_job("j-2", "tok-2").request("default")
    assert isinstance(by_id, queue_pb2.AckJobRequest)
    assert (by_id.namespace, by_id.lease_token, by_id.HasField("result")) == (
        "default",
        "tok-2",
        False,
    )
    with pytest.raises(ValueError, match="no lease token"):
        _queue_requests.ack_job("j-2")
    with pytest.raises(TypeError):
        _queue_requests.get_job(7)  # type: ignore[arg-type]


def test_which_queue_calls_are_retried_after_unavailable() -> None:
    job = _leased()
    retried = {
        "get_job": _queue_requests.get_job(job),
        "list_jobs": _queue_requests.list_jobs("q")(""),
        "queue_stats": _queue_requests.queue_stats("q"),
        "pause_queue": _queue_requests.pause_queue("q"),
        "resume_queue": _queue_requests.resume_queue("q"),
        "enqueue with request_id": _queue_requests.enqueue("q", {}, request_id="r"),
    }
    not_retried = {
        "enqueue": _queue_requests.enqueue("q", {}),
        "batch_enqueue": _queue_requests.batch_enqueue("q", [{}]),
        "lease_jobs": _queue_requests.lease_jobs("q"),
        "ack_job": _queue_requests.ack_job(job),
        "fail_job": _queue_requests.fail_job(job, "x"),
        "extend_lease": _queue_requests.extend_lease(job, timedelta(seconds=5)),
        "cancel_job": _queue_requests.cancel_job(job),
        "retry_job": _queue_requests.retry_job(job),
    }

    assert {name for name, rpc in retried.items() if not rpc.idempotent} == set()
    assert {name for name, rpc in not_retried.items() if rpc.idempotent} == set()


def test_list_jobs_pages_and_state() -> None:
    pages = _queue_requests.list_jobs("emails", "dead", page_size=7)

    first, second = pages("").request("acme"), pages("t2").request("acme")

    assert isinstance(first, queue_pb2.ListJobsRequest)
    assert isinstance(second, queue_pb2.ListJobsRequest)
    assert (first.state, first.page_size, first.page_token) == (queue_pb2.JOB_STATE_DEAD, 7, "")
    assert second.page_token == "t2"
    page = pages("").parse(queue_pb2.ListJobsResponse(jobs=[_job_message()], next_page_token="n"))
    assert ([job.id for job in page.items], page.next_page_token) == (["j-1"], "n")
    with pytest.raises(ValueError, match="state must be one of"):
        _queue_requests.list_jobs("emails", "running")  # type: ignore[arg-type]


def test_client_queue_methods_have_their_builders_signatures() -> None:
    with strata.Client("127.0.0.1:1") as client:
        for name in ("enqueue", "lease_jobs", "ack_job", "list_jobs", "queue_stats"):
            method = getattr(client, name)
            assert method.__doc__ == getattr(_queue_requests, name).__doc__
            assert "namespace" in inspect.signature(method).parameters
        handle = client.queue("emails", namespace="acme")
        assert isinstance(handle, strata.QueueHandle)
        assert repr(handle) == "QueueHandle('emails', namespace='acme')"


def test_error_text() -> None:
    assert _job_args.error_text("plain") == "plain"
    assert _job_args.error_text(ValueError("bad")) == "ValueError: bad\n"
    assert _job_args.error_text(strata.NotFound("gone")).startswith("strata.errors.NotFound")
    with pytest.raises(TypeError):
        _job_args.error_text(3)  # type: ignore[arg-type]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _run(steps: _leases.Steps, outcomes: list[Any]) -> list[Any]:
    """Drive `steps`, answering its calls with `outcomes` in turn (an exception is
    thrown in); returns the calls made."""
    calls = []
    rpc = _leases.advance(steps)
    answers = iter(outcomes)
    while rpc is not None:
        calls.append(rpc)
        answer = next(answers)
        if isinstance(answer, strata.StrataError):
            rpc = _leases.advance(steps, error=answer)
        else:
            rpc = _leases.advance(steps, answer)
    return calls


def test_lease_book_extends_every_third_of_the_lease() -> None:
    clock = FakeClock()
    book = _leases.LeaseBook(timedelta(seconds=30), clock)
    first, second = _leased("a"), _leased("b")
    assert book.wait_time() is None

    book.hold([first])
    clock.now += 4
    book.hold([second])
    assert book.wait_time() == pytest.approx(6)
    assert _run(book.beat(), []) == []

    clock.now += 6
    [extend] = _run(book.beat(), [first])
    request = extend.request("default")
    assert (request.id, request.lease_token) == ("a", "tok")
    assert request.lease_duration.ToTimedelta() == timedelta(seconds=30)
    assert book.wait_time() == pytest.approx(4)  # b's turn next
    assert book.release(first) is True
    assert book.held() == [second]


def test_lease_book_forgets_lost_leases_and_retries_transient_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    book = _leases.LeaseBook(timedelta(seconds=3), clock)
    lost, flaky, acked = _leased("lost"), _leased("flaky"), _leased("acked")
    book.hold([lost, flaky, acked])
    clock.now += 1
    steps = book.beat()
    first = _leases.advance(steps)
    assert book.release(acked) is True  # acked while its extension was in flight

    with caplog.at_level(logging.WARNING, logger="strata.worker"):
        second = _leases.advance(steps, error=strata.LeaseLost("stale"))
        third = _leases.advance(steps, error=strata.Unavailable("down"))
        assert _leases.advance(steps, error=strata.LeaseLost("acked")) is None

    assert [rpc.request("d").id for rpc in (first, second, third) if rpc] == [
        "lost",
        "flaky",
        "acked",
    ]
    messages = [record.getMessage() for record in caplog.records]
    assert sum("lease lost" in message for message in messages) == 1  # not for "acked"
    assert book.held() == [flaky]
    assert book.wait_time() == pytest.approx(1)  # retried after at most 1 s
    assert book.release(lost) is False


def test_settle_acks_with_the_result() -> None:
    book = _leases.LeaseBook(timedelta(seconds=30))
    job = _leased()
    book.hold([job])

    [ack] = _run(_worker.settle(book, job, {"sent": True}), [job])

    assert ack.method == "AckJob"
    assert dict_from_struct(ack.request("d").result) == {"sent": True}
    assert book.held() == []


def test_settle_fails_with_the_exception_text() -> None:
    book = _leases.LeaseBook(timedelta(seconds=30))
    job = _leased()
    book.hold([job])

    [fail] = _run(_worker.settle(book, job, error=OSError("smtp down")), [job])

    assert (fail.method, fail.request("d").error) == ("FailJob", "OSError: smtp down\n")


def test_settle_fails_a_job_whose_result_is_refused() -> None:
    book = _leases.LeaseBook(timedelta(seconds=30))
    job, other = _leased("a"), _leased("b")
    book.hold([job, other])

    ack, fail = _run(_worker.settle(book, job, {}), [strata.ResourceExhausted("too big"), job])
    [fail_not_json] = _run(_worker.settle(book, other, {"when": datetime.now(UTC)}), [other])

    assert (ack.method, fail.method, fail_not_json.method) == ("AckJob", "FailJob", "FailJob")
    assert "result was refused" in fail.request("d").error
    assert "not a JSON object" in fail_not_json.request("d").error


def test_settle_skips_a_lost_lease(caplog: pytest.LogCaptureFixture) -> None:
    book = _leases.LeaseBook(timedelta(seconds=30))
    job, unheld = _leased("a"), _leased("b")
    book.hold([job])

    with caplog.at_level(logging.WARNING, logger="strata.worker"):
        [ack] = _run(_worker.settle(book, job, None), [strata.LeaseLost("stale")])
        nothing = _run(_worker.settle(book, unheld, None), [])

    assert ack.method == "AckJob" and nothing == []
    assert "lease lost" in caplog.records[-1].getMessage()


def test_abandon_fails_the_current_job_and_gives_back_the_rest() -> None:
    book = _leases.LeaseBook(timedelta(seconds=30))
    jobs = [_leased("a"), _leased("b"), _leased("c")]
    book.hold(jobs)

    calls = _run(_worker.abandon(book, jobs[1:], GeneratorExit()), [jobs[1], jobs[2]])

    requests = [rpc.request("d") for rpc in calls]
    assert [(r.id, r.error, r.release) for r in requests] == [
        ("b", _worker.ABANDONED, False),
        ("c", "", True),
    ]
    assert not requests[0].HasField("retry_delay")
    assert book.held() == [jobs[0]]


def test_leasing_pauses_after_transient_failures_and_empty_polls() -> None:
    policy = strata.RetryPolicy(initial_backoff=0.5, max_backoff=2.0, jitter=0.0)
    leasing = _worker.Leasing(
        lambda n: _queue_requests.lease_jobs("q", n), timedelta(seconds=30), SHORT_WAIT, policy
    )

    pauses = [leasing.failed(strata.Unavailable("down")) for _ in range(4)]
    assert pauses == [0.5, 1.0, 2.0, 2.0]
    assert leasing.leased([_leased()]) == 0.0
    assert leasing.failed(strata.DeadlineExceeded("slow")) == 0.5  # the backoff restarted
    with pytest.raises(strata.InvalidArgument):
        leasing.failed(strata.InvalidArgument("bad queue"))
    short = _worker.Leasing(
        lambda n: _queue_requests.lease_jobs("q", n), timedelta(seconds=30), timedelta(0), policy
    )
    assert short.leased([]) == 1.0  # a zero wait does not spin
    assert leasing.leased([]) == 0.0  # the long poll waited already


def test_stop_on_signals_calls_stop_once_and_restores_the_handlers() -> None:
    before = signal.getsignal(signal.SIGTERM)
    stopped = threading.Event()

    with _worker.stop_on_signals(stopped.set):
        assert signal.getsignal(signal.SIGTERM) is not before
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in itertools.repeat(None, 100):
            if stopped.is_set():
                break
            time.sleep(0.01)
        assert stopped.is_set()
        assert signal.getsignal(signal.SIGTERM) is before  # a second signal acts as before

    assert signal.getsignal(signal.SIGTERM) is before


def test_stop_on_signals_does_nothing_off_the_main_thread() -> None:
    seen = []

    def elsewhere() -> None:
        with _worker.stop_on_signals(lambda: None):
            seen.append(signal.getsignal(signal.SIGINT))

    before = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert seen == [before]


def test_worker_arguments_are_checked() -> None:
    with pytest.raises(ValueError):
        _worker.check_concurrency(0)
    with pytest.raises(ValueError):
        _leases.LeaseBook(timedelta(0))
    with strata.Client("127.0.0.1:1") as client, pytest.raises(ValueError):
        client.queue("q").work(lambda job: None, concurrency=0)
