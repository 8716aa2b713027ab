"""AckJobs over a real channel, on both storage shapes: each ack of a batch as AckJob
would do it, on its own, with its outcome in request order."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from strata.v1 import admin_pb2, queue_pb2
from tests.contract.helpers import enqueue, expect_error, lease, unique
from tests.contract.test_queue_subscribe import Stream

BAD = grpc.StatusCode.INVALID_ARGUMENT


def ack_of(job: queue_pb2.Job, result: dict[str, Any] | None = None) -> queue_pb2.JobAck:
    item = queue_pb2.JobAck(id=job.id, lease_token=job.lease_token)
    if result is not None:
        item.result.update(result)
    return item


def ack_jobs(qs, *acks: queue_pb2.JobAck, **fields: Any) -> list[queue_pb2.AckJobResult]:
    return list(qs.AckJobs(queue_pb2.AckJobsRequest(acks=acks, **fields)).results)


def state_of(qs, job_id: str, **fields: Any) -> int:
    return qs.GetJob(queue_pb2.GetJobRequest(id=job_id, **fields)).state


def test_acks_every_job_of_a_batch_with_its_own_result(qs, qname):
    for i in range(5):
        enqueue(qs, qname, {"n": i})
    leased = lease(qs, qname, max_jobs=5)
    results = ack_jobs(qs, *(ack_of(job, {"n": i}) for i, job in enumerate(leased)))
    assert [r.job.id for r in results] == [job.id for job in leased]
    assert all(r.error_code == "" and r.job.state == queue_pb2.JOB_STATE_COMPLETED for r in results)
    assert [json_format.MessageToDict(r.job.result) for r in results] == [
        {"n": i} for i in range(5)
    ]
    assert all(r.job.lease_token == "" for r in results)
    assert {state_of(qs, job.id) for job in leased} == {queue_pb2.JOB_STATE_COMPLETED}
    assert lease(qs, qname) == []


def test_a_stale_or_unknown_ack_fails_alone(qs, qname):
    for _ in range(3):
        enqueue(qs, qname, {})
    first, second, third = lease(qs, qname, max_jobs=3)
    forged = queue_pb2.JobAck(id=second.id, lease_token="0" * 32)
    missing = queue_pb2.JobAck(id=unique("nope"), lease_token="0" * 32)
    results = ack_jobs(qs, ack_of(first), forged, missing, ack_of(third))
    assert [r.error_code for r in results] == ["", "FAILED_PRECONDITION", "NOT_FOUND", ""]
    assert results[1].error_reason == "LEASE_LOST"
    assert second.id in results[1].error_message
    assert not results[1].HasField("job") and not results[2].HasField("job")
    assert state_of(qs, first.id) == state_of(qs, third.id) == queue_pb2.JOB_STATE_COMPLETED
    assert state_of(qs, second.id) == queue_pb2.JOB_STATE_LEASED, "a refused ack changes nothing"
    # acking again: every token is stale now but the untouched one
    again = ack_jobs(qs, ack_of(first), ack_of(second))
    assert [r.error_reason for r in again] == ["LEASE_LOST", ""]


def test_each_ack_is_audited_like_ack_job(stubs, qs, qname):
    namespace = unique("ns")
    enqueue(qs, qname, {}, namespace=namespace)
    enqueue(qs, qname, {}, namespace=namespace)
    leased = lease(qs, qname, max_jobs=2, namespace=namespace)
    ack_jobs(qs, *(ack_of(job) for job in leased), namespace=namespace)
    entries = stubs.admin.ListAuditEntries(
        admin_pb2.ListAuditEntriesRequest(namespace=namespace, action="ack")
    ).entries
    assert sorted(e.entity_id for e in entries) == sorted(job.id for job in leased)
    assert all(e.entity == "job" and e.version == 1 for e in entries)


def test_acks_free_the_slots_of_a_subscription(qs, qname):
    for i in range(4):
        enqueue(qs, qname, {"n": i})
    stream = Stream(qs, qname, max_in_flight=2)
    try:
        pushed = stream.take(2)
        assert stream.silent()
        ack_jobs(qs, *(ack_of(job) for job in pushed))
        assert len(stream.take(2)) == 2
    finally:
        stream.close()


OTHER = queue_pb2.JobAck(id="a", lease_token="t")


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ([OTHER] * 1000, "acks"),
        ([OTHER, OTHER], "acks"),
        ([queue_pb2.JobAck(id="b")], "acks[1].lease_token"),
        ([queue_pb2.JobAck(id="bad id!", lease_token="t")], "acks[1].id"),
    ],
    ids=["too-many", "twice", "no-token", "bad-id"],
)
def test_bad_batches_are_invalid_and_ack_nothing(qs, qname, extra, field):
    enqueue(qs, qname, {})
    [job] = lease(qs, qname)
    expect_error(lambda: ack_jobs(qs, ack_of(job), *extra), BAD, field=field)
    assert state_of(qs, job.id) == queue_pb2.JOB_STATE_LEASED


def test_an_empty_batch_is_invalid(qs):
    expect_error(lambda: ack_jobs(qs), BAD, field="acks")
