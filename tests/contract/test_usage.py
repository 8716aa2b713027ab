"""AdminService.GetUsage over a real channel, on both shapes."""

from __future__ import annotations

import json
import time
import uuid

import grpc

from strata.v1 import admin_pb2, artifacts_pb2_grpc, queue_pb2, records_pb2
from strata_server.core.transcript_rules import ENTRY_OVERHEAD
from tests.contract.artifacts_support import random_bytes, text_log, upload
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
from tests.contract.transcript_helpers import append, create_transcript, transcript_stub


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
    expect_error(
        lambda: usage(stubs, owner="x" * 257),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="owner",
    )
    expect_error(
        lambda: usage(stubs, owner="tab\there"),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="owner",
    )


def content(stubs, ns: str) -> dict[str, object]:
    """Two owners' transcripts and artifacts in `ns` (one blob uploaded twice, a
    compressible log); what GetUsage should say of them."""
    ts = transcript_stub(stubs.channel)
    first = create_transcript(ts, namespace=ns, owner="alice")
    append(ts, first, ["hello", "world!"], role="user", namespace=ns)  # 4+5 + 4+6 bytes
    second = create_transcript(ts, namespace=ns, owner="bob")
    append(ts, second, ["x" * 100], role="assistant", namespace=ns)  # 9+100 bytes
    create_transcript(ts, namespace=ns, owner="bob")
    arts = artifacts_pb2_grpc.ArtifactServiceStub(stubs.channel)
    blob = random_bytes(3000)
    log = text_log(400)
    uploaded = [
        upload(arts, blob, namespace=ns, owner="alice", kind="bundle", name="a.bin"),
        upload(arts, blob, namespace=ns, owner="bob", kind="bundle", name="b.bin"),
        upload(arts, log, namespace=ns, owner="bob", kind="log", name="build.log"),
    ]
    assert uploaded[2].stored_size < len(log)  # compressed
    return {"blob": blob, "log": log, "uploaded": uploaded}


def test_transcripts_artifacts_and_dedup(stubs):
    ns = f"use-{uuid.uuid4().hex[:12]}"
    made = content(stubs, ns)
    blob, log, uploaded = made["blob"], made["log"], made["uploaded"]
    [found] = usage(stubs, namespace=ns).namespaces
    assert (found.transcript_count, found.entry_count, found.entry_bytes) == (
        3,
        3,
        19 + 109 + 3 * ENTRY_OVERHEAD,
    )
    assert found.record_count == 0 and found.job_count == 0
    kinds = {k.kind: k for k in found.artifact_kinds}
    assert [k.kind for k in found.artifact_kinds] == ["bundle", "log"]
    assert (kinds["bundle"].artifact_count, kinds["bundle"].artifact_bytes) == (2, 2 * len(blob))
    assert kinds["bundle"].artifact_stored_bytes == 2 * uploaded[0].stored_size
    assert (kinds["log"].artifact_count, kinds["log"].artifact_bytes) == (1, len(log))
    assert kinds["log"].artifact_stored_bytes == uploaded[2].stored_size
    assert found.artifact_count == 3
    assert found.artifact_bytes == 2 * len(blob) + len(log)
    assert found.artifact_stored_bytes == sum(k.artifact_stored_bytes for k in kinds.values())
    assert found.blobs == admin_pb2.BlobUsage(
        blob_count=2,
        referenced_bytes=2 * len(blob) + len(log),
        unique_bytes=len(blob) + len(log),
        stored_bytes=uploaded[0].stored_size + uploaded[2].stored_size,
        dedup_saved_bytes=len(blob),
    )
    # One namespace: the totals are its figures.
    total = usage(stubs, namespace=ns).total
    assert total.blobs == found.blobs and total.artifact_kinds == found.artifact_kinds
    assert total.entry_bytes == found.entry_bytes


def test_owner_filter_and_totals_count_a_shared_blob_once(stubs):
    ns = f"use-{uuid.uuid4().hex[:12]}"
    made = content(stubs, ns)
    blob, log = made["blob"], made["log"]
    stubs.records.CreateRecord(
        records_pb2.CreateRecordRequest(namespace=ns, collection="c", record_id="r")
    )
    stubs.records.CreateRecord(
        records_pb2.CreateRecordRequest(namespace=ns, collection="c", record_id="b", owner="bob")
    )
    [bob] = usage(stubs, namespace=ns, owner="bob").namespaces
    assert (bob.transcript_count, bob.entry_count, bob.entry_bytes) == (2, 1, 109 + ENTRY_OVERHEAD)
    assert bob.record_count == 1 and [c.collection for c in bob.collections] == ["c"]
    assert {k.kind: k.artifact_count for k in bob.artifact_kinds} == {"bundle": 1, "log": 1}
    assert bob.blobs.blob_count == 2 and bob.blobs.dedup_saved_bytes == 0
    [nobody] = usage(stubs, namespace=ns, owner="nobody").namespaces
    assert nobody == admin_pb2.NamespaceUsage(namespace=ns, blobs=admin_pb2.BlobUsage())

    # The same blob from a second namespace: stored once over both.
    other = f"use-{uuid.uuid4().hex[:12]}"
    arts = artifacts_pb2_grpc.ArtifactServiceStub(stubs.channel)
    upload(arts, blob, namespace=other, owner="carol", kind="bundle", name="c.bin")
    every = usage(stubs, all_namespaces=True)
    mine = {u.namespace: u for u in every.namespaces if u.namespace in (ns, other)}
    assert mine[other].blobs.blob_count == 1
    assert every.total.blobs.blob_count < sum(u.blobs.blob_count for u in every.namespaces)
    assert every.total.artifact_count == sum(u.artifact_count for u in every.namespaces)
    assert every.total.transcript_count == sum(u.transcript_count for u in every.namespaces)
    bundle = {k.kind: k for k in every.total.artifact_kinds}["bundle"]
    assert bundle.artifact_count >= 3
    assert every.total.blobs.referenced_bytes >= 3 * len(blob) + len(log)
    assert every.total.blobs.dedup_saved_bytes >= 2 * len(blob)
