"""Parent references over a real channel, on both shapes: a transcript or an artifact
names the record it belongs to; lists filter by it; deleting the record refuses
(listing the children) or cascades (auditing each child); CheckIntegrity reports
children whose record is gone and clears their parent on repair; export/import
carries the reference."""

from __future__ import annotations

import time
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from strata.v1 import admin_pb2, artifacts_pb2, artifacts_pb2_grpc, records_pb2
from strata.v1 import transcripts_pb2 as tpb
from tests.contract.archive_support import export, import_, rows
from tests.contract.artifacts_support import upload
from tests.contract.helpers import (
    commit,
    create,
    create_write,
    delete,
    delete_write,
    expect_error,
    from_now,
    raised_by,
    unique,
)
from tests.contract.test_integrity import check, run_sql
from tests.contract.transcript_helpers import (
    Stream,
    append,
    create_transcript,
    messages_until,
    read_request,
    transcript_stub,
)
from tests.support.server import StrataProcess


def parent(collection: str, id: str) -> records_pb2.ParentRecord:
    return records_pb2.ParentRecord(collection=collection, id=id)


class Children:
    """A namespace of its own, and the stubs to make and find children in it."""

    def __init__(self, stubs: Any) -> None:
        self.stubs = stubs
        self.ns = unique("par")
        self.ts = transcript_stub(stubs.channel)
        self.arts = artifacts_pb2_grpc.ArtifactServiceStub(stubs.channel)

    def record(self, collection: str = "runs", id: str | None = None) -> str:
        id = id or unique("r")
        create(self.stubs, collection, id, {"n": 1}, namespace=self.ns)
        return id

    def transcript(self, of: records_pb2.ParentRecord | None = None, **fields: Any) -> str:
        if of is not None:
            fields["parent"] = of
        return create_transcript(self.ts, namespace=self.ns, **fields)

    def artifact(self, of: records_pb2.ParentRecord | None = None) -> str:
        fields: dict[str, Any] = {"namespace": self.ns}
        if of is not None:
            fields["parent"] = of
        return upload(self.arts, b"log line\n" * 10, **fields).id

    def get_transcript(self, id: str) -> tpb.Transcript:
        return self.ts.GetTranscript(tpb.GetTranscriptRequest(namespace=self.ns, id=id))

    def get_artifact(self, id: str) -> artifacts_pb2.Artifact:
        return self.arts.GetArtifact(artifacts_pb2.GetArtifactRequest(namespace=self.ns, id=id))

    def transcripts_of(self, of: records_pb2.ParentRecord, **fields: Any) -> list[str]:
        request = tpb.ListTranscriptsRequest(namespace=self.ns, parent=of, **fields)
        return [t.id for t in self.ts.ListTranscripts(request).transcripts]

    def artifacts_of(self, of: records_pb2.ParentRecord, **fields: Any) -> list[str]:
        request = artifacts_pb2.ListArtifactsRequest(namespace=self.ns, parent=of, **fields)
        return [a.id for a in self.arts.ListArtifacts(request).artifacts]

    def audit(self, entity: str, id: str) -> list[admin_pb2.AuditEntry]:
        request = admin_pb2.ListAuditEntriesRequest(namespace=self.ns, entity=entity, entity_id=id)
        return list(self.stubs.admin.ListAuditEntries(request).entries)


def precondition_failure(error: grpc.RpcError) -> error_details_pb2.PreconditionFailure:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert isinstance(status, status_pb2.Status)
    for detail in status.details:
        if detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            found = error_details_pb2.PreconditionFailure()
            detail.Unpack(found)
            return found
    raise AssertionError(f"no PreconditionFailure in {status}")


def test_children_name_their_parent_and_lists_filter_by_it(stubs):
    c = Children(stubs)
    run, other = c.record(), c.record()
    mine = parent("runs", run)
    transcript = c.transcript(mine, owner="ada")
    artifact = c.artifact(mine)
    c.transcript(parent("runs", other))
    c.artifact(parent("runs", other))
    loose_transcript, loose_artifact = c.transcript(), c.artifact()

    assert c.get_transcript(transcript).parent == mine
    assert c.get_artifact(artifact).parent == mine
    assert not c.get_transcript(loose_transcript).HasField("parent")
    assert not c.get_artifact(loose_artifact).HasField("parent")
    assert c.transcripts_of(mine) == [transcript]
    assert c.artifacts_of(mine) == [artifact]
    # The parent filter combines with the others.
    assert c.transcripts_of(mine, owner="ada") == [transcript]
    assert c.transcripts_of(mine, owner="bob") == []
    assert c.artifacts_of(mine, kind="diff") == []
    # Pages of a parent's children follow on with the same filter.
    more = [c.transcript(mine) for _ in range(2)]
    first = c.ts.ListTranscripts(
        tpb.ListTranscriptsRequest(namespace=c.ns, parent=mine, page_size=2)
    )
    rest = c.ts.ListTranscripts(
        tpb.ListTranscriptsRequest(
            namespace=c.ns, parent=mine, page_size=2, page_token=first.next_page_token
        )
    )
    listed = [t.id for t in (*first.transcripts, *rest.transcripts)]
    assert sorted(listed) == sorted([transcript, *more]) and not rest.next_page_token


def test_a_parent_need_not_exist_yet(stubs):
    """Allowed: a child may be made before its record (an upload before the commit
    that creates the record); CheckIntegrity reports it while the record is missing."""
    c = Children(stubs)
    ahead = parent("runs", unique("later"))
    transcript = c.transcript(ahead)
    assert c.get_transcript(transcript).parent == ahead
    found = check(stubs, namespace=c.ns).findings
    assert [(f.check, f.entity, f.entity_id) for f in found] == [
        ("parents", "transcript", transcript)
    ]
    c.record("runs", ahead.id)
    assert check(stubs, namespace=c.ns).findings == []


def test_a_malformed_parent_is_invalid_argument(stubs):
    c = Children(stubs)
    bad_create = tpb.CreateTranscriptRequest(
        namespace=c.ns, transcript_id=unique("t"), parent=parent("runs", "")
    )
    expect_error(
        lambda: c.ts.CreateTranscript(bad_create), grpc.StatusCode.INVALID_ARGUMENT, field="parent"
    )
    bad_list = tpb.ListTranscriptsRequest(namespace=c.ns, parent=parent("no spaces", "x"))
    expect_error(
        lambda: c.ts.ListTranscripts(bad_list),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="parent.collection",
    )
    expect_error(
        lambda: upload(c.arts, b"x", namespace=c.ns, parent=parent("", "r1")),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="header.parent",
    )
    listed = c.ts.ListTranscripts(tpb.ListTranscriptsRequest(namespace=c.ns)).transcripts
    assert list(listed) == []


def test_deleting_a_record_with_children_is_refused_listing_them(stubs):
    c = Children(stubs)
    run = c.record()
    mine = parent("runs", run)
    transcript, artifact = c.transcript(mine), c.artifact(mine)

    error = raised_by(lambda: delete(stubs, "runs", run, namespace=c.ns))
    expect_error(
        lambda: delete(stubs, "runs", run, namespace=c.ns),
        grpc.StatusCode.FAILED_PRECONDITION,
        "HAS_CHILDREN",
        children="2",
        collection="runs",
        id=run,
    )
    violations = {(v.type, v.subject) for v in precondition_failure(error).violations}
    assert violations == {("transcript", transcript), ("artifact", artifact)}
    # Nothing was deleted.
    stubs.records.GetRecord(records_pb2.GetRecordRequest(namespace=c.ns, collection="runs", id=run))
    assert c.get_transcript(transcript).parent == mine
    assert c.get_artifact(artifact).parent == mine
    assert [e.action for e in c.audit("record", f"runs/{run}")] == ["create"]
    # Once its children are gone one by one, the record deletes without cascade.
    c.ts.DeleteTranscript(tpb.DeleteTranscriptRequest(namespace=c.ns, id=transcript))
    c.arts.DeleteArtifact(artifacts_pb2.DeleteArtifactRequest(namespace=c.ns, id=artifact))
    delete(stubs, "runs", run, namespace=c.ns)


def test_a_refused_delete_in_a_commit_writes_nothing(stubs):
    c = Children(stubs)
    run = c.record()
    c.transcript(parent("runs", run))
    other = unique("o")
    expect_error(
        lambda: commit(
            stubs,
            [create_write("runs", other, {"a": 1}), delete_write("runs", run)],
            namespace=c.ns,
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "HAS_CHILDREN",
        write_index="1",
    )
    missing = records_pb2.GetRecordRequest(namespace=c.ns, collection="runs", id=other)
    expect_error(lambda: stubs.records.GetRecord(missing), grpc.StatusCode.NOT_FOUND)


def test_cascade_deletes_the_children_and_audits_each(stubs):
    c = Children(stubs)
    run, kept = c.record(), c.record()
    mine = parent("runs", run)
    transcript, artifact = c.transcript(mine), c.artifact(mine)
    append(c.ts, transcript, ["hello", "world"], namespace=c.ns)
    survivor = c.transcript(parent("runs", kept))

    delete(stubs, "runs", run, namespace=c.ns, cascade=True)

    expect_error(lambda: c.get_transcript(transcript), grpc.StatusCode.NOT_FOUND)
    expect_error(lambda: c.get_artifact(artifact), grpc.StatusCode.NOT_FOUND)
    assert c.transcripts_of(mine) == [] and c.artifacts_of(mine) == []
    assert c.get_transcript(survivor).parent == parent("runs", kept)
    [record_delete] = [e for e in c.audit("record", f"runs/{run}") if e.action == "delete"]
    for entity, id in (("transcript", transcript), ("artifact", artifact)):
        [gone] = [e for e in c.audit(entity, id) if e.action == "delete"]
        assert gone.actor == record_delete.actor
        assert gone.time == record_delete.time  # one transaction
    # A transcript of the same id starts empty: no entry of the cascaded one is left.
    c.transcript(transcript_id=transcript)
    assert c.get_transcript(transcript).next_seq == 1
    assert check(stubs, namespace=c.ns).findings == []


def test_a_cascade_ends_the_followers_of_its_transcripts(stubs):
    c = Children(stubs)
    run = c.record()
    transcript = c.transcript(parent("runs", run))
    request = read_request(transcript, follow=True, namespace=c.ns)
    # Well inside the 300 s safety re-check: only the cascade's wakeup ends it in time.
    call = c.ts.ReadTranscript(request, timeout=20)
    messages_until(call, Stream(), lambda s: "up_to_date" in s.events)
    delete(stubs, "runs", run, namespace=c.ns, cascade=True)
    error = raised_by(lambda: next(call))
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_cascade_in_a_commit(stubs):
    c = Children(stubs)
    run = c.record()
    transcript = c.transcript(parent("runs", run))
    response = commit(stubs, [delete_write("runs", run, cascade=True)], namespace=c.ns)
    assert response.results[0].deleted.existed
    expect_error(lambda: c.get_transcript(transcript), grpc.StatusCode.NOT_FOUND)


def test_children_of_a_gone_record_are_found_and_their_parent_cleared(stubs, server):
    c = Children(stubs)
    run, alive = c.record(), c.record()
    gone = parent("runs", run)
    transcript, artifact = c.transcript(gone), c.artifact(gone)
    healthy = c.transcript(parent("runs", alive))
    # The record goes behind the children's back, as a retention purge removes it.
    run_sql(
        server,
        "DELETE FROM records WHERE namespace = %s AND collection = %s AND id = %s",
        (c.ns, "runs", run),
    )

    found = check(stubs, namespace=c.ns)
    problems = {(f.entity, f.entity_id): f for f in found.findings}
    assert set(problems) == {("transcript", transcript), ("artifact", artifact)}
    assert all(f.check == "parents" and f.repairable and not f.repaired for f in found.findings)
    assert f"runs/{run}" in problems[("transcript", transcript)].problem
    assert dict((k.check, k.count) for k in found.checked)["parents"] == 3

    repaired = check(stubs, namespace=c.ns, repair=True)
    assert repaired.repaired == 2
    assert check(stubs, namespace=c.ns).findings == []
    # The children and their content stay; only the reference went, audited.
    assert not c.get_transcript(transcript).HasField("parent")
    assert not c.get_artifact(artifact).HasField("parent")
    assert c.get_transcript(healthy).parent == parent("runs", alive)
    [cleared] = [e for e in c.audit("artifact", artifact) if e.action == "update"]
    assert cleared.actor == "integrity" and list(cleared.changed_fields) == ["parent"]


def test_an_expired_record_is_a_gone_parent(stubs):
    c = Children(stubs)
    run = unique("r")
    create(stubs, "runs", run, {"n": 1}, namespace=c.ns, expire_time=from_now(1))
    transcript = c.transcript(parent("runs", run))
    time.sleep(1.5)  # expired, not yet purged: no read sees it, nor does the check
    found = check(stubs, namespace=c.ns).findings
    assert [(f.check, f.entity_id) for f in found] == [("parents", transcript)]


def test_export_and_import_carry_the_parent(stubs, server: StrataProcess):
    c = Children(stubs)
    run = c.record()
    mine = parent("runs", run)
    transcript, artifact = c.transcript(mine), c.artifact(mine)
    loose = c.transcript()
    archive = export(stubs.channel, c.ns).data
    by_id = {r["id"]: r for r in rows(archive, "transcripts")}
    assert by_id[transcript]["parent"] == {"collection": "runs", "id": run}
    assert by_id[loose]["parent"] is None

    target = Children(stubs)
    import_(stubs.channel, archive, target.ns)
    assert target.get_transcript(transcript).parent == mine
    assert target.get_artifact(artifact).parent == mine
    assert not target.get_transcript(loose).HasField("parent")
    assert target.transcripts_of(mine) == [transcript]
