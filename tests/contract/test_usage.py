"""AdminService.GetUsage over a real channel, on both shapes."""

from __future__ import annotations

import json
import time
import uuid

import grpc

from strata.v1 import admin_pb2, queue_pb2, records_pb2
from tests.contract.helpers import (
    ack,
    enqueue,
    expect_error,
    from_now,
    lease,
    queue_stub,
    seconds,
    to_struct,
)


def usage(stubs, **fields) -> admin_pb2.GetUsageResponse:
    return stubs.admin.GetUsage(admin_pb2.GetUsageRequest(**fields))


def test_records_and_jobs_of_a_namespace(stubs, shape):
    ns = f"use-{uuid.uuid4().hex[:12]}"
    empty = usage(stubs, namespace=ns)
    assert [(u.namespace, u.record_count, u.job_count) for u in empty.namespaces] == [(ns, 0, 0)]

    datas = {"a": {"text": "x" * 100}, "b": {"n": 1}, "c": {}}
    for id, data in datas.items():
        stubs.records.CreateRecord(
            records_pb2.CreateRecordRequest(
                namespace=ns, collection="docs", record_id=id, data=to_struct(data)
            )
        )
    stubs.records.CreateRecord(
        records_pb2.CreateRecordRequest(
            namespace=ns, collection="other", record_id="o", data=to_struct({"k": "v"})
        )
    )
    stubs.records.CreateRecord(  # expired by the time usage is asked: not counted
        records_pb2.CreateRecordRequest(
            namespace=ns, collection="docs", record_id="gone", expire_time=from_now(0.3)
        )
    )
    qs = queue_stub(stubs.channel)
    for _ in range(3):
        enqueue(qs, "q", namespace=ns)
    [job] = lease(qs, "q", namespace=ns)
    ack(qs, job, namespace=ns)
    enqueue(qs, "q", namespace=ns, delay=seconds(3600))

    time.sleep(0.4)
    [found] = usage(stubs, namespace=ns).namespaces
    assert found.namespace == ns and found.record_count == 4
    by_collection = {c.collection: c for c in found.collections}
    assert [c.collection for c in found.collections] == ["docs", "other"]
    assert by_collection["docs"].record_count == 3
    compact = sum(len(json.dumps(d, separators=(",", ":"))) for d in datas.values())
    # Each engine prints JSON its own way: exact on SQLite, a few bytes more on PostgreSQL.
    if shape == "sqlite":
        assert by_collection["docs"].record_bytes == compact
    else:
        assert compact <= by_collection["docs"].record_bytes <= compact + 3 * 4
    assert found.record_bytes == sum(c.record_bytes for c in found.collections)
    assert found.job_count == 4
    assert {(j.state, j.count) for j in found.jobs} == {
        (queue_pb2.JOB_STATE_AVAILABLE, 2),
        (queue_pb2.JOB_STATE_COMPLETED, 1),
        (queue_pb2.JOB_STATE_SCHEDULED, 1),
    }


def test_all_namespaces_and_totals(stubs):
    ns = f"use-{uuid.uuid4().hex[:12]}"
    stubs.records.CreateRecord(
        records_pb2.CreateRecordRequest(namespace=ns, collection="c", record_id="r")
    )
    every = usage(stubs, all_namespaces=True)
    names = [u.namespace for u in every.namespaces]
    assert ns in names and names == sorted(names)
    assert every.total.namespace == ""
    assert every.total.record_count == sum(u.record_count for u in every.namespaces)
    assert every.total.record_bytes == sum(u.record_bytes for u in every.namespaces)
    assert every.total.job_count == sum(u.job_count for u in every.namespaces)
    assert sum(j.count for j in every.total.jobs) == every.total.job_count


def test_bad_usage_requests(stubs):
    expect_error(
        lambda: usage(stubs, namespace="x", all_namespaces=True),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="namespace",
    )
    expect_error(
        lambda: usage(stubs, namespace="Not Valid"),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="namespace",
    )
