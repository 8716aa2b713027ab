"""Commit's enqueue write: a record write and a job commit together or not at all."""

from __future__ import annotations

import threading
import time
from typing import Any

import grpc
import pytest

from strata.v1 import transaction_pb2
from tests.conftest import Stubs
from tests.contract.helpers import (
    commit,
    create,
    create_write,
    expect_error,
    lease,
    list_jobs,
    payload_of,
    queue_stub,
    to_struct,
    unique,
    update_write,
)


def enqueue_write(queue: str, payload: dict[str, Any], **fields: Any) -> transaction_pb2.Write:
    """A Commit write that enqueues a job."""
    return transaction_pb2.Write(
        enqueue=transaction_pb2.EnqueueJobWrite(queue=queue, payload=to_struct(payload), **fields)
    )


@pytest.fixture
def queues(stubs: Stubs) -> Any:
    return queue_stub(stubs.channel)


def test_record_and_job_commit_together(stubs: Stubs, queues: Any, collection: str) -> None:
    queue = unique("q")
    response = commit(
        stubs,
        [
            create_write(collection, "ex1", {"state": "queued"}),
            enqueue_write(queue, {"execution": "ex1"}),
        ],
    )
    record, job = response.results[0].record, response.results[1].job
    assert record.id == "ex1" and job.queue == queue
    assert job.state == 1  # JOB_STATE_AVAILABLE
    [leased] = lease(queues, queue)
    assert leased.id == job.id and payload_of(leased) == {"execution": "ex1"}


def test_failed_precondition_enqueues_nothing(stubs: Stubs, queues: Any, collection: str) -> None:
    queue = unique("q")
    create(stubs, collection, "ex1", {"state": "queued"})
    expect_error(
        lambda: commit(
            stubs,
            [
                enqueue_write(queue, {"execution": "ex1"}),
                update_write(collection, "ex1", {"state": "running"}, expected_version=7),
            ],
        ),
        grpc.StatusCode.ABORTED,
        "VERSION_CONFLICT",
        write_index="1",
    )
    assert list_jobs(queues, queue) == []


def test_bad_enqueue_names_its_write(stubs: Stubs, queues: Any, collection: str) -> None:
    expect_error(
        lambda: commit(
            stubs,
            [create_write(collection, "a", {}), enqueue_write("9 bad", {})],
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        field="writes[1].enqueue.queue",
        write_index="1",
    )


def test_idempotent_commit_enqueues_once(stubs: Stubs, queues: Any, collection: str) -> None:
    queue = unique("q")
    writes = [create_write(collection, "r1", {}), enqueue_write(queue, {"n": 1})]
    first = commit(stubs, writes, request_id="rq-1")
    again = commit(stubs, writes, request_id="rq-1")
    assert first.results[1].job.id == again.results[1].job.id
    assert len(list_jobs(queues, queue)) == 1


def test_unique_key_in_a_commit_yields_the_holder(
    stubs: Stubs, queues: Any, collection: str
) -> None:
    queue = unique("q")
    first = commit(stubs, [enqueue_write(queue, {}, unique_key="k")]).results[0].job
    second = (
        commit(stubs, [create_write(collection, "x", {}), enqueue_write(queue, {}, unique_key="k")])
        .results[1]
        .job
    )
    assert second.id == first.id


def test_commit_wakes_a_waiting_lease(stubs: Stubs, queues: Any, collection: str) -> None:
    queue = unique("q")
    got: list[float] = []

    def wait_for_job() -> None:
        jobs = lease(queues, queue, wait_seconds=5)
        got.append(time.monotonic() if jobs else float("inf"))

    waiter = threading.Thread(target=wait_for_job)
    waiter.start()
    time.sleep(0.3)
    sent = time.monotonic()
    commit(stubs, [create_write(collection, "w", {}), enqueue_write(queue, {})])
    waiter.join(10)
    assert got and got[0] - sent < 0.6  # well before the 1 s fallback poll
