"""QueueService over a real channel, on both storage shapes.

Each test works in a queue of its own (the `qname` fixture), so tests share the
session's servers without seeing each other's jobs.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from strata.v1 import queue_pb2
from tests.contract.helpers import (
    ack,
    enqueue,
    enqueue_request,
    expect_error,
    fail,
    lease,
    list_jobs,
    payload_of,
    queue_stats,
    queue_stub,
    seconds,
    timestamp,
    unique,
)

FAILED = grpc.StatusCode.FAILED_PRECONDITION
AVAILABLE = queue_pb2.JOB_STATE_AVAILABLE
SCHEDULED = queue_pb2.JOB_STATE_SCHEDULED
LEASED = queue_pb2.JOB_STATE_LEASED
COMPLETED = queue_pb2.JOB_STATE_COMPLETED
DEAD = queue_pb2.JOB_STATE_DEAD
CANCELLED = queue_pb2.JOB_STATE_CANCELLED
SLACK = timedelta(milliseconds=1)
"""Allowance for rounding times to microseconds on the way through storage."""

PAYLOAD = {
    "task": "build ✓",
    "n": 42,
    "ratio": 2.5,
    "yes": True,
    "nothing": None,
    "list": [1, "two", None, {"x": [False]}],
    "obj": {"inner": {"deep": "yes"}, "empty": {}},
}


def now() -> datetime:
    return datetime.now(UTC)


def at(value: Any) -> datetime:
    """A Timestamp as an aware datetime."""
    return value.ToDatetime(UTC)


def get_job(qs, job_id: str, **fields: Any) -> queue_pb2.Job:
    return qs.GetJob(queue_pb2.GetJobRequest(id=job_id, **fields))


def extend(qs, job: queue_pb2.Job, lease_seconds: float) -> queue_pb2.Job:
    return qs.ExtendLease(
        queue_pb2.ExtendLeaseRequest(
            id=job.id, lease_token=job.lease_token, lease_duration=seconds(lease_seconds)
        )
    )


def cancel(qs, job_id: str) -> queue_pb2.Job:
    return qs.CancelJob(queue_pb2.CancelJobRequest(id=job_id))


def retry(qs, job_id: str) -> queue_pb2.Job:
    return qs.RetryJob(queue_pb2.RetryJobRequest(id=job_id))


def ids(jobs: Any) -> list[str]:
    return [job.id for job in jobs]


def lease_one(qs, qname: str, **fields: Any) -> queue_pb2.Job:
    jobs = lease(qs, qname, **fields)
    assert len(jobs) == 1, f"expected one job, leased {len(jobs)}"
    return jobs[0]


def expect_lease_lost(call: Any) -> None:
    expect_error(call, FAILED, "LEASE_LOST")


# --- enqueue and get ----------------------------------------------------------------


def test_enqueue_then_get_round_trips(qs, qname):
    run_time = now() - timedelta(seconds=1)
    before = now()
    job = enqueue(qs, qname, PAYLOAD, priority=7, run_time=timestamp(run_time))
    after = now()
    assert (job.namespace, job.queue) == ("default", qname)
    assert job.id
    assert job.state == AVAILABLE
    assert payload_of(job) == PAYLOAD
    assert job.priority == 7
    assert at(job.run_time) == run_time
    assert (job.attempt, job.max_attempts) == (0, 10)
    assert job.lease_token == ""
    assert not job.HasField("lease_expire_time")
    assert not job.HasField("finish_time")
    assert not job.HasField("result")
    assert job.last_error == ""
    assert job.unique_key == ""
    assert job.create_time == job.update_time
    assert before - SLACK <= at(job.create_time) <= after + SLACK

    assert get_job(qs, job.id) == job


def test_enqueue_without_run_time_is_available_at_once(qs, qname):
    before = now()
    job = enqueue(qs, qname, {"a": 1})
    assert job.state == AVAILABLE, queue_pb2.JobState.Name(job.state)
    assert before - SLACK <= at(job.run_time) <= now() + SLACK
    assert get_job(qs, job.id).state == AVAILABLE
    assert queue_stats(qs, qname).available == 1


def test_enqueue_with_delay_is_scheduled(qs, qname):
    before = now()
    job = enqueue(qs, qname, {"a": 1}, delay=seconds(60), max_attempts=3)
    after = now()
    assert job.state == SCHEDULED
    assert job.max_attempts == 3
    due = at(job.run_time)
    assert before + timedelta(seconds=60) - SLACK <= due <= after + timedelta(seconds=60) + SLACK
    assert get_job(qs, job.id).state == SCHEDULED
    assert lease(qs, qname) == []
    stats = queue_stats(qs, qname)
    assert (stats.scheduled, stats.available) == (1, 0)


def test_scheduled_job_is_not_leased_before_it_is_due(qs, qname):
    job = enqueue(qs, qname, {}, delay=seconds(0.4))
    assert lease(qs, qname) == []
    time.sleep(max(0.0, (at(job.run_time) - now()).total_seconds()) + 0.05)
    leased = lease_one(qs, qname)
    assert leased.id == job.id
    assert at(leased.update_time) >= at(job.run_time)


def test_enqueue_with_run_time_in_the_future_is_scheduled(qs, qname):
    run_time = now() + timedelta(hours=1)
    job = enqueue(qs, qname, {}, run_time=timestamp(run_time))
    assert job.state == SCHEDULED
    assert at(job.run_time) == run_time
    assert lease(qs, qname) == []


def test_jobs_are_isolated_by_namespace(qs, qname):
    job = enqueue(qs, qname, {}, namespace="ns-queue-a")
    assert job.namespace == "ns-queue-a"
    assert lease(qs, qname) == []
    expect_error(lambda: get_job(qs, job.id), grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    assert get_job(qs, job.id, namespace="ns-queue-a").id == job.id
    assert lease_one(qs, qname, namespace="ns-queue-a").id == job.id


# --- leasing ------------------------------------------------------------------------


def test_lease_order_is_priority_then_run_time_then_fifo(qs, qname):
    base = now()

    def add(name: str, priority: int, ago: float | None) -> str:
        fields: dict[str, Any] = {"priority": priority}
        if ago is not None:
            fields["run_time"] = timestamp(base - timedelta(seconds=ago))
        return enqueue(qs, qname, {"name": name}, **fields).id

    made = {
        "low-old": add("low-old", 0, 10),
        "fifo-1": add("fifo-1", 1, 3),
        "high-late": add("high-late", 5, 1),
        "low-now": add("low-now", 0, None),
        "fifo-2": add("fifo-2", 1, 3),
        "high-early": add("high-early", 5, 5),
        "fifo-3": add("fifo-3", 1, 3),
        "negative": add("negative", -3, 100),
    }
    order = [lease_one(qs, qname).id for _ in made]
    names = {job_id: name for name, job_id in made.items()}
    assert [names[job_id] for job_id in order] == [
        "high-early",
        "high-late",
        "fifo-1",
        "fifo-2",
        "fifo-3",
        "low-old",
        "low-now",
        "negative",
    ]
    assert lease(qs, qname) == []


def test_lease_takes_up_to_max_jobs_and_never_the_same_job_twice(qs, qname):
    made = {enqueue(qs, qname, {"i": i}).id for i in range(5)}
    first = lease(qs, qname, max_jobs=3)
    second = lease(qs, qname, max_jobs=3)
    assert len(first) == 3
    assert len(second) == 2
    assert set(ids(first)) | set(ids(second)) == made
    assert lease(qs, qname, max_jobs=3) == []


def test_lease_returns_token_and_expiry_with_attempt_1(qs, qname):
    job = enqueue(qs, qname, PAYLOAD)
    before = now()
    leased = lease_one(qs, qname, lease_seconds=120)
    after = now()
    assert leased.id == job.id
    assert leased.state == LEASED
    assert leased.lease_token
    assert leased.attempt == 1
    assert payload_of(leased) == PAYLOAD
    expire = at(leased.lease_expire_time)
    assert before + timedelta(seconds=120) - SLACK <= expire <= after + timedelta(seconds=120)

    fetched = get_job(qs, job.id)
    assert fetched.state == LEASED
    assert fetched.lease_token == "", "GetJob must not reveal the holder's lease token"
    assert fetched.attempt == 1
    assert fetched.lease_expire_time == leased.lease_expire_time
    stats = queue_stats(qs, qname)
    assert (stats.leased, stats.available) == (1, 0)


def test_lease_duration_defaults_to_30_seconds(qs, qname):
    enqueue(qs, qname, {})
    before = now()
    leased = lease_one(qs, qname)
    expire = at(leased.lease_expire_time)
    assert before + timedelta(seconds=30) - SLACK <= expire <= now() + timedelta(seconds=30)


def test_lease_tokens_differ_between_leases(qs, qname):
    enqueue(qs, qname, {})
    enqueue(qs, qname, {})
    first, second = lease(qs, qname, max_jobs=2)
    assert first.lease_token != second.lease_token


# --- ack, fail, extend --------------------------------------------------------------


def test_ack_completes_the_job_with_its_result(qs, qname):
    job = enqueue(qs, qname, {"x": 1})
    leased = lease_one(qs, qname)
    before = now()
    done = ack(qs, leased, {"ok": True, "files": ["a", "b"], "n": 3})
    assert done.id == job.id
    assert done.state == COMPLETED
    assert payload_of(leased) == {"x": 1}
    assert json_format.MessageToDict(done.result) == {"ok": True, "files": ["a", "b"], "n": 3}
    assert done.lease_token == ""
    assert before - SLACK <= at(done.finish_time) <= now() + SLACK
    fetched = get_job(qs, job.id)
    assert fetched.state == COMPLETED
    assert fetched.result == done.result
    assert fetched.finish_time == done.finish_time
    assert lease(qs, qname) == []
    stats = queue_stats(qs, qname)
    assert (stats.completed, stats.leased, stats.available) == (1, 0, 0)


def test_ack_without_result(qs, qname):
    enqueue(qs, qname, {})
    done = ack(qs, lease_one(qs, qname))
    assert done.state == COMPLETED
    assert json_format.MessageToDict(done.result) == {}


def test_stale_token_ack_fail_and_extend_are_lease_lost(qs, qname):
    enqueue(qs, qname, {})
    leased = lease_one(qs, qname)
    forged = queue_pb2.Job()
    forged.CopyFrom(leased)
    forged.lease_token = "0" * 32
    expect_lease_lost(lambda: ack(qs, forged))
    expect_lease_lost(lambda: fail(qs, forged, retry_delay=0))
    expect_lease_lost(lambda: extend(qs, forged, 60))
    # the refused calls changed nothing: the real holder still completes the job
    assert get_job(qs, leased.id).state == LEASED
    assert ack(qs, leased).state == COMPLETED
    # and once completed, its own token is stale too
    expect_lease_lost(lambda: ack(qs, leased))
    expect_lease_lost(lambda: fail(qs, leased))
    expect_lease_lost(lambda: extend(qs, leased, 60))
    assert get_job(qs, leased.id).state == COMPLETED


def test_ack_of_a_job_never_leased_is_lease_lost(qs, qname):
    job = enqueue(qs, qname, {})
    job.lease_token = "0" * 32
    expect_lease_lost(lambda: ack(qs, job))
    assert get_job(qs, job.id).state == AVAILABLE


def test_expired_lease_cannot_ack_and_the_job_is_leased_again(qs, qname):
    job = enqueue(qs, qname, {})
    first = lease_one(qs, qname, lease_seconds=1)
    time.sleep(1.2)
    expect_lease_lost(lambda: ack(qs, first))
    expect_lease_lost(lambda: extend(qs, first, 60))
    expect_lease_lost(lambda: fail(qs, first, retry_delay=0))
    assert get_job(qs, job.id).state == AVAILABLE
    assert queue_stats(qs, qname).available == 1

    second = lease_one(qs, qname, lease_seconds=30)
    assert second.id == job.id
    assert second.attempt == 2
    assert second.lease_token != first.lease_token
    expect_lease_lost(lambda: ack(qs, first))
    assert queue_stats(qs, qname).expired_leases == 1
    assert ack(qs, second).state == COMPLETED
    stats = queue_stats(qs, qname)
    assert (stats.completed, stats.expired_leases) == (1, 1)
    assert stats.expiry_window.ToTimedelta() == timedelta(minutes=5)


def test_an_expired_lease_shows_as_available_in_lists(qs, qname):
    job = enqueue(qs, qname, {})
    lease_one(qs, qname, lease_seconds=1)
    assert ids(list_jobs(qs, qname, state=LEASED)) == [job.id]
    time.sleep(1.2)
    assert ids(list_jobs(qs, qname, state=AVAILABLE)) == [job.id]
    assert list_jobs(qs, qname, state=LEASED) == []
    stats = queue_stats(qs, qname)
    assert (stats.available, stats.leased) == (1, 0)
    assert stats.oldest_available_age.ToTimedelta() > timedelta(0)


def test_an_expired_lease_on_the_last_attempt_dies_without_blocking_others(qs, qname):
    doomed = enqueue(qs, qname, {}, max_attempts=1, priority=10)
    lease_one(qs, qname, lease_seconds=1)
    other = enqueue(qs, qname, {})
    time.sleep(1.2)
    # the expired job is the first candidate; it dies, and the lease takes the next one
    assert ids(lease(qs, qname, max_jobs=1)) == [other.id]
    dead = get_job(qs, doomed.id)
    assert dead.state == DEAD
    assert dead.last_error
    assert dead.HasField("finish_time")
    assert lease(qs, qname) == []
    assert queue_stats(qs, qname).dead == 1


def test_extend_keeps_a_lease_alive_past_its_original_end(qs, qname):
    enqueue(qs, qname, {})
    leased = lease_one(qs, qname, lease_seconds=1)
    time.sleep(0.5)
    before = now()
    extended = extend(qs, leased, 3)
    assert extended.id == leased.id
    assert extended.state == LEASED
    assert extended.attempt == 1
    expire = at(extended.lease_expire_time)
    assert before + timedelta(seconds=3) - SLACK <= expire <= now() + timedelta(seconds=3)
    time.sleep(0.8)  # past the original end
    assert lease(qs, qname) == []
    assert get_job(qs, leased.id).state == LEASED
    assert ack(qs, leased).state == COMPLETED
    assert queue_stats(qs, qname).expired_leases == 0


def test_fail_with_retry_delay_0_makes_the_job_available_again(qs, qname):
    job = enqueue(qs, qname, {"p": 1})
    first = lease_one(qs, qname)
    failed = fail(qs, first, "disk full", retry_delay=0)
    assert failed.state == AVAILABLE
    assert failed.attempt == 1
    assert failed.last_error == "disk full"
    assert failed.lease_token == ""
    assert not failed.HasField("finish_time")
    second = lease_one(qs, qname)
    assert (second.id, second.attempt) == (job.id, 2)
    assert payload_of(second) == {"p": 1}
    failed = fail(qs, second, "still full", retry_delay=0)
    assert (failed.attempt, failed.last_error) == (2, "still full")
    assert lease_one(qs, qname).attempt == 3


def test_fail_with_retry_delay_schedules_the_retry(qs, qname):
    enqueue(qs, qname, {})
    failed = fail(qs, lease_one(qs, qname), "later", retry_delay=3600)
    assert failed.state == SCHEDULED
    delay = at(failed.run_time) - at(failed.update_time)
    assert abs(delay - timedelta(hours=1)) <= SLACK
    assert lease(qs, qname) == []
    assert queue_stats(qs, qname).scheduled == 1


def test_backoff_doubles_with_jitter(qs, qname):
    # 0.5 s, not less: the job's state is reported as of the response, so a backoff
    # shorter than a slow (loaded CI) FailJob round trip would read as available.
    enqueue(qs, qname, {}, retry_backoff=seconds(0.5), max_attempts=5)
    expected = timedelta(milliseconds=500)
    for _ in range(2):
        failed = fail(qs, lease_one(qs, qname))
        assert failed.state == SCHEDULED
        assert failed.retry_backoff.ToTimedelta() == timedelta(milliseconds=500)
        delay = at(failed.run_time) - at(failed.update_time)
        assert expected * 0.8 - SLACK <= delay <= expected + SLACK, delay
        assert lease(qs, qname) == [], "leased during its backoff"
        time.sleep(max(0.0, (at(failed.run_time) - now()).total_seconds()) + 0.03)
        expected *= 2
    assert lease_one(qs, qname).attempt == 3


def test_backoff_default_is_about_one_second(qs, qname):
    enqueue(qs, qname, {})
    failed = fail(qs, lease_one(qs, qname))
    delay = at(failed.run_time) - at(failed.update_time)
    assert timedelta(milliseconds=800) - SLACK <= delay <= timedelta(seconds=1) + SLACK


def test_dead_after_max_attempts_keeps_last_error(qs, qname):
    job = enqueue(qs, qname, {}, max_attempts=2)
    assert fail(qs, lease_one(qs, qname), "first", retry_delay=0).state == AVAILABLE
    second = lease_one(qs, qname)
    assert second.attempt == 2
    before = now()
    dead = fail(qs, second, "second", retry_delay=0)
    assert dead.state == DEAD
    assert dead.last_error == "second"
    assert dead.attempt == 2
    assert before - SLACK <= at(dead.finish_time) <= now() + SLACK
    assert lease(qs, qname) == []
    fetched = get_job(qs, job.id)
    assert (fetched.state, fetched.last_error) == (DEAD, "second")
    stats = queue_stats(qs, qname)
    assert (stats.dead, stats.available, stats.scheduled) == (1, 0, 0)
    assert ids(list_jobs(qs, qname, state=DEAD)) == [job.id]


def test_max_attempts_1_dies_on_first_failure(qs, qname):
    enqueue(qs, qname, {}, max_attempts=1)
    assert fail(qs, lease_one(qs, qname), "once").state == DEAD


def test_fail_keeps_a_long_error_truncated(qs, qname):
    enqueue(qs, qname, {})
    failed = fail(qs, lease_one(qs, qname), "e" * 100_000, retry_delay=0)
    assert failed.last_error == "e" * (64 * 1024)


def test_retry_job_brings_a_dead_job_back_with_attempt_0(qs, qname):
    job = enqueue(qs, qname, {"k": "v"}, max_attempts=1)
    assert fail(qs, lease_one(qs, qname), "broken").state == DEAD
    retried = retry(qs, job.id)
    assert retried.id == job.id
    assert retried.state == AVAILABLE
    assert retried.attempt == 0
    assert not retried.HasField("finish_time")
    again = lease_one(qs, qname)
    assert (again.id, again.attempt) == (job.id, 1)
    assert payload_of(again) == {"k": "v"}
    assert ack(qs, again).state == COMPLETED


def test_retry_job_of_an_unfinished_or_completed_job_is_not_retryable(qs, qname):
    job = enqueue(qs, qname, {})
    expect_error(lambda: retry(qs, job.id), FAILED, "JOB_NOT_RETRYABLE")
    leased = lease_one(qs, qname)
    expect_error(lambda: retry(qs, job.id), FAILED, "JOB_NOT_RETRYABLE")
    ack(qs, leased)
    expect_error(lambda: retry(qs, job.id), FAILED, "JOB_NOT_RETRYABLE")
    scheduled = enqueue(qs, qname, {}, delay=seconds(3600))
    expect_error(lambda: retry(qs, scheduled.id), FAILED, "JOB_NOT_RETRYABLE")


# --- cancel -------------------------------------------------------------------------


def test_cancel_of_a_leased_job_voids_its_lease(qs, qname):
    job = enqueue(qs, qname, {})
    leased = lease_one(qs, qname)
    cancelled = cancel(qs, job.id)
    assert cancelled.state == CANCELLED
    assert cancelled.HasField("finish_time")
    expect_lease_lost(lambda: ack(qs, leased))
    expect_lease_lost(lambda: fail(qs, leased))
    expect_lease_lost(lambda: extend(qs, leased, 60))
    assert get_job(qs, job.id).state == CANCELLED
    assert lease(qs, qname) == []
    assert queue_stats(qs, qname).cancelled == 1
    # a cancelled job can be retried
    assert retry(qs, job.id).state == AVAILABLE
    assert lease_one(qs, qname).attempt == 1


def test_cancel_of_an_available_job_stops_it_from_being_leased(qs, qname):
    job = enqueue(qs, qname, {})
    assert cancel(qs, job.id).state == CANCELLED
    assert lease(qs, qname) == []


def test_cancel_of_a_finished_job_is_job_finished(qs, qname):
    job = enqueue(qs, qname, {})
    ack(qs, lease_one(qs, qname))
    expect_error(lambda: cancel(qs, job.id), FAILED, "JOB_FINISHED")
    assert get_job(qs, job.id).state == COMPLETED

    other = enqueue(qs, qname, {})
    cancel(qs, other.id)
    expect_error(lambda: cancel(qs, other.id), FAILED, "JOB_FINISHED")

    dead = enqueue(qs, qname, {}, max_attempts=1)
    fail(qs, lease_one(qs, qname))
    expect_error(lambda: cancel(qs, dead.id), FAILED, "JOB_FINISHED")


# --- pause and resume ---------------------------------------------------------------


def test_pause_stops_leasing_and_resume_restarts_it(qs, qname):
    enqueue(qs, qname, {})
    paused = qs.PauseQueue(queue_pb2.PauseQueueRequest(queue=qname))
    assert paused.paused
    assert (paused.queue, paused.available) == (qname, 1)
    assert lease(qs, qname) == []
    assert queue_stats(qs, qname).paused
    enqueue(qs, qname, {})  # enqueues still succeed
    assert lease(qs, qname, max_jobs=5) == []
    resumed = qs.ResumeQueue(queue_pb2.ResumeQueueRequest(queue=qname))
    assert not resumed.paused
    assert resumed.available == 2
    assert len(lease(qs, qname, max_jobs=5)) == 2
    assert not queue_stats(qs, qname).paused


def test_pause_is_per_queue_and_idempotent(qs, qname):
    other = unique("q")
    enqueue(qs, other, {})
    qs.PauseQueue(queue_pb2.PauseQueueRequest(queue=qname))
    assert qs.PauseQueue(queue_pb2.PauseQueueRequest(queue=qname)).paused
    assert len(lease(qs, other)) == 1
    assert qs.ResumeQueue(queue_pb2.ResumeQueueRequest(queue=other)).paused is False


# --- unique_key and request_id ------------------------------------------------------


def test_unique_key_under_50_concurrent_enqueues_makes_one_job(qs, qname):
    start = threading.Barrier(50)

    def add(i: int) -> queue_pb2.Job:
        start.wait()
        return enqueue(qs, qname, {"i": i}, unique_key="the-key")

    with ThreadPoolExecutor(50) as pool:
        jobs = list(pool.map(add, range(50)))
    assert len({job.id for job in jobs}) == 1, "every enqueue must return the one job"
    listed = list_jobs(qs, qname)
    assert ids(listed) == [jobs[0].id]
    assert listed[0].unique_key == "the-key"

    # while the job is unfinished (leased too), the key still yields it
    leased = lease_one(qs, qname)
    again = enqueue(qs, qname, {"i": "later"}, unique_key="the-key")
    assert (again.id, again.state) == (leased.id, LEASED)
    ack(qs, leased)

    # once it completed, the same key enqueues a new job
    fresh = enqueue(qs, qname, {"i": "new"}, unique_key="the-key")
    assert fresh.id != leased.id
    assert payload_of(fresh) == {"i": "new"}
    assert len(list_jobs(qs, qname)) == 2
    assert fresh.state == AVAILABLE


def test_unique_key_is_per_queue(qs, qname):
    first = enqueue(qs, qname, {}, unique_key="k")
    second = enqueue(qs, unique("q"), {}, unique_key="k")
    assert first.id != second.id


def test_unique_key_is_free_again_after_dead_or_cancel(qs, qname):
    job = enqueue(qs, qname, {}, unique_key="k", max_attempts=1)
    fail(qs, lease_one(qs, qname))
    after_dead = enqueue(qs, qname, {}, unique_key="k")
    assert after_dead.id != job.id
    cancel(qs, after_dead.id)
    after_cancel = enqueue(qs, qname, {}, unique_key="k")
    assert after_cancel.id not in (job.id, after_dead.id)


def test_enqueue_with_request_id_is_idempotent(qs, qname):
    request_id = unique("req")
    first = enqueue(qs, qname, {"a": 1}, request_id=request_id)
    second = enqueue(qs, qname, {"a": 1}, request_id=request_id)
    assert second.id == first.id
    assert ids(list_jobs(qs, qname)) == [first.id]
    other = enqueue(qs, qname, {"a": 1}, request_id=unique("req"))
    assert other.id != first.id


def test_batch_enqueue_with_request_id_is_idempotent(qs, qname):
    request = queue_pb2.BatchEnqueueRequest(
        jobs=[enqueue_request(qname, {"i": i}) for i in range(3)], request_id=unique("req")
    )
    first = qs.BatchEnqueue(request)
    second = qs.BatchEnqueue(request)
    assert ids(second.jobs) == ids(first.jobs)
    assert len(list_jobs(qs, qname)) == 3


# --- BatchEnqueue -------------------------------------------------------------------


def test_batch_enqueue_of_100_returns_jobs_in_request_order(qs, qname):
    response = qs.BatchEnqueue(
        queue_pb2.BatchEnqueueRequest(
            jobs=[enqueue_request(qname, {"i": i}, priority=i % 3) for i in range(100)]
        )
    )
    assert len(response.jobs) == 100
    assert [payload_of(job)["i"] for job in response.jobs] == list(range(100))
    assert [job.priority for job in response.jobs] == [i % 3 for i in range(100)]
    assert all(job.attempt == 0 for job in response.jobs)
    assert len(set(ids(response.jobs))) == 100
    assert set(ids(list_jobs(qs, qname, page_size=1000))) == set(ids(response.jobs))
    assert queue_stats(qs, qname).available == 100
    states = {queue_pb2.JobState.Name(job.state) for job in response.jobs}
    assert states == {"JOB_STATE_AVAILABLE"}


BAD_BATCH_JOBS = {
    "max_attempts": (
        {"max_attempts": 1001},
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        "jobs[7].max_attempts",
    ),
    "queue": (
        {"queue": "9bad"},
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        "jobs[7].queue",
    ),
    "payload": (
        {"payload": {"blob": "x" * (1024 * 1024 + 1)}},
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "TOO_LARGE",
        None,
    ),
}


@pytest.mark.parametrize("bad", BAD_BATCH_JOBS.values(), ids=BAD_BATCH_JOBS.keys())
def test_batch_enqueue_is_all_or_nothing(qs, qname, bad):
    fields, code, reason, field = bad
    jobs = [enqueue_request(qname, {"i": i}) for i in range(100)]
    payload = fields.get("payload")
    jobs[7] = enqueue_request(
        fields.get("queue", qname),
        payload if payload is not None else {"i": 7},
        **{k: v for k, v in fields.items() if k not in ("queue", "payload")},
    )
    expect_error(
        lambda: qs.BatchEnqueue(queue_pb2.BatchEnqueueRequest(jobs=jobs)),
        code,
        reason,
        field,
        job_index="7",
    )
    assert list_jobs(qs, qname) == []
    stats = queue_stats(qs, qname)
    assert (stats.available, stats.scheduled) == (0, 0)


def test_batch_enqueue_deduplicates_unique_keys_within_the_batch(qs, qname):
    response = qs.BatchEnqueue(
        queue_pb2.BatchEnqueueRequest(
            jobs=[
                enqueue_request(qname, {"i": 0}, unique_key="same"),
                enqueue_request(qname, {"i": 1}),
                enqueue_request(qname, {"i": 2}, unique_key="same"),
            ]
        )
    )
    assert response.jobs[0].id == response.jobs[2].id
    assert len(list_jobs(qs, qname)) == 2


def test_batch_enqueue_to_several_queues(qs, qname):
    other = unique("q")
    response = qs.BatchEnqueue(
        queue_pb2.BatchEnqueueRequest(
            jobs=[enqueue_request(qname, {}), enqueue_request(other, {}, delay=seconds(3600))]
        )
    )
    assert [job.queue for job in response.jobs] == [qname, other]
    assert len(lease(qs, qname)) == 1
    assert queue_stats(qs, other).scheduled == 1
    assert [job.state for job in response.jobs] == [AVAILABLE, SCHEDULED]


# --- ListJobs and GetQueueStats -----------------------------------------------------


def test_list_jobs_pages_through_every_job_once_oldest_first(qs, qname):
    made = [enqueue(qs, qname, {"i": i}).id for i in range(10)]
    pages: list[list[str]] = []
    token = ""
    while True:
        page = qs.ListJobs(queue_pb2.ListJobsRequest(queue=qname, page_size=3, page_token=token))
        pages.append(ids(page.jobs))
        token = page.next_page_token
        if not token:
            break
        assert len(pages) < 10, "paging never ended"
    assert [len(page) for page in pages] == [3, 3, 3, 1]
    assert [job_id for page in pages for job_id in page] == made


def test_list_jobs_by_state(qs, qname):
    j1, j2, j3, j4 = (enqueue(qs, qname, {"i": i}).id for i in range(4))
    j5 = enqueue(qs, qname, {"i": 5}, delay=seconds(3600)).id
    j6 = enqueue(qs, qname, {"i": 6}, max_attempts=1).id
    leased = {job.id: job for job in lease(qs, qname, max_jobs=2)}
    assert set(leased) == {j1, j2}
    ack(qs, leased[j1])
    cancel(qs, j3)
    for job in lease(qs, qname, max_jobs=2):  # j4 and j6: fail j6 to death, put j4 back
        if job.id == j6:
            fail(qs, job, "fatal")
        else:
            fail(qs, job, "again", retry_delay=0)
    expected = {
        AVAILABLE: [j4],
        SCHEDULED: [j5],
        LEASED: [j2],
        COMPLETED: [j1],
        DEAD: [j6],
        CANCELLED: [j3],
    }
    for state, want in expected.items():
        got = ids(list_jobs(qs, qname, state=state, page_size=1))
        assert got == want, queue_pb2.JobState.Name(state)
    assert ids(list_jobs(qs, qname)) == [j1, j2, j3, j4, j5, j6]
    states = {job.id: job.state for job in list_jobs(qs, qname)}
    assert states == {job_id: state for state, [job_id] in expected.items()}


def test_list_jobs_of_an_unknown_queue_is_empty(qs):
    page = qs.ListJobs(queue_pb2.ListJobsRequest(queue=unique("q")))
    assert list(page.jobs) == []
    assert page.next_page_token == ""


def test_list_jobs_never_shows_lease_tokens(qs, qname):
    enqueue(qs, qname, {})
    lease_one(qs, qname)
    [listed] = list_jobs(qs, qname)
    assert listed.state == LEASED
    assert listed.lease_token == ""


def test_queue_stats_counts_by_state(qs, qname):
    stale = enqueue(qs, qname, {}, run_time=timestamp(now() - timedelta(seconds=10)))
    enqueue(qs, qname, {})
    enqueue(qs, qname, {}, delay=seconds(3600))
    enqueue(qs, qname, {}, delay=seconds(3600))
    stats = queue_stats(qs, qname)
    assert (stats.namespace, stats.queue, stats.paused) == ("default", qname, False)
    assert (stats.available, stats.scheduled, stats.leased) == (2, 2, 0)
    assert (stats.completed, stats.dead, stats.cancelled) == (0, 0, 0)
    assert stats.oldest_available_age.ToTimedelta() >= timedelta(seconds=10)
    assert stats.expired_leases == 0
    assert stats.expiry_window.ToTimedelta() == timedelta(minutes=5)

    first = lease_one(qs, qname)
    assert first.id == stale.id
    ack(qs, first)
    cancel(qs, enqueue(qs, qname, {}).id)
    stats = queue_stats(qs, qname)
    assert (stats.available, stats.scheduled, stats.leased) == (1, 2, 0)
    assert (stats.completed, stats.dead, stats.cancelled) == (1, 0, 1)
    assert stats.oldest_available_age.ToTimedelta() < timedelta(seconds=10)

    second = lease_one(qs, qname)
    stats = queue_stats(qs, qname)
    assert (stats.available, stats.leased) == (0, 1)
    assert stats.oldest_available_age.ToTimedelta() == timedelta(0)
    fail(qs, second, retry_delay=0)
    enqueue(qs, unique("q"), {})  # another queue's jobs are not counted
    stats = queue_stats(qs, qname)
    assert (stats.available, stats.leased, stats.completed) == (1, 0, 1)


def test_queue_stats_of_an_unknown_queue_is_all_zero(qs):
    name = unique("q")
    stats = queue_stats(qs, name)
    assert (stats.queue, stats.paused) == (name, False)
    counts = (stats.available, stats.scheduled, stats.leased, stats.completed, stats.dead)
    assert counts == (0, 0, 0, 0, 0)
    assert (stats.cancelled, stats.expired_leases) == (0, 0)


# --- long poll ----------------------------------------------------------------------


def test_long_poll_returns_soon_after_an_enqueue_on_another_channel(qs, qname, server):
    results: list[Any] = []

    def poll() -> None:
        started = time.monotonic()
        try:
            results.append(lease(qs, qname, lease_seconds=30, wait_seconds=5))
        except grpc.RpcError as error:  # reported by the main thread
            results.append(error)
        results.append(time.monotonic() - started)

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.3)
    with server.channel() as channel:
        job = enqueue(queue_stub(channel), qname, {"woke": True})
    enqueued_at = time.monotonic()
    thread.join(10)
    returned_after_enqueue = time.monotonic() - enqueued_at
    assert not thread.is_alive()
    jobs, elapsed = results
    assert not isinstance(jobs, grpc.RpcError), jobs
    assert ids(jobs) == [job.id]
    assert jobs[0].state == LEASED and jobs[0].lease_token
    assert elapsed < 2.5, f"the poll took {elapsed:.2f} s"
    # a wakeup, not the server's 1 s fallback re-check, ended the wait
    assert returned_after_enqueue < 0.6, f"{returned_after_enqueue:.2f} s after the enqueue"


def poll_then(qs, qname: str, action: Any, wait: float = 5) -> tuple[list[Any], float]:
    """Start a long poll, run `action` 0.3 s later, and return the poll's jobs and
    how long after the action it returned."""
    results: list[Any] = []
    thread = threading.Thread(
        target=lambda: results.append(lease(qs, qname, lease_seconds=30, wait_seconds=wait))
    )
    thread.start()
    time.sleep(0.3)
    action()
    acted_at = time.monotonic()
    thread.join(wait + 5)
    assert not thread.is_alive()
    assert results, "the poll failed"
    return results[0], time.monotonic() - acted_at


def test_a_long_poll_gets_a_job_enqueued_while_it_waits_from_the_enqueue(qs, qname):
    # A poll is parked between its re-checks (one a second, a few ms each): an
    # enqueue landing in one takes the usual path, so try three polls.
    handed = []
    enqueued: list[Any] = []
    for i in range(3):
        jobs, _ = poll_then(qs, qname, lambda i=i: enqueued.append(enqueue(qs, qname, {"n": i})))
        job = enqueued[-1]
        assert ids(jobs) == [job.id]
        assert jobs[0].lease_token and jobs[0].attempt == 1
        if job.state == LEASED:  # leased by the enqueue itself; the reply has no token
            assert job.attempt == 1 and not job.lease_token
            handed.append(job)
    assert handed, "no enqueue leased its job to the waiting poll"
    assert ack(qs, jobs[0]).state == queue_pb2.JOB_STATE_COMPLETED


def test_long_poll_is_woken_by_resume(qs, qname):
    job = enqueue(qs, qname, {})
    qs.PauseQueue(queue_pb2.PauseQueueRequest(queue=qname))
    jobs, after = poll_then(
        qs, qname, lambda: qs.ResumeQueue(queue_pb2.ResumeQueueRequest(queue=qname))
    )
    assert ids(jobs) == [job.id]
    assert after < 0.6, f"{after:.2f} s after the resume"


def test_long_poll_is_woken_by_retry_job(qs, qname):
    job = enqueue(qs, qname, {})
    cancel(qs, job.id)
    jobs, after = poll_then(qs, qname, lambda: retry(qs, job.id))
    assert ids(jobs) == [job.id]
    assert after < 0.6, f"{after:.2f} s after the retry"


def test_long_poll_is_woken_by_a_fail_that_makes_the_job_available(qs, qname):
    enqueue(qs, qname, {})
    held = lease_one(qs, qname)
    jobs, after = poll_then(qs, qname, lambda: fail(qs, held, retry_delay=0))
    assert [(job.id, job.attempt) for job in jobs] == [(held.id, 2)]
    assert after < 0.6, f"{after:.2f} s after the fail"


def test_long_poll_returns_a_scheduled_job_once_it_is_due(qs, qname):
    job = enqueue(qs, qname, {}, delay=seconds(0.5))
    started = time.monotonic()
    assert ids(lease(qs, qname, wait_seconds=4)) == [job.id]
    assert time.monotonic() - started < 2.5


def test_long_poll_without_an_enqueue_returns_empty_after_the_wait(qs, qname):
    started = time.monotonic()
    assert lease(qs, qname, wait_seconds=1.2) == []
    elapsed = time.monotonic() - started
    assert 1.1 <= elapsed < 3, elapsed


def test_long_poll_on_a_paused_queue_waits_and_returns_empty(qs, qname):
    enqueue(qs, qname, {})
    qs.PauseQueue(queue_pb2.PauseQueueRequest(queue=qname))
    started = time.monotonic()
    assert lease(qs, qname, wait_seconds=0.5) == []
    assert time.monotonic() - started >= 0.4


def test_wait_0_returns_at_once(qs, qname):
    started = time.monotonic()
    assert lease(qs, qname, wait_seconds=0) == []
    assert time.monotonic() - started < 0.5
