"""Retention policies and RunCleanup over a real channel, on both shapes: each
target with a dry run first, the precedence of job policies, expired records,
and bad input. Each test works in a namespace of its own, since policies are
per namespace."""

from __future__ import annotations

import time
import uuid
from typing import Any

import grpc
import pytest

from strata.v1 import admin_pb2, artifacts_pb2, artifacts_pb2_grpc, queue_pb2, records_pb2
from strata.v1 import transcripts_pb2 as tpb
from tests.contract.artifacts_support import BlobView, random_bytes, upload
from tests.contract.helpers import (
    ack,
    enqueue,
    expect_error,
    fail,
    from_now,
    lease,
    queue_stub,
    seconds,
    to_struct,
)
from tests.contract.transcript_helpers import append, create_transcript, transcript_stub

RECORDS = admin_pb2.RETENTION_TARGET_RECORDS
COMPLETED = admin_pb2.RETENTION_TARGET_COMPLETED_JOBS
DEAD = admin_pb2.RETENTION_TARGET_DEAD_JOBS
SEALED = admin_pb2.RETENTION_TARGET_SEALED_TRANSCRIPTS
ARTIFACTS = admin_pb2.RETENTION_TARGET_ARTIFACTS
AGE = 1.0
"""max_age of the policies under test: data written before a sleep of a little
more than AGE is old, data written after it is not."""


@pytest.fixture
def ns() -> str:
    return f"ret-{uuid.uuid4().hex[:12]}"


def set_policy(stubs: Any, ns: str, target: int, selector: str, age: float = AGE) -> Any:
    return stubs.admin.SetRetentionPolicy(
        admin_pb2.SetRetentionPolicyRequest(
            namespace=ns, target=target, selector=selector, max_age=seconds(age)
        )
    )


def cleanup(stubs: Any, **fields: Any) -> tuple[list[admin_pb2.Progress], admin_pb2.CleanupReport]:
    events = list(stubs.admin.RunCleanup(admin_pb2.RunCleanupRequest(**fields)))
    *progress, last = events
    assert last.HasField("report") and all(e.HasField("progress") for e in progress)
    return [e.progress for e in progress], last.report


def counts(report: admin_pb2.CleanupReport) -> dict[tuple[str, str], int]:
    return {(step.target, step.selector): step.count for step in report.steps}


def make_records(stubs: Any, ns: str, collection: str, ids: list[str], **fields: Any) -> None:
    for id in ids:
        stubs.records.CreateRecord(
            records_pb2.CreateRecordRequest(
                namespace=ns, collection=collection, record_id=id, data=to_struct({}), **fields
            )
        )


def present(stubs: Any, ns: str, collection: str, ids: list[str]) -> list[str]:
    found = stubs.records.BatchGetRecords(
        records_pb2.BatchGetRecordsRequest(namespace=ns, collection=collection, ids=ids)
    )
    return sorted(record.id for record in found.records)


def test_policy_lifecycle(stubs, ns):
    saved = set_policy(stubs, ns, RECORDS, "sessions", 30 * 86400)
    assert (saved.namespace, saved.target, saved.selector) == (ns, RECORDS, "sessions")
    assert saved.max_age.seconds == 30 * 86400 and saved.create_time == saved.update_time
    time.sleep(0.01)
    again = set_policy(stubs, ns, RECORDS, "sessions", 90 * 86400)
    assert again.max_age.seconds == 90 * 86400
    assert again.create_time == saved.create_time and again.update_time != saved.update_time
    set_policy(stubs, ns, DEAD, "")
    listed = stubs.admin.ListRetentionPolicies(
        admin_pb2.ListRetentionPoliciesRequest(namespace=ns)
    ).policies
    assert [(p.target, p.selector) for p in listed] == [(RECORDS, "sessions"), (DEAD, "")]
    assert listed[0] == again
    stubs.admin.DeleteRetentionPolicy(
        admin_pb2.DeleteRetentionPolicyRequest(namespace=ns, target=RECORDS, selector="sessions")
    )
    expect_error(
        lambda: stubs.admin.DeleteRetentionPolicy(
            admin_pb2.DeleteRetentionPolicyRequest(
                namespace=ns, target=RECORDS, selector="sessions"
            )
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    audit = stubs.admin.ListAuditEntries(
        admin_pb2.ListAuditEntriesRequest(namespace=ns, entity="retention")
    ).entries
    assert [(e.action, e.entity_id) for e in audit] == [
        ("delete_retention", "records/sessions"),
        ("set_retention", "dead_jobs/"),
        ("set_retention", "records/sessions"),
        ("set_retention", "records/sessions"),
    ]


def test_records_go_after_a_dry_run(stubs, ns):
    make_records(stubs, ns, "logs", ["old1", "old2", "old3"])
    make_records(stubs, ns, "keep", ["k1"])
    time.sleep(AGE + 0.2)
    make_records(stubs, ns, "logs", ["new1"])
    set_policy(stubs, ns, RECORDS, "logs")

    progress, report = cleanup(stubs, namespace=ns, dry_run=True)
    assert report.dry_run and counts(report)[("records", "logs")] == 3
    assert [step.namespace for step in report.steps if step.target == "records"] == [ns]
    assert all(p.done == 0 for p in progress)
    assert present(stubs, ns, "logs", ["old1", "old2", "old3", "new1"]) == [
        "new1",
        "old1",
        "old2",
        "old3",
    ]

    progress, report = cleanup(stubs, namespace=ns)
    assert not report.dry_run and counts(report)[("records", "logs")] == 3
    assert report.total == 3
    assert any(p.done == 3 and p.total == 3 for p in progress)
    assert present(stubs, ns, "logs", ["old1", "old2", "old3", "new1"]) == ["new1"]
    assert present(stubs, ns, "keep", ["k1"]) == ["k1"]
    audit = stubs.admin.ListAuditEntries(
        admin_pb2.ListAuditEntriesRequest(namespace=ns, action="retention")
    ).entries
    # One row for the batch, listing every record it removed.
    assert [(e.entity_id, sorted(e.entity_ids)) for e in audit] == [
        ("logs/", ["logs/old1", "logs/old2", "logs/old3"])
    ]
    assert counts(cleanup(stubs, namespace=ns)[1])[("records", "logs")] == 0


def finished_jobs(stubs: Any, ns: str, queue: str, completed: int, dead: int) -> list[str]:
    """Complete `completed` and kill `dead` jobs of `queue`; their ids."""
    qs = queue_stub(stubs.channel)
    ids = []
    for _ in range(completed):
        enqueue(qs, queue, namespace=ns)
        [job] = lease(qs, queue, namespace=ns)
        ack(qs, job, namespace=ns)
        ids.append(job.id)
    for _ in range(dead):
        enqueue(qs, queue, namespace=ns, max_attempts=1)
        [job] = lease(qs, queue, namespace=ns)
        assert fail(qs, job, namespace=ns).state == queue_pb2.JOB_STATE_DEAD
        ids.append(job.id)
    return ids


def job_ids(stubs: Any, ns: str, queue: str) -> set[str]:
    listed = queue_stub(stubs.channel).ListJobs(
        queue_pb2.ListJobsRequest(namespace=ns, queue=queue, page_size=1000)
    )
    return {job.id for job in listed.jobs}


def test_jobs_by_queue_and_namespace_wide_with_precedence(stubs, ns):
    finished_jobs(stubs, ns, "emails", completed=2, dead=1)
    kept = finished_jobs(stubs, ns, "ledger", completed=1, dead=1)
    other = finished_jobs(stubs, ns, "other", completed=1, dead=2)
    time.sleep(AGE + 0.2)
    fresh = finished_jobs(stubs, ns, "emails", completed=1, dead=0)
    set_policy(stubs, ns, COMPLETED, "")  # every queue ...
    set_policy(stubs, ns, COMPLETED, "ledger", 86400)  # ... but ledger's own wins
    set_policy(stubs, ns, DEAD, "emails")

    _, dry = cleanup(stubs, namespace=ns, dry_run=True)
    assert counts(dry) == {
        ("completed_jobs", ""): 3,  # emails 2 + other 1; not ledger's
        ("completed_jobs", "ledger"): 0,
        ("dead_jobs", "emails"): 1,
        ("default_completed_jobs", ""): 0,
        ("default_audit_log", ""): 0,
        ("default_request_log", ""): 0,
    }
    _, report = cleanup(stubs, namespace=ns)
    assert counts(report) == counts(dry)
    assert job_ids(stubs, ns, "emails") == set(fresh)
    assert job_ids(stubs, ns, "ledger") == set(kept)
    # other's dead jobs have no policy, so they stay; its completed job went.
    assert job_ids(stubs, ns, "other") == set(other[1:])


def test_default_keeps_completed_jobs_no_policy_covers(stubs, ns):
    kept = finished_jobs(stubs, ns, "q", completed=2, dead=1)
    time.sleep(AGE + 0.2)
    _, report = cleanup(stubs, namespace=ns)
    # The session servers keep completed jobs for a week by default.
    assert report.total == 0 and job_ids(stubs, ns, "q") == set(kept)


def test_all_namespaces_purges_expired_records(stubs, ns):
    make_records(stubs, ns, "tmp", ["e1", "e2"], expire_time=from_now(0.5))
    make_records(stubs, ns, "tmp", ["live"], expire_time=from_now(3600))
    time.sleep(0.7)
    _, dry = cleanup(stubs, all_namespaces=True, dry_run=True)
    assert counts(dry)[("expired_records", "")] >= 2
    _, report = cleanup(stubs, all_namespaces=True)
    assert counts(report)[("expired_records", "")] >= 2
    audit = stubs.admin.ListAuditEntries(
        admin_pb2.ListAuditEntriesRequest(namespace=ns, action="expire")
    ).entries
    assert sorted(id for e in audit for id in e.entity_ids) == ["tmp/e1", "tmp/e2"]
    assert {e.entity_id for e in audit} == {"tmp/"}
    assert present(stubs, ns, "tmp", ["e1", "e2", "live"]) == ["live"]
    # A namespace's own run leaves expiry to the all-namespace runs.
    assert ("expired_records", "") not in counts(cleanup(stubs, namespace=ns)[1])


def transcripts_left(ts: Any, ns: str, ids: list[str]) -> list[str]:
    left = []
    for id in ids:
        try:
            ts.GetTranscript(tpb.GetTranscriptRequest(namespace=ns, id=id))
            left.append(id)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND
    return left


def test_sealed_transcripts_go_after_a_dry_run(stubs, ns):
    ts = transcript_stub(stubs.channel)
    word = f"w{uuid.uuid4().hex[:10]}"
    sealed_empty = create_transcript(ts, namespace=ns, owner="o")
    sealed_full = create_transcript(ts, namespace=ns, owner="o")
    append(ts, sealed_full, [f"{word} one", "two", "three"], namespace=ns)
    still_open = create_transcript(ts, namespace=ns, owner="o")
    append(ts, still_open, [f"{word} open"], namespace=ns)
    for id in (sealed_empty, sealed_full):
        ts.SealTranscript(tpb.SealTranscriptRequest(namespace=ns, id=id))
    make_records(stubs, ns, "notes", ["n1"])
    stubs.records.GetRecord(records_pb2.GetRecordRequest(namespace=ns, collection="notes", id="n1"))
    time.sleep(AGE + 0.2)
    sealed_new = create_transcript(ts, namespace=ns, owner="o")
    ts.SealTranscript(tpb.SealTranscriptRequest(namespace=ns, id=sealed_new))
    everyone = [sealed_empty, sealed_full, still_open, sealed_new]
    saved = set_policy(stubs, ns, SEALED, "")
    assert (saved.target, saved.selector) == (SEALED, "")

    progress, report = cleanup(stubs, namespace=ns, dry_run=True)
    assert report.dry_run and counts(report)[("sealed_transcripts", "")] == 2
    assert all(p.done == 0 for p in progress)
    assert transcripts_left(ts, ns, everyone) == everyone

    progress, report = cleanup(stubs, namespace=ns)
    assert counts(report)[("sealed_transcripts", "")] == 2 and report.total == 2
    assert any(p.done == 2 and p.total == 2 for p in progress)
    assert transcripts_left(ts, ns, everyone) == [still_open, sealed_new]
    # The entries went with their transcript, search index included.
    [usage] = stubs.admin.GetUsage(admin_pb2.GetUsageRequest(namespace=ns)).namespaces
    assert (usage.transcript_count, usage.entry_count) == (2, 1)
    hits = ts.SearchTranscripts(tpb.SearchTranscriptsRequest(namespace=ns, query=word)).hits
    assert [h.transcript_id for h in hits] == [still_open]
    audit = stubs.admin.ListAuditEntries(
        admin_pb2.ListAuditEntriesRequest(namespace=ns, action="retention")
    ).entries
    assert sorted((e.entity, e.entity_id, e.version) for e in audit) == sorted(
        [("transcript", sealed_empty, 0), ("transcript", sealed_full, 3)]
    )
    # Records (cached ones too) are no business of this policy.
    assert present(stubs, ns, "notes", ["n1"]) == ["n1"]
    assert counts(cleanup(stubs, namespace=ns)[1])[("sealed_transcripts", "")] == 0


@pytest.fixture
def blob_view(server, shape, request) -> BlobView:
    return BlobView(server, request.getfixturevalue("s3") if shape == "postgres" else None)


def artifacts_left(arts: Any, ns: str, ids: list[str]) -> list[str]:
    left = []
    for id in ids:
        try:
            arts.GetArtifact(artifacts_pb2.GetArtifactRequest(namespace=ns, id=id))
            left.append(id)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND
    return left


def test_artifacts_by_kind_go_after_a_dry_run_and_their_blobs_at_the_sweep(stubs, ns, blob_view):
    arts = artifacts_pb2_grpc.ArtifactServiceStub(stubs.channel)
    only, shared = random_bytes(2000), random_bytes(2000)
    old_log = upload(arts, only, namespace=ns, kind="log", name="a.log")
    old_shared = upload(arts, shared, namespace=ns, kind="log", name="b.log")
    keeper = upload(arts, shared, namespace=ns, kind="bundle", name="b.bin")  # same blob
    time.sleep(AGE + 0.2)
    new_log = upload(arts, random_bytes(100), namespace=ns, kind="log", name="c.log")
    everything = [old_log.id, old_shared.id, keeper.id, new_log.id]
    set_policy(stubs, ns, ARTIFACTS, "log")

    _, report = cleanup(stubs, namespace=ns, dry_run=True)
    assert report.dry_run and counts(report)[("artifacts", "log")] == 2
    assert artifacts_left(arts, ns, everything) == everything

    _, report = cleanup(stubs, namespace=ns)
    assert counts(report)[("artifacts", "log")] == 2
    assert artifacts_left(arts, ns, everything) == [keeper.id, new_log.id]
    audit = stubs.admin.ListAuditEntries(
        admin_pb2.ListAuditEntriesRequest(namespace=ns, action="retention")
    ).entries
    assert sorted((e.entity, e.entity_id) for e in audit) == sorted(
        [("artifact", old_log.id), ("artifact", old_shared.id)]
    )
    # The blobs go at the sweep of an all-namespace run, but not one still named.
    assert blob_view.has(old_log.sha256)
    _, report = cleanup(stubs, all_namespaces=True)
    assert counts(report)[("orphan_blobs", "")] >= 1
    assert not blob_view.has(old_log.sha256)
    assert blob_view.has(keeper.sha256) and keeper.sha256 == old_shared.sha256


def test_a_kind_policy_wins_over_the_namespace_wide_one(stubs, ns):
    arts = artifacts_pb2_grpc.ArtifactServiceStub(stubs.channel)
    log = upload(arts, random_bytes(10), namespace=ns, kind="log", name="a.log")
    bundle = upload(arts, random_bytes(10), namespace=ns, kind="bundle", name="b.bin")
    time.sleep(AGE + 0.2)
    set_policy(stubs, ns, ARTIFACTS, "")
    set_policy(stubs, ns, ARTIFACTS, "log", 3600)  # logs: an hour
    _, dry = cleanup(stubs, namespace=ns, dry_run=True)
    assert counts(dry) == {
        ("artifacts", ""): 1,
        ("artifacts", "log"): 0,
        ("default_completed_jobs", ""): 0,
        ("default_audit_log", ""): 0,
        ("default_request_log", ""): 0,
    }
    names = {(step.target, step.selector): step.name for step in dry.steps}
    assert "every other kind" in names[("artifacts", "")]
    cleanup(stubs, namespace=ns)
    assert artifacts_left(arts, ns, [log.id, bundle.id]) == [log.id]
    # Sweep the bundle's blob now: other tests check the whole blob store.
    assert counts(cleanup(stubs, all_namespaces=True)[1])[("orphan_blobs", "")] >= 1


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"target": 0, "selector": "x", "max_age": 60}, "target"),
        ({"target": RECORDS, "selector": "", "max_age": 60}, "selector"),
        ({"target": RECORDS, "selector": "9bad", "max_age": 60}, "selector"),
        ({"target": DEAD, "selector": "no spaces", "max_age": 60}, "selector"),
        ({"target": COMPLETED, "selector": "", "max_age": 0}, "max_age"),
        ({"target": COMPLETED, "selector": "", "max_age": -5}, "max_age"),
        ({"target": COMPLETED, "selector": "", "max_age": 200 * 366 * 86400}, "max_age"),
        ({"target": 99, "selector": "x", "max_age": 60}, "target"),
        ({"target": SEALED, "selector": "x", "max_age": 60}, "selector"),
        ({"target": ARTIFACTS, "selector": "no spaces", "max_age": 60}, "selector"),
        ({"target": ARTIFACTS, "selector": "9log", "max_age": 60}, "selector"),
    ],
)
def test_bad_policies_change_nothing(stubs, ns, fields, field):
    request = admin_pb2.SetRetentionPolicyRequest(
        namespace=ns,
        target=fields["target"],
        selector=fields["selector"],
        max_age=seconds(fields["max_age"]) if fields["max_age"] >= 0 else None,
    )
    if fields["max_age"] < 0:
        request.max_age.seconds = fields["max_age"]
    expect_error(
        lambda: stubs.admin.SetRetentionPolicy(request),
        grpc.StatusCode.INVALID_ARGUMENT,
        field=field,
    )
    listed = stubs.admin.ListRetentionPolicies(
        admin_pb2.ListRetentionPoliciesRequest(namespace=ns)
    ).policies
    assert list(listed) == []


def test_bad_cleanup_requests(stubs):
    expect_error(
        lambda: cleanup(stubs, namespace="x", all_namespaces=True),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="namespace",
    )
    expect_error(
        lambda: cleanup(stubs, namespace="Bad!"),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="namespace",
    )
    expect_error(
        lambda: stubs.admin.DeleteRetentionPolicy(
            admin_pb2.DeleteRetentionPolicyRequest(target=0, selector="x")
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="target",
    )
