"""SubscribeJobs over a real channel, on both storage shapes: jobs pushed as they
become runnable, never more than max_in_flight unacked, release on a clean close,
lease expiry after a broken one."""

from __future__ import annotations

import queue as stdlib_queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

import strata
from strata.v1 import admin_pb2, queue_pb2
from tests.contract.helpers import (
    ack,
    enqueue,
    expect_error,
    fail,
    seconds,
)

QUIET = 0.6
"""How long a stream must stay silent to count as "pushed nothing more"."""


class Stream:
    """A SubscribeJobs call read by a background thread, so a test can wait for
    the next job with a timeout (or check that none comes)."""

    def __init__(self, qs: Any, queue: str, max_in_flight: int, lease: float = 30) -> None:
        self.call = qs.SubscribeJobs(
            queue_pb2.SubscribeJobsRequest(
                queue=queue, max_in_flight=max_in_flight, lease_duration=seconds(lease)
            )
        )
        self._items: stdlib_queue.Queue[Any] = stdlib_queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for job in self.call:
                self._items.put(job)
        except grpc.RpcError as error:
            self._items.put(error)

    def next(self, timeout: float = 5) -> queue_pb2.Job:
        item = self._items.get(timeout=timeout)
        if isinstance(item, grpc.RpcError):
            raise item
        return item

    def take(self, n: int, timeout: float = 5) -> list[queue_pb2.Job]:
        return [self.next(timeout) for _ in range(n)]

    def silent(self, within: float = QUIET) -> bool:
        try:
            item = self._items.get(timeout=within)
        except stdlib_queue.Empty:
            return True
        self._items.put(item)
        return False

    def close(self) -> None:
        self.call.cancel()
        self._thread.join(5)


@pytest.fixture
def streams() -> Iterator[list[Stream]]:
    opened: list[Stream] = []
    yield opened
    for stream in opened:
        stream.close()


@pytest.fixture
def subscribe(qs, streams):
    def open_stream(queue: str, max_in_flight: int, lease: float = 30) -> Stream:
        stream = Stream(qs, queue, max_in_flight, lease)
        streams.append(stream)
        return stream

    return open_stream


def get_job(qs, job_id: str) -> queue_pb2.Job:
    return qs.GetJob(queue_pb2.GetJobRequest(id=job_id))


def release(qs, job: queue_pb2.Job, **fields: Any) -> queue_pb2.Job:
    return qs.FailJob(
        queue_pb2.FailJobRequest(id=job.id, lease_token=job.lease_token, release=True, **fields)
    )


def test_pushes_at_most_max_in_flight_then_one_more_per_ack(qs, qname, subscribe):
    enqueued = [enqueue(qs, qname, {"n": i}).id for i in range(5)]
    stream = subscribe(qname, max_in_flight=2)
    first = stream.take(2)
    assert [job.id for job in first] == enqueued[:2]
    assert all(job.state == queue_pb2.JOB_STATE_LEASED and job.lease_token for job in first)
    assert all(job.attempt == 1 for job in first)
    assert stream.silent(), "a third job came before any ack"
    ack(qs, first[0])
    assert stream.next().id == enqueued[2]
    assert stream.silent()
    fail(qs, first[1], retry_delay=60)  # a fail settles it too
    assert stream.next().id == enqueued[3]


def test_pushes_a_job_enqueued_while_it_waits(qs, qname, subscribe):
    stream = subscribe(qname, max_in_flight=4)
    assert stream.silent(0.3)
    started = time.monotonic()
    job = enqueue(qs, qname, {"late": True})
    pushed = stream.next()
    assert pushed.id == job.id
    # a wakeup, not the 1 s fallback re-check, delivered it
    assert time.monotonic() - started < 0.6


def test_a_job_enqueued_to_a_waiting_stream_is_leased_by_the_enqueue(stubs, qs, qname, subscribe):
    stream = subscribe(qname, max_in_flight=4)
    assert stream.silent(0.3)
    # The stream is parked between its re-checks (one a second, a few ms each): an
    # enqueue that lands in one is not handed off, so try three times.
    jobs = [enqueue(qs, qname, {"n": i}) for i in range(3)]
    pushed = stream.take(3)
    assert [job.id for job in pushed] == [job.id for job in jobs]
    assert all(job.lease_token and job.attempt == 1 for job in pushed)
    handed = [job for job in jobs if job.state == queue_pb2.JOB_STATE_LEASED]
    assert handed, "no enqueue leased its job to the waiting stream"
    # The Enqueue reply says so, without the stream's lease token.
    assert all(job.attempt == 1 and not job.lease_token for job in handed)
    entries = stubs.admin.ListAuditEntries(
        admin_pb2.ListAuditEntriesRequest(entity="job", entity_id=handed[0].id)
    ).entries
    assert [(e.action, e.version) for e in reversed(entries)] == [("enqueue", 0), ("lease", 1)]
    assert ack(qs, pushed[0]).state == queue_pb2.JOB_STATE_COMPLETED


def test_a_waiting_stream_gets_a_job_that_came_due_before_one_enqueued_after_it(
    qs, qname, subscribe
):
    stream = subscribe(qname, max_in_flight=1)
    assert stream.silent(0.3)
    scheduled = enqueue(qs, qname, {"n": 1}, delay=seconds(0.3))
    time.sleep(0.5)  # due now, and the stream's next re-check is about 0.5 s away
    later = enqueue(qs, qname, {"n": 2})
    assert later.state == queue_pb2.JOB_STATE_AVAILABLE, "a job jumped the line"
    first = stream.next()
    assert first.id == scheduled.id
    ack(qs, first)
    assert stream.next().id == later.id


def test_an_enqueue_hands_nothing_to_a_waiting_stream_while_the_queue_is_paused(
    qs, qname, subscribe
):
    stream = subscribe(qname, max_in_flight=1)
    assert stream.silent(0.3)
    qs.PauseQueue(queue_pb2.PauseQueueRequest(queue=qname))
    job = enqueue(qs, qname, {})
    assert job.state == queue_pb2.JOB_STATE_AVAILABLE
    assert stream.silent()
    qs.ResumeQueue(queue_pb2.ResumeQueueRequest(queue=qname))
    assert stream.next().id == job.id


def test_the_stream_lease_tokens_ack_like_any_other(qs, qname, subscribe):
    job = enqueue(qs, qname, {})
    pushed = subscribe(qname, max_in_flight=1).next()
    done = ack(qs, pushed, {"ok": 1})
    assert done.state == queue_pb2.JOB_STATE_COMPLETED
    expect_error(
        lambda: ack(qs, pushed),
        grpc.StatusCode.FAILED_PRECONDITION,
        reason="LEASE_LOST",
    )
    assert get_job(qs, job.id).state == queue_pb2.JOB_STATE_COMPLETED


def test_release_makes_the_job_runnable_at_once_without_counting_the_attempt(qs, qname, subscribe):
    job = enqueue(qs, qname, {})
    stream = subscribe(qname, max_in_flight=1)
    pushed = stream.next()
    released = release(qs, pushed)
    assert released.state == queue_pb2.JOB_STATE_AVAILABLE
    assert released.attempt == 0 and not released.lease_token
    again = stream.next()  # the released job, leased to the stream once more
    assert (again.id, again.attempt) == (job.id, 1)
    assert again.lease_token != pushed.lease_token


def test_release_with_an_error_or_retry_delay_is_invalid(qs, qname, subscribe):
    enqueue(qs, qname, {})
    pushed = subscribe(qname, max_in_flight=1).next()
    expect_error(
        lambda: release(qs, pushed, error="x"), grpc.StatusCode.INVALID_ARGUMENT, field="error"
    )
    expect_error(
        lambda: release(qs, pushed, retry_delay=seconds(1)),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="retry_delay",
    )
    assert get_job(qs, pushed.id).state == queue_pb2.JOB_STATE_LEASED


def test_release_under_a_stale_token_is_lease_lost(qs, qname, subscribe):
    enqueue(qs, qname, {})
    pushed = subscribe(qname, max_in_flight=1).next()
    ack(qs, pushed)
    expect_error(lambda: release(qs, pushed), grpc.StatusCode.FAILED_PRECONDITION, "LEASE_LOST")


def test_a_broken_stream_leaves_its_jobs_leased_until_they_expire(qs, qname, subscribe):
    job = enqueue(qs, qname, {})
    stream = subscribe(qname, max_in_flight=1, lease=1)
    assert stream.next().id == job.id
    stream.close()  # no release: as a consumer that died
    assert get_job(qs, job.id).state == queue_pb2.JOB_STATE_LEASED
    time.sleep(1.2)
    again = subscribe(qname, max_in_flight=1).next()
    assert (again.id, again.attempt) == (job.id, 2)


def test_an_expired_lease_frees_its_slot(qs, qname, subscribe):
    first = enqueue(qs, qname, {"n": 1})
    stream = subscribe(qname, max_in_flight=1, lease=1)
    assert stream.next().id == first.id
    enqueue(qs, qname, {"n": 2})
    # The held job's lease runs out after 1 s: the stream's re-check notices and
    # leases again, the expired job first (it has been runnable longest).
    again = stream.next(timeout=4)
    assert (again.id, again.attempt) == (first.id, 2)


def test_a_cancelled_job_frees_its_slot(qs, qname, subscribe):
    first = enqueue(qs, qname, {"n": 1})
    stream = subscribe(qname, max_in_flight=1)
    assert stream.next().id == first.id
    second = enqueue(qs, qname, {"n": 2})
    assert stream.silent(0.3)
    qs.CancelJob(queue_pb2.CancelJobRequest(id=first.id))
    assert stream.next(timeout=3).id == second.id


def test_a_paused_queue_pushes_nothing_until_resumed(qs, qname, subscribe):
    qs.PauseQueue(queue_pb2.PauseQueueRequest(queue=qname))
    job = enqueue(qs, qname, {})
    stream = subscribe(qname, max_in_flight=1)
    assert stream.silent()
    qs.ResumeQueue(queue_pb2.ResumeQueueRequest(queue=qname))
    assert stream.next().id == job.id


def test_two_streams_never_get_the_same_job(qs, qname, subscribe):
    ids = {enqueue(qs, qname, {"n": i}).id for i in range(20)}
    a, b = subscribe(qname, max_in_flight=20), subscribe(qname, max_in_flight=20)
    got: list[str] = []
    for stream in (a, b):
        while True:
            try:
                got.append(stream.next(timeout=QUIET).id)
            except stdlib_queue.Empty:
                break
    assert sorted(got) == sorted(ids)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"queue": "1bad", "max_in_flight": 1}, "queue"),
        ({"queue": "ok", "max_in_flight": 0}, "max_in_flight"),
        ({"queue": "ok", "max_in_flight": 1001}, "max_in_flight"),
        ({"queue": "ok", "max_in_flight": 1, "lease_duration": seconds(0)}, "lease_duration"),
        ({"queue": "ok", "max_in_flight": 1, "lease_duration": seconds(-1)}, "lease_duration"),
    ],
)
def test_bad_input_is_invalid_argument(qs, fields, field):
    call = qs.SubscribeJobs(queue_pb2.SubscribeJobsRequest(**fields))
    expect_error(lambda: next(call), grpc.StatusCode.INVALID_ARGUMENT, field=field)


# --- the Python client ---------------------------------------------------------------


def test_client_subscription_releases_unsettled_jobs_on_close(server, qs, qname):
    first = enqueue(qs, qname, {"n": 1})
    second = enqueue(qs, qname, {"n": 2})
    with (
        strata.Client(server.target) as client,
        client.queue(qname).subscribe(max_in_flight=2) as jobs,
    ):
        got = [next(jobs), next(jobs)]
        assert [job.id for job in got] == [first.id, second.id]
        jobs.ack(got[0], {"done": True})
    assert get_job(qs, first.id).state == queue_pb2.JOB_STATE_COMPLETED
    left = get_job(qs, second.id)
    assert (left.state, left.attempt) == (queue_pb2.JOB_STATE_AVAILABLE, 0)


async def test_async_client_subscription_releases_unsettled_jobs_on_close(server, qs, qname):
    first = enqueue(qs, qname, {"n": 1})
    second = enqueue(qs, qname, {"n": 2})
    async with strata.AsyncClient(server.target) as client:
        async with client.queue(qname).subscribe(max_in_flight=2) as jobs:
            got = [await anext(jobs), await anext(jobs)]
            assert [job.id for job in got] == [first.id, second.id]
            await jobs.fail(got[0], "boom", retry_delay=None)
        failed = get_job(qs, first.id)
        assert (failed.attempt, failed.last_error) == (1, "boom")
        left = get_job(qs, second.id)
        assert (left.state, left.attempt) == (queue_pb2.JOB_STATE_AVAILABLE, 0)


def test_client_subscription_raises_bad_input_as_invalid_argument(server, qname):
    with (
        strata.Client(server.target) as client,
        client.queue("1bad").subscribe() as jobs,
        pytest.raises(strata.InvalidArgument, match="queue"),
    ):
        next(jobs)


def test_streams_and_long_polls_cancelled_at_any_moment_leave_the_server_serving(
    qs, qname, subscribe
):
    for i in range(30):
        enqueue(qs, qname, {"n": i})
        stream = Stream(qs, qname, max_in_flight=5)
        poll = qs.LeaseJobs.future(
            queue_pb2.LeaseJobsRequest(queue=qname, max_jobs=3, wait=seconds(5))
        )
        time.sleep(0.002 * (i % 7))
        stream.close()
        poll.cancel()
    # Every job is leased, or leasable again once its lease ends; new work flows.
    job = enqueue(qs, qname, {"last": True})
    got = subscribe(qname, max_in_flight=1000).take(1)
    assert got and got[0].state == queue_pb2.JOB_STATE_LEASED
    assert get_job(qs, job.id).state in (
        queue_pb2.JOB_STATE_LEASED,
        queue_pb2.JOB_STATE_AVAILABLE,
    )
