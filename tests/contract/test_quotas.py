"""Per-namespace storage quotas over a real channel, on both shapes: SetQuota and
ListQuotas, and a namespace at its quota refused on the next write of every kind,
with nothing of the refused write left behind."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from strata.v1 import (
    access_pb2,
    admin_pb2,
    artifacts_pb2,
    artifacts_pb2_grpc,
    queue_pb2,
    records_pb2,
    transaction_pb2,
    transcripts_pb2,
)
from tests.contract.archive_support import export, import_
from tests.contract.artifacts_support import BlobView, random_bytes, sha256, upload
from tests.contract.helpers import details_of, expect_error, queue_stub, raised_by, to_struct
from tests.contract.test_integrity import check, run_sql
from tests.contract.transcript_helpers import append, create_transcript, entry, transcript_stub


def fresh() -> str:
    return f"quota-{uuid.uuid4().hex[:12]}"


def set_quota(stubs: Any, ns: str, max_bytes: int) -> access_pb2.Quota:
    return stubs.admin.SetQuota(access_pb2.SetQuotaRequest(namespace=ns, max_bytes=max_bytes))


def quota_of(stubs: Any, ns: str) -> access_pb2.Quota | None:
    found = stubs.admin.ListQuotas(access_pb2.ListQuotasRequest(namespace=ns)).quotas
    assert len(found) <= 1
    return found[0] if found else None


def create(stubs: Any, ns: str, id: str, data: dict[str, Any]) -> records_pb2.Record:
    return stubs.records.CreateRecord(
        records_pb2.CreateRecordRequest(
            namespace=ns, collection="docs", record_id=id, data=to_struct(data)
        )
    )


def stored(stubs: Any, ns: str) -> int:
    """What GetUsage says the namespace stores, counted as quotas count it."""
    [found] = stubs.admin.GetUsage(admin_pb2.GetUsageRequest(namespace=ns)).namespaces
    return found.record_bytes + found.entry_bytes + found.artifact_stored_bytes


def refused(call: Callable[[], Any], ns: str, used: int, most: int) -> None:
    """`call` fails RESOURCE_EXHAUSTED with QuotaFailure naming the namespace and
    its figures."""
    error = raised_by(call)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
    info, _ = details_of(error)
    assert info.reason == "QUOTA_EXCEEDED"
    assert dict(info.metadata) == {
        "namespace": ns,
        "used_bytes": str(used),
        "max_bytes": str(most),
    }
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    failures = []
    for detail in status.details:
        if detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
            failure = error_details_pb2.QuotaFailure()
            detail.Unpack(failure)
            failures.append(failure)
    assert len(failures) == 1, status
    [violation] = failures[0].violations
    assert violation.subject == f"namespace:{ns}"
    assert violation.description == f"{used} of {most} bytes used"


def test_set_list_and_remove(stubs):
    ns = fresh()
    create(stubs, ns, "a", {"text": "x" * 200})
    saved = set_quota(stubs, ns, 10_000)
    assert (saved.namespace, saved.max_bytes) == (ns, 10_000)
    assert saved.used_bytes == stored(stubs, ns) > 200
    assert quota_of(stubs, ns) == saved

    every = stubs.admin.ListQuotas(access_pb2.ListQuotasRequest()).quotas
    assert saved in every
    names = [q.namespace for q in every]
    assert names == sorted(names)

    changed = set_quota(stubs, ns, 20_000)
    assert (changed.max_bytes, changed.used_bytes) == (20_000, saved.used_bytes)
    gone = set_quota(stubs, ns, 0)
    assert (gone.max_bytes, gone.used_bytes) == (0, saved.used_bytes)
    assert quota_of(stubs, ns) is None
    create(stubs, ns, "b", {"text": "y" * 20_000})  # no quota: no limit

    audit = stubs.admin.ListAuditEntries(
        admin_pb2.ListAuditEntriesRequest(namespace=ns, entity="quota")
    ).entries
    assert [(e.action, e.entity_id) for e in audit] == [
        ("delete_quota", ns),
        ("set_quota", ns),
        ("set_quota", ns),
    ]


def test_bad_quota_requests(stubs):
    expect_error(
        lambda: set_quota(stubs, fresh(), -1),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="max_bytes",
    )
    expect_error(
        lambda: set_quota(stubs, "Not Valid", 10),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="namespace",
    )
    expect_error(
        lambda: stubs.admin.ListQuotas(access_pb2.ListQuotasRequest(namespace="Not Valid")),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="namespace",
    )


def test_the_figure_follows_every_write(stubs):
    ns = fresh()
    set_quota(stubs, ns, 1 << 30)
    create(stubs, ns, "a", {"text": "x" * 300})
    ts = transcript_stub(stubs.channel)
    transcript = create_transcript(ts, namespace=ns)
    append(ts, transcript, ["hello", "world" * 40], namespace=ns)
    arts = artifacts_pb2_grpc.ArtifactServiceStub(stubs.channel)
    artifact = upload(arts, random_bytes(5000), namespace=ns)
    stubs.records.UpdateRecord(
        records_pb2.UpdateRecordRequest(
            namespace=ns, collection="docs", id="a", data=to_struct({"text": "short"})
        )
    )
    assert quota_of(stubs, ns).used_bytes == stored(stubs, ns)

    arts.DeleteArtifact(artifacts_pb2.DeleteArtifactRequest(namespace=ns, id=artifact.id))
    ts.DeleteTranscript(transcripts_pb2.DeleteTranscriptRequest(namespace=ns, id=transcript))
    stubs.records.DeleteRecord(
        records_pb2.DeleteRecordRequest(namespace=ns, collection="docs", id="a")
    )
    assert quota_of(stubs, ns).used_bytes == stored(stubs, ns) == 0


def test_records_fill_a_namespace_until_refused(stubs):
    ns = fresh()
    set_quota(stubs, ns, 3000)
    made = 0
    while True:
        try:
            create(stubs, ns, f"r{made}", {"text": "z" * 100})
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
            break
        made += 1
        assert made < 100, "never refused"
    quota = quota_of(stubs, ns)
    assert quota.used_bytes == stored(stubs, ns) <= 3000
    assert quota.used_bytes + quota.used_bytes // made > 3000  # the next one did not fit
    expect_error(
        lambda: stubs.records.GetRecord(
            records_pb2.GetRecordRequest(namespace=ns, collection="docs", id=f"r{made}")
        ),
        grpc.StatusCode.NOT_FOUND,
    )


def test_a_namespace_at_its_quota_refuses_the_next_write_of_every_kind(stubs, server):
    ns = fresh()
    set_quota(stubs, ns, 1 << 30)
    # Fill it with every kind of data.
    create(stubs, ns, "a", {"text": "x" * 500})
    ts = transcript_stub(stubs.channel)
    transcript = create_transcript(ts, namespace=ns)
    append(ts, transcript, ["first entry", "second entry"], namespace=ns)
    arts = artifacts_pb2_grpc.ArtifactServiceStub(stubs.channel)
    upload(arts, random_bytes(4000), namespace=ns, name="first.bin")
    used = stored(stubs, ns)
    assert quota_of(stubs, ns).used_bytes == used
    at_quota = set_quota(stubs, ns, used)  # exactly at its quota now
    assert at_quota.used_bytes == at_quota.max_bytes == used

    refused(lambda: create(stubs, ns, "b", {}), ns, used, used)
    refused(
        lambda: stubs.records.UpdateRecord(
            records_pb2.UpdateRecordRequest(
                namespace=ns, collection="docs", id="a", data=to_struct({"text": "x" * 501})
            )
        ),
        ns,
        used,
        used,
    )
    refused(lambda: append(ts, transcript, ["one more"], namespace=ns), ns, used, used)
    refused(lambda: upload(arts, b"tiny", namespace=ns, name="second.bin"), ns, used, used)

    # A Commit of several writes: refused as a whole, none of it applied.
    qs = queue_stub(stubs.channel)
    queue = f"q-{uuid.uuid4().hex[:8]}"
    commit = transaction_pb2.CommitRequest(
        namespace=ns,
        writes=[
            transaction_pb2.Write(
                enqueue=transaction_pb2.EnqueueJobWrite(queue=queue, payload=to_struct({"n": 1}))
            ),
            transaction_pb2.Write(
                append=transaction_pb2.AppendEntriesWrite(
                    id=transcript, entries=[entry("in a commit")]
                )
            ),
            transaction_pb2.Write(
                create=transaction_pb2.CreateRecordWrite(
                    collection="docs", record_id="c1", data=to_struct({"k": "v"})
                )
            ),
            transaction_pb2.Write(
                create=transaction_pb2.CreateRecordWrite(collection="docs", record_id="c2")
            ),
        ],
    )
    refused(lambda: stubs.tx.Commit(commit), ns, used, used)
    for id in ("b", "c1", "c2"):
        expect_error(
            lambda id=id: stubs.records.GetRecord(
                records_pb2.GetRecordRequest(namespace=ns, collection="docs", id=id)
            ),
            grpc.StatusCode.NOT_FOUND,
        )
    got = ts.GetTranscript(transcripts_pb2.GetTranscriptRequest(namespace=ns, id=transcript))
    assert got.next_seq == 3
    stats = qs.GetQueueStats(queue_pb2.GetQueueStatsRequest(namespace=ns, queue=queue))
    assert (stats.available, stats.scheduled) == (0, 0)
    listed = arts.ListArtifacts(artifacts_pb2.ListArtifactsRequest(namespace=ns)).artifacts
    assert [a.name for a in listed] == ["first.bin"]
    assert quota_of(stubs, ns).used_bytes == stored(stubs, ns) == used

    # Writes that store nothing more still pass; freeing room lets writes in again.
    qs.Enqueue(queue_pb2.EnqueueRequest(namespace=ns, queue=queue))
    stubs.records.UpdateRecord(
        records_pb2.UpdateRecordRequest(
            namespace=ns, collection="docs", id="a", data=to_struct({"text": "x" * 400})
        )
    )
    create(stubs, ns, "fits", {})
    assert quota_of(stubs, ns).used_bytes == stored(stubs, ns) <= used


def test_an_upload_that_does_not_fit_stores_no_blob(stubs, server, shape, request):
    blobs = BlobView(server, request.getfixturevalue("s3") if shape == "postgres" else None)
    ns = fresh()
    create(stubs, ns, "a", {"n": 1})
    used = set_quota(stubs, ns, stored(stubs, ns) + 1000).used_bytes
    content = random_bytes(5000)  # incompressible: stored as 5000 bytes
    refused(
        lambda: upload(
            artifacts_pb2_grpc.ArtifactServiceStub(stubs.channel), content, namespace=ns
        ),
        ns,
        used,
        used + 1000,
    )
    assert not [key for key in blobs.blobs() if sha256(content) in key]
    assert quota_of(stubs, ns).used_bytes == used


def test_an_import_past_the_quota_imports_nothing(stubs):
    source = fresh()
    for i in range(5):
        create(stubs, source, f"r{i}", {"text": "w" * 300})
    archive = export(stubs.channel, source).data

    ns = fresh()
    create(stubs, ns, "mine", {"n": 1})
    used = set_quota(stubs, ns, stored(stubs, ns) + 500).used_bytes
    refused(lambda: import_(stubs.channel, archive, ns), ns, used, used + 500)
    listed = stubs.records.ListRecords(
        records_pb2.ListRecordsRequest(namespace=ns, collection="docs")
    ).records
    assert [r.id for r in listed] == ["mine"]
    assert quota_of(stubs, ns).used_bytes == used

    set_quota(stubs, ns, 0)
    import_(stubs.channel, archive, ns)
    assert quota_of(stubs, ns) is None
    assert set_quota(stubs, ns, 1 << 30).used_bytes == stored(stubs, ns) > used


def test_a_counter_repair_is_never_refused(stubs, server):
    ns = fresh()
    ts = transcript_stub(stubs.channel)
    transcript = create_transcript(ts, namespace=ns)
    append(ts, transcript, ["x" * 300, "y" * 300], namespace=ns)
    true_size = stored(stubs, ns)
    # Damage the counter behind the server's back, then set the quota to the
    # (wrong) figure: the namespace is at its quota by its own count.
    where = "WHERE namespace = %s AND id = %s"
    run_sql(server, f"UPDATE transcripts SET size_bytes = 10 {where}", (ns, transcript))
    low = set_quota(stubs, ns, 1).used_bytes
    set_quota(stubs, ns, low)
    assert low < true_size

    report = check(stubs, namespace=ns, repair=True)
    # (Blob findings are the whole store's: other tests leave orphans to sweep.)
    found = [(f.entity_id, f.repaired) for f in report.findings if f.namespace == ns]
    assert found == [(transcript, True)]
    assert quota_of(stubs, ns).used_bytes == stored(stubs, ns) == true_size > low
    refused(lambda: append(ts, transcript, ["z"], namespace=ns), ns, true_size, low)


def test_concurrent_writers_never_take_a_namespace_past_its_quota(stubs):
    ns = fresh()
    writers = 8
    attempts: list[tuple[int, int]] = [(w, i) for w in range(writers) for i in range(12)]
    outcomes: list[grpc.StatusCode] = []

    def write(item: tuple[int, int]) -> None:
        try:
            create(stubs, ns, f"w{item[0]}-{item[1]}", {"text": "q" * 200})
            outcomes.append(grpc.StatusCode.OK)
        except grpc.RpcError as error:
            outcomes.append(error.code())

    # Writes race each other and a quota that appears, then shrinks, under them.
    with ThreadPoolExecutor(writers) as pool:
        done = [pool.submit(write, item) for item in attempts[:32]]
        set_quota(stubs, ns, 1 << 20)
        done += [pool.submit(write, item) for item in attempts[32:64]]
        lowered = set_quota(stubs, ns, 8000)
        done += [pool.submit(write, item) for item in attempts[64:]]
        for future in done:
            future.result()
    assert set(outcomes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in outcomes
    quota = quota_of(stubs, ns)
    assert quota.used_bytes == stored(stubs, ns)
    # Past the quota only by what it stored when the quota was lowered (a lower
    # quota refuses what grows, and deletes nothing).
    assert quota.used_bytes <= max(8000, lowered.used_bytes)
