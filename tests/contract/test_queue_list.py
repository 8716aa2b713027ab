"""ListQueues over a real channel, on both storage shapes.

Each test lists a namespace of its own (`ns`), so what it sees is only what it made.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from strata.v1 import queue_pb2
from tests.contract.helpers import (
    ack,
    all_pages,
    enqueue,
    expect_error,
    fail,
    lease,
    seconds,
    timestamp,
    unique,
)


@pytest.fixture
def ns() -> str:
    """A namespace no other test uses."""
    return unique("ns")


def list_page(qs: Any, ns: str, **fields: Any) -> queue_pb2.ListQueuesResponse:
    return qs.ListQueues(queue_pb2.ListQueuesRequest(namespace=ns, **fields))


def list_all(qs: Any, ns: str, page_size: int = 0) -> list[queue_pb2.QueueStats]:
    return all_pages(
        lambda token: list_page(qs, ns, page_size=page_size, page_token=token),
        lambda page: page.queues,
    )


def counts(stats: queue_pb2.QueueStats) -> tuple[int, ...]:
    """(available, scheduled, leased, completed, dead, cancelled)."""
    return (
        stats.available,
        stats.scheduled,
        stats.leased,
        stats.completed,
        stats.dead,
        stats.cancelled,
    )


def test_an_empty_namespace_has_no_queues(qs, ns):
    response = list_page(qs, ns)
    assert list(response.queues) == []
    assert response.next_page_token == ""


def test_lists_every_queue_with_its_counts_by_state(qs, ns):
    # "busy": one job in each state, the oldest available one 10 s old
    for _ in range(3):
        enqueue(qs, "busy", {}, namespace=ns, max_attempts=1)
    done, dying, _held = lease(qs, "busy", max_jobs=3, lease_seconds=60, namespace=ns)
    ack(qs, done, namespace=ns)
    fail(qs, dying, namespace=ns)  # its only attempt: dead
    cancelled = enqueue(qs, "busy", {}, namespace=ns)
    qs.CancelJob(queue_pb2.CancelJobRequest(namespace=ns, id=cancelled.id))
    ten_seconds_ago = timestamp(datetime.now(UTC) - timedelta(seconds=10))
    enqueue(qs, "busy", {}, namespace=ns, run_time=ten_seconds_ago)
    enqueue(qs, "busy", {}, namespace=ns, delay=seconds(3600))
    # "another": two available jobs, and an empty paused queue "idle"
    enqueue(qs, "another", {}, namespace=ns)
    enqueue(qs, "another", {}, namespace=ns)
    qs.PauseQueue(queue_pb2.PauseQueueRequest(namespace=ns, queue="idle"))
    # a queue resumed without jobs is not a queue of the namespace
    qs.ResumeQueue(queue_pb2.ResumeQueueRequest(namespace=ns, queue="resumed"))
    enqueue(qs, "elsewhere", {}, namespace=unique("ns"))

    listed = list_all(qs, ns)
    assert [stats.queue for stats in listed] == ["another", "busy", "idle"]
    another, busy, idle = listed
    assert counts(busy) == (1, 1, 1, 1, 1, 1)
    assert busy.namespace == ns and not busy.paused
    assert busy.oldest_available_age.ToTimedelta() >= timedelta(seconds=10)
    assert busy.expiry_window.ToTimedelta() == timedelta(minutes=5)
    assert counts(another) == (2, 0, 0, 0, 0, 0)
    assert counts(idle) == (0,) * 6 and idle.paused
    assert idle.oldest_available_age.ToTimedelta() == timedelta(0)
    # each entry is what GetQueueStats says of that queue (ages aside: time passes)
    for stats in listed:
        single = qs.GetQueueStats(queue_pb2.GetQueueStatsRequest(namespace=ns, queue=stats.queue))
        single.ClearField("oldest_available_age")
        stats.ClearField("oldest_available_age")
        assert single == stats


def test_pages_follow_the_names(qs, ns):
    names = [f"q{index:02d}" for index in range(7)]
    for name in reversed(names[1:]):
        enqueue(qs, name, {}, namespace=ns)
    qs.PauseQueue(queue_pb2.PauseQueueRequest(namespace=ns, queue=names[0]))
    first = list_page(qs, ns, page_size=3)
    assert [stats.queue for stats in first.queues] == names[:3]
    assert first.next_page_token
    # a queue made before the page it falls in is listed there; one before the
    # token's position is not
    enqueue(qs, "q03b", {}, namespace=ns)
    enqueue(qs, "a-first", {}, namespace=ns)
    rest = all_pages(
        lambda token: list_page(qs, ns, page_size=3, page_token=token or first.next_page_token),
        lambda page: page.queues,
    )
    assert [stats.queue for stats in rest] == ["q03", "q03b", "q04", "q05", "q06"]
    whole = list_page(qs, ns, page_size=9)
    assert len(whole.queues) == 9 and whole.next_page_token == ""


@pytest.mark.parametrize(
    ("token", "field"),
    [("garbage!!", "page_token"), ("AAAA", "page_token")],
)
def test_a_bad_page_token_is_invalid_argument(qs, ns, token, field):
    expect_error(
        lambda: list_page(qs, ns, page_token=token),
        grpc.StatusCode.INVALID_ARGUMENT,
        field=field,
    )


def test_a_token_of_another_list_is_invalid_argument(qs, ns):
    for name in ("a", "b"):
        enqueue(qs, name, {}, namespace=ns)
    token = list_page(qs, ns, page_size=1).next_page_token
    expect_error(
        lambda: list_page(qs, unique("ns"), page_token=token),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="page_token",
    )
    enqueue(qs, "a", {}, namespace=ns)
    jobs_token = qs.ListJobs(
        queue_pb2.ListJobsRequest(namespace=ns, queue="a", page_size=1)
    ).next_page_token
    expect_error(
        lambda: list_page(qs, ns, page_token=jobs_token),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="page_token",
    )


def test_a_negative_page_size_is_invalid_argument(qs, ns):
    expect_error(
        lambda: list_page(qs, ns, page_size=-1),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="page_size",
    )
