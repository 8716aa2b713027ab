"""The workers' shared machines end, and the heartbeat with them, whatever the
handler did and whatever wakeup is lost: every wait they yield has a bound.

An earlier shared heartbeat ended only when its task was cancelled, and slept
without a bound when it held no lease; a cancellation that Python 3.11's
`asyncio.wait_for` swallowed then left the asyncio worker waiting for it
forever (CI hung in test_async_worker). The tests that would hang without a
bound carry a timeout marker, so that they fail instead.
"""

from __future__ import annotations

import asyncio
import select
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from datetime import timedelta
from typing import Any

import pytest

import strata
from strata import _leases, _queue_requests, _worker, aio_worker, worker
from strata._machines import Machine, Sleep, Stoppable, arun, run
from strata._transport import Cancelled
from tests.client.test_queue_client import SHORT_WAIT, FakeClock, _leased
from tests.support.server import StrataProcess

WOULD_HANG = pytest.mark.timeout(15, func_only=True)
"""On a test that waits without a bound of its own for what must end soon."""


class Halt(BaseException):
    """Raised by a handler: not an Exception, so the worker does not settle it."""


def _heartbeat_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "strata-heartbeat"]


def _heartbeat_tasks() -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() if task.get_name() == "strata-heartbeat"]


@pytest.fixture
def silent() -> Iterator[socket.socket]:
    """A listening socket on 127.0.0.1 that never answers: a call sent there
    hangs until its deadline. Readable once a client connected."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener


def _target(listener: socket.socket) -> str:
    host, port = listener.getsockname()
    return f"{host}:{port}"


def _connected(listener: socket.socket) -> bool:
    readable, _, _ = select.select([listener], [], [], 10)
    return bool(readable)


# --- the machines -------------------------------------------------------------


def test_heartbeat_sleeps_a_bounded_time_and_ends_when_closed() -> None:
    clock = FakeClock()
    wake, closed = threading.Event(), threading.Event()
    heartbeat = _leases.Heartbeat(_leases.LeaseBook(timedelta(seconds=30), clock), wake, closed)
    beats = heartbeat.beats()
    assert next(beats) == Sleep(_leases.IDLE_BEAT_SECONDS, wake)  # nothing held: still bounded

    heartbeat.hold([_leased("a")])
    assert wake.is_set()
    assert beats.send(None) == Sleep(_leases.IDLE_BEAT_SECONDS, wake)  # due in 10 s
    assert not wake.is_set()

    clock.now += 10
    extend = beats.send(None)
    assert isinstance(extend, Stoppable) and extend.stop is closed  # closing cancels it
    assert extend.rpc.method == "ExtendLease"
    assert beats.send(_leased("a")) == Sleep(_leases.IDLE_BEAT_SECONDS, wake)
    clock.now += 9.5
    assert beats.send(None) == Sleep(0.5, wake)

    heartbeat.close()
    assert wake.is_set() and heartbeat.closed
    with pytest.raises(StopIteration):
        beats.send(None)


def test_heartbeat_closed_during_an_extension_makes_no_other() -> None:
    clock = FakeClock()
    heartbeat = _leases.Heartbeat(
        _leases.LeaseBook(timedelta(seconds=3), clock), asyncio.Event(), asyncio.Event()
    )
    beats = heartbeat.beats()
    next(beats)
    heartbeat.hold([_leased("a"), _leased("b")])
    clock.now += 1
    first = beats.send(None)
    assert isinstance(first, Stoppable) and first.rpc.request("d").id == "a"
    with pytest.raises(StopIteration):
        beats.throw(Cancelled())  # closed while it was in flight: "b" is not extended
    with pytest.raises(TypeError):
        _leases.Heartbeat(heartbeat.book, threading.Event(), asyncio.Event())


def _serving(concurrency: int) -> tuple[Any, threading.Event, dict[str, futures.Future[None]]]:
    leasing = _worker.Leasing(
        lambda n: _queue_requests.lease_jobs("q", n),
        timedelta(seconds=30),
        SHORT_WAIT,
        strata.RetryPolicy(),
    )
    stop = threading.Event()
    handlers: dict[str, futures.Future[None]] = {}

    def spawn(job: strata.Job) -> futures.Future[None]:
        handlers[job.id] = futures.Future()
        return handlers[job.id]

    crew = _worker.Crew(spawn, threading.Event())
    held: list[strata.Job] = []
    return _worker.serve(leasing, concurrency, stop, held.extend, crew), stop, handlers


def _leases_asked(effect: Any, stop: threading.Event) -> int:
    assert isinstance(effect, Stoppable) and effect.stop is stop
    return int(effect.rpc.request("d").max_jobs)


def test_serve_leases_for_idle_handlers_and_waits_a_bounded_time_while_all_are_busy() -> None:
    loop, stop, handlers = _serving(3)
    assert _leases_asked(next(loop), stop) == 3
    assert loop.send([_leased("a"), _leased("b")]) == Sleep(0.0, stop)
    assert _leases_asked(loop.send(None), stop) == 1  # two of three handlers are busy
    loop.send([_leased("c")])
    busy = loop.send(None)  # all busy: no lease call, a wait with a bound
    assert isinstance(busy, Sleep) and busy.seconds == _worker.HANDLER_WAIT_SECONDS
    assert busy.stop is not None and not busy.stop.is_set()
    assert set(handlers) == {"a", "b", "c"}

    handlers["b"].set_result(None)
    assert busy.stop.is_set()  # a finished handler wakes the loop
    assert _leases_asked(loop.send(None), stop) == 1
    stop.set()
    loop.send([])
    drain = loop.send(None)  # stopped: the jobs in hand are finished first
    assert drain == Sleep(_worker.HANDLER_WAIT_SECONDS, busy.stop)
    handlers["a"].set_exception(Halt())  # a handler's error while draining is not raised
    assert loop.send(None) == drain
    handlers["c"].set_result(None)
    with pytest.raises(StopIteration):
        loop.send(None)


def test_serve_drains_before_raising() -> None:
    loop, stop, handlers = _serving(2)
    next(loop)
    loop.send([_leased("a")])
    lease_call = loop.send(None)
    assert _leases_asked(lease_call, stop) == 1
    drain = loop.throw(strata.InvalidArgument("no such queue"))  # not transient
    assert drain == Sleep(_worker.HANDLER_WAIT_SECONDS, drain.stop)
    handlers["a"].set_result(None)
    with pytest.raises(strata.InvalidArgument):
        loop.send(None)

    loop, stop, handlers = _serving(1)
    next(loop)
    loop.send([_leased("a")])
    busy = loop.send(None)
    assert isinstance(busy, Sleep) and busy.seconds == _worker.HANDLER_WAIT_SECONDS
    handlers["a"].set_exception(Halt())  # a handler's BaseException ends the loop
    with pytest.raises(Halt):
        loop.send(None)


def test_an_asyncio_sleep_keeps_a_cancellation_that_comes_as_its_event_is_set() -> None:
    async def scenario() -> None:
        async with strata.AsyncClient("127.0.0.1:1") as client:
            wake = asyncio.Event()

            def sleeper() -> Machine[str]:
                yield Sleep(10, wake)
                return "slept"  # what a swallowed cancellation lets through

            task = asyncio.create_task(arun(client.queue("q").transport, sleeper()))
            await asyncio.sleep(0.01)
            wake.set()
            task.cancel()  # asyncio.wait_for (3.11) returns instead of raising here
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(scenario())


# --- the drivers: a lost wakeup or a hung call does not keep them waiting ----


@WOULD_HANG
def test_blocking_heartbeat_ends_though_the_wakeup_of_its_close_is_lost() -> None:
    wake, closed = threading.Event(), threading.Event()
    heartbeat = _leases.Heartbeat(_leases.LeaseBook(timedelta(seconds=30)), wake, closed)
    with strata.Client("127.0.0.1:1") as client:
        thread = threading.Thread(target=run, args=(client.queue("q").transport, heartbeat.beats()))
        thread.start()
        time.sleep(0.1)
        closed.set()  # as close() does, without setting wake
        thread.join()  # an unbounded sleep would wait here forever


@WOULD_HANG
def test_asyncio_heartbeat_ends_though_the_wakeup_of_its_close_is_lost() -> None:
    async def scenario() -> None:
        async with strata.AsyncClient("127.0.0.1:1") as client:
            wake, closed = asyncio.Event(), asyncio.Event()
            heartbeat = _leases.Heartbeat(_leases.LeaseBook(timedelta(seconds=30)), wake, closed)
            task = asyncio.create_task(arun(client.queue("q").transport, heartbeat.beats()))
            await asyncio.sleep(0.1)
            closed.set()
            await task

    asyncio.run(scenario())


@WOULD_HANG
def test_blocking_heartbeat_cancels_the_extension_in_flight_when_closed(
    silent: socket.socket,
) -> None:
    book = _leases.LeaseBook(timedelta(seconds=0.3))  # an extension due within 0.1 s
    heartbeat = _leases.Heartbeat(book, threading.Event(), threading.Event())
    with strata.Client(_target(silent), timeout=600) as client:
        thread = threading.Thread(target=run, args=(client.queue("q").transport, heartbeat.beats()))
        thread.start()
        heartbeat.hold([_leased("a")])
        assert _connected(silent)  # the extension is on its way, and never answered
        heartbeat.close()
        thread.join()  # without the cancel, as long as the call's 600 s deadline

        with worker._Heartbeat(client.queue("q").transport, book) as driven:
            driven.hold([_leased("b")])
            time.sleep(0.3)
        assert _heartbeat_threads() == []


@WOULD_HANG
def test_asyncio_heartbeat_cancels_the_extension_in_flight_when_closed(
    silent: socket.socket,
) -> None:
    async def scenario() -> None:
        async with strata.AsyncClient(_target(silent), timeout=600) as client:
            book = _leases.LeaseBook(timedelta(seconds=0.3))
            heartbeat = _leases.Heartbeat(book, asyncio.Event(), asyncio.Event())
            task = asyncio.create_task(arun(client.queue("q").transport, heartbeat.beats()))
            heartbeat.hold([_leased("a")])
            assert await asyncio.to_thread(_connected, silent)
            heartbeat.close()
            await task

            async with aio_worker._Heartbeat(client.queue("q").transport, book) as driven:
                driven.hold([_leased("b")])
                await asyncio.sleep(0.3)
            assert _heartbeat_tasks() == []

    asyncio.run(scenario())


# --- end to end: a handler's BaseException stops the heartbeat too ------------


@pytest.fixture
def queue() -> str:
    return f"q_{uuid.uuid4().hex[:12]}"


def _leased_again(client: strata.Client, queue: str) -> list[strata.Job]:
    """What another worker leases once the first lease (1 s) has expired."""
    time.sleep(2)
    return client.lease_jobs(queue)


@WOULD_HANG
def test_a_handler_that_raises_a_base_exception_ends_the_worker_and_its_heartbeat(
    server: StrataProcess, queue: str
) -> None:
    def handler(job: strata.Job) -> None:
        raise Halt

    with strata.Client(server.target) as client:
        job = client.enqueue(queue, {})
        with pytest.raises(Halt):
            client.queue(queue).work(handler, lease_duration=timedelta(seconds=1), wait=SHORT_WAIT)
        assert _heartbeat_threads() == []
        [again] = _leased_again(client, queue)  # unsettled, and no longer extended
        assert (again.id, again.attempt) == (job.id, 2)


@WOULD_HANG
def test_an_asyncio_handler_that_raises_a_base_exception_ends_the_worker_and_its_heartbeat(
    server: StrataProcess, queue: str
) -> None:
    async def handler(job: strata.Job) -> None:
        raise Halt

    async def scenario() -> None:
        async with strata.AsyncClient(server.target) as client:
            job = await client.enqueue(queue, {})
            with pytest.raises(Halt):
                await client.queue(queue).work(
                    handler, lease_duration=timedelta(seconds=1), wait=SHORT_WAIT
                )
            assert _heartbeat_tasks() == []
            await asyncio.sleep(2)
            [again] = await client.lease_jobs(queue)
            assert (again.id, again.attempt) == (job.id, 2)

    asyncio.run(scenario())


@WOULD_HANG
def test_a_cancelled_asyncio_worker_finishes_its_blocked_handler_then_ends_its_heartbeat(
    server: StrataProcess, queue: str
) -> None:
    async def scenario() -> None:
        async with strata.AsyncClient(server.target) as client:
            job = await client.enqueue(queue, {})
            started, release = asyncio.Event(), asyncio.Event()

            async def handler(leased: strata.Job) -> dict[str, Any]:
                started.set()
                await release.wait()
                return {"done": True}

            handle = client.queue(queue)
            working = asyncio.create_task(
                handle.work(handler, lease_duration=timedelta(seconds=2), wait=SHORT_WAIT)
            )
            await started.wait()
            working.cancel()
            await asyncio.sleep(2.5)  # past the lease: the heartbeat still keeps it
            assert not working.done() and await client.lease_jobs(queue) == []
            release.set()
            with pytest.raises(asyncio.CancelledError):
                await working
            assert _heartbeat_tasks() == []
            done = await client.get_job(job)
            assert (done.state, done.attempt, done.result) == ("completed", 1, {"done": True})

    asyncio.run(scenario())
