"""ExportNamespace / ImportNamespace on both shapes: exact round trips, conflict
policies, the owner filter, and archives that must be refused with nothing written."""

from __future__ import annotations

import gzip
import json
import time

import grpc
import pytest
from google.protobuf import json_format

from strata.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    artifacts_pb2,
    artifacts_pb2_grpc,
    queue_pb2,
    queue_pb2_grpc,
    records_pb2,
    records_pb2_grpc,
    transcripts_pb2,
    transcripts_pb2_grpc,
)
from tests.contract.archive_support import (
    checksums,
    export,
    fill,
    gz_lines,
    import_,
    import_requests,
    members,
    namespace,
    nothing_in,
    rebuild,
    rows,
)
from tests.contract.helpers import data_of, expect_error, to_struct
from tests.support.server import StrataProcess

KINDS = ("queues", "records", "jobs", "transcripts", "entries", "artifacts", "audit")


def assert_same_content(first: bytes, second: bytes, imports: int = 1) -> None:
    """Member by member: every member identical, except that the second audit log
    ends with the `imports` entries the imports themselves wrote."""
    a, b = checksums(first), checksums(second)
    assert list(a) == list(b)
    for name in a:
        if name != "audit.jsonl.gz":
            assert a[name] == b[name], f"{name} differs"
    before, after = rows(first, "audit"), rows(second, "audit")
    assert after[: len(before)] == before
    added = after[len(before) :]
    assert len(added) == imports
    assert all(row["action"] == "import" and row["entity"] == "namespace" for row in added)


def entries_of(channel: grpc.Channel, ns: str, id: str) -> list[tuple[int, str, str]]:
    stub = transcripts_pb2_grpc.TranscriptServiceStub(channel)
    out = []
    for message in stub.ReadTranscript(
        transcripts_pb2.ReadTranscriptRequest(namespace=ns, id=id), timeout=30
    ):
        if message.WhichOneof("event") == "batch":
            out.extend((e.seq, e.role, e.content) for e in message.batch.entries)
    return out


def test_round_trip_into_an_empty_namespace_is_exact(server: StrataProcess) -> None:
    source, target = namespace(), namespace()
    with server.channel() as channel:
        filled = fill(channel, source)
        first = export(channel, source)
        imported = import_(channel, first.data, target)
        second = export(channel, target)

        assert imported.result.namespace == target
        assert imported.result.source_namespace == source
        assert imported.counts["records"].imported == 12  # t11 was deleted
        assert imported.counts["jobs"].imported == 5
        assert imported.counts["queues"].imported == 1
        assert imported.counts["transcripts"].imported == 3
        assert imported.counts["entries"].imported == 4
        assert imported.counts["artifacts"].imported == 3
        assert imported.counts["blobs"].skipped == 2  # the server already holds both
        assert {p.phase for p in imported.progress} >= {"receiving", "verifying", "blobs", "rows"}
        assert {p.phase for p in first.progress} >= {"rows", "blobs"}
        assert dict(first.summary.counts)["blobs"] == 2
        assert_same_content(first.data, second.data)
        # What the import wrote is consistent (transcript counters, offsets, jobs).
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        checked = admin.CheckIntegrity(admin_pb2.CheckIntegrityRequest(namespace=target))
        report = next(e.report for e in checked if e.HasField("report"))
        assert [f for f in report.findings if f.namespace == target] == []

        # What the archive says is what the API serves, on the imported side.
        records = records_pb2_grpc.RecordServiceStub(channel)
        for id in ("t01", "t05"):
            a, b = (
                records.GetRecord(
                    records_pb2.GetRecordRequest(namespace=ns, collection="tickets", id=id)
                )
                for ns in (source, target)
            )
            assert (b.version, b.create_time, b.update_time, data_of(b)) == (
                a.version,
                a.create_time,
                a.update_time,
                data_of(a),
            )
        assert entries_of(channel, target, "chat-1") == entries_of(channel, source, "chat-1")
        queue = queue_pb2_grpc.QueueServiceStub(channel)
        for state in (queue_pb2.JOB_STATE_LEASED, queue_pb2.JOB_STATE_COMPLETED):
            a, b = (
                [
                    (j.id, j.attempt, j.state)
                    for j in queue.ListJobs(
                        queue_pb2.ListJobsRequest(namespace=ns, queue="emails", state=state)
                    ).jobs
                ]
                for ns in (source, target)
            )
            assert a == b and len(a) == 1
        artifacts = artifacts_pb2_grpc.ArtifactServiceStub(channel)
        for id, content in (
            (filled.text_artifact, filled.text),
            (filled.binary_artifact, filled.binary),
        ):
            _, data = _download(artifacts, target, id)
            assert data == content
        text = artifacts.GetArtifact(
            artifacts_pb2.GetArtifactRequest(namespace=target, id=filled.text_artifact)
        )
        assert text.compression == artifacts_pb2.COMPRESSION_ZSTD and text.stored_size < text.size


def _download(
    stub: artifacts_pb2_grpc.ArtifactServiceStub, ns: str, id: str
) -> tuple[artifacts_pb2.Artifact, bytes]:
    stream = stub.DownloadArtifact(artifacts_pb2.DownloadArtifactRequest(namespace=ns, id=id))
    first = next(stream)
    return first.artifact, b"".join(message.chunk for message in stream)


def test_archive_format_is_documented_shape(server: StrataProcess) -> None:
    ns = namespace()
    with server.channel() as channel:
        fill(channel, ns)
        archive = export(channel, ns).data
    names = list(members(archive))
    assert names[: len(KINDS)] == [f"{kind}.jsonl.gz" for kind in KINDS]
    assert names[-1] == "manifest.json"
    assert all(name.startswith("blobs/") for name in names[len(KINDS) : -1])
    job = next(row for row in rows(archive, "jobs") if row["state"] == "leased")
    assert job["lease_token"] and job["attempt"] == 1
    assert [(r["transcript_id"], r["seq"]) for r in rows(archive, "entries")][:3] == [
        ("chat-1", 1),
        ("chat-1", 2),
        ("chat-1", 3),
    ]
    assert all(
        row["collection"] != "tickets" or row["id"] != "t11" for row in rows(archive, "records")
    )


def test_conflict_policy_fail_imports_nothing(server: StrataProcess) -> None:
    source, target = namespace(), namespace()
    with server.channel() as channel:
        fill(channel, source)
        archive = export(channel, source).data
        records = records_pb2_grpc.RecordServiceStub(channel)
        records.CreateRecord(
            records_pb2.CreateRecordRequest(
                namespace=target, collection="tickets", record_id="t05", data=to_struct({"mine": 1})
            )
        )
        expect_error(
            lambda: import_(channel, archive, target),
            grpc.StatusCode.ALREADY_EXISTS,
            "ALREADY_EXISTS",
            kind="records",
            id="tickets/t05",
        )
        expect_error(
            lambda: import_(channel, archive, target, admin_pb2.CONFLICT_POLICY_FAIL),
            grpc.StatusCode.ALREADY_EXISTS,
        )
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        usage = admin.GetUsage(admin_pb2.GetUsageRequest(namespace=target)).namespaces[0]
        assert usage.record_count == 1 and usage.job_count == 0
        transcripts = transcripts_pb2_grpc.TranscriptServiceStub(channel)
        assert not transcripts.ListTranscripts(
            transcripts_pb2.ListTranscriptsRequest(namespace=target)
        ).transcripts


def test_conflict_policies_skip_and_overwrite(server: StrataProcess) -> None:
    source, target = namespace(), namespace()
    with server.channel() as channel:
        fill(channel, source)
        archive = export(channel, source).data
        records = records_pb2_grpc.RecordServiceStub(channel)
        transcripts = transcripts_pb2_grpc.TranscriptServiceStub(channel)
        records.CreateRecord(
            records_pb2.CreateRecordRequest(
                namespace=target, collection="tickets", record_id="t05", data=to_struct({"mine": 1})
            )
        )
        transcripts.CreateTranscript(
            transcripts_pb2.CreateTranscriptRequest(
                namespace=target, transcript_id="chat-1", owner="z"
            )
        )
        transcripts.AppendEntries(
            transcripts_pb2.AppendEntriesRequest(
                namespace=target, id="chat-1", entries=[transcripts_pb2.Entry(content="mine")]
            )
        )

        skipped = import_(channel, archive, target, admin_pb2.CONFLICT_POLICY_SKIP)
        assert (skipped.counts["records"].imported, skipped.counts["records"].skipped) == (11, 1)
        assert (skipped.counts["transcripts"].imported, skipped.counts["transcripts"].skipped) == (
            2,
            1,
        )
        assert skipped.counts["entries"].skipped == 3  # chat-1's, kept as stored
        mine = records_pb2.GetRecordRequest(namespace=target, collection="tickets", id="t05")
        assert data_of(records.GetRecord(mine)) == {"mine": 1}  # now cached, too
        assert [e[2] for e in entries_of(channel, target, "chat-1")] == ["mine"]

        again = import_(channel, archive, target, admin_pb2.CONFLICT_POLICY_SKIP)
        assert again.counts["records"].imported == 0 and again.counts["records"].skipped == 12
        assert again.counts["audit"].imported == 0  # the same history is not added twice

        overwritten = import_(channel, archive, target, admin_pb2.CONFLICT_POLICY_OVERWRITE)
        assert overwritten.counts["records"].overwritten == 12
        assert overwritten.counts["transcripts"].overwritten == 3
        stored = records.GetRecord(mine)  # the cache must not serve the old version
        assert data_of(stored)["n"] == 5 and stored.version == 1
        assert entries_of(channel, target, "chat-1") == entries_of(channel, source, "chat-1")
        # Appends continue after the imported entries (next_seq and offsets restored).
        appended = transcripts.AppendEntries(
            transcripts_pb2.AppendEntriesRequest(
                namespace=target, id="chat-1", entries=[transcripts_pb2.Entry(content="more")]
            )
        )
        assert appended.first_seq == 4


def test_owner_filter_exports_that_owners_transcripts_and_artifacts(server: StrataProcess) -> None:
    source, target = namespace(), namespace()
    with server.channel() as channel:
        fill(channel, source)
        exported = export(channel, source, owner="ada")
        archive = exported.data
        assert [r["id"] for r in rows(archive, "transcripts")] == ["chat-1", "chat-3"]
        assert {r["transcript_id"] for r in rows(archive, "entries")} == {"chat-1"}
        assert {r["owner"] for r in rows(archive, "artifacts")} == {"ada"}
        assert len(rows(archive, "artifacts")) == 2
        assert not rows(archive, "records") and not rows(archive, "jobs")
        audited = {(r["entity"], r["entity_id"]) for r in rows(archive, "audit")}
        assert {entity for entity, _ in audited} <= {"transcript", "artifact"}
        assert ("transcript", "chat-2") not in audited
        assert sum(1 for name in members(archive) if name.startswith("blobs/")) == 1
        assert exported.summary.owner == "ada"

        imported = import_(channel, archive, target)
        assert imported.counts["transcripts"].imported == 2
        assert imported.counts["records"].imported == 0


@pytest.mark.parametrize(
    "damage", ["flipped byte", "truncated", "bad json", "version", "gap", "not a tar"]
)
def test_a_damaged_archive_is_refused_and_leaves_nothing(
    server: StrataProcess, damage: str
) -> None:
    source, target = namespace(), namespace()
    with server.channel() as channel:
        fill(channel, source)
        archive = export(channel, source).data
        if damage == "flipped byte":
            blob = next(name for name in members(archive) if name.startswith("blobs/"))
            at = archive.index(members(archive)[blob][:64]) + 1000
            archive = archive[:at] + bytes([archive[at] ^ 1]) + archive[at + 1 :]
        elif damage == "truncated":
            archive = archive[: len(archive) * 2 // 3]
        elif damage == "bad json":  # in the last kind's member: the earlier rows were written
            lines = gzip.decompress(members(archive)["audit.jsonl.gz"]).splitlines()
            archive = rebuild(archive, {"audit.jsonl.gz": gz_lines([*lines[:-1], b"{not json"])})
        elif damage == "version":
            archive = rebuild(archive, {}, version=99)
        elif damage == "gap":
            lines = [
                json.loads(x)
                for x in gzip.decompress(members(archive)["entries.jsonl.gz"]).splitlines()
            ]
            del lines[1]
            archive = rebuild(
                archive, {"entries.jsonl.gz": gz_lines([json.dumps(x).encode() for x in lines])}
            )
        else:
            archive = b"\x89PNG" + bytes(5000)
        expect_error(
            lambda: import_(channel, archive, target),
            grpc.StatusCode.INVALID_ARGUMENT,
            "BAD_ARCHIVE",
        )
        nothing_in(channel, target)


def test_import_header_must_come_first(server: StrataProcess) -> None:
    with server.channel() as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        chunk_first = iter([admin_pb2.ImportNamespaceRequest(chunk=b"x")])
        expect_error(
            lambda: list(stub.ImportNamespace(chunk_first)),
            grpc.StatusCode.INVALID_ARGUMENT,
            field="header",
        )
        expect_error(
            lambda: list(stub.ImportNamespace(import_requests(b"", "Bad Namespace"))),
            grpc.StatusCode.INVALID_ARGUMENT,
            field="namespace",
        )
        expect_error(
            lambda: list(stub.ExportNamespace(admin_pb2.ExportNamespaceRequest(namespace="NO"))),
            grpc.StatusCode.INVALID_ARGUMENT,
            field="namespace",
        )


def test_a_unique_key_held_by_another_unfinished_job_is_a_conflict(server: StrataProcess) -> None:
    source, target = namespace(), namespace()
    with server.channel() as channel:
        queue = queue_pb2_grpc.QueueServiceStub(channel)
        for ns in (source, target):
            queue.Enqueue(
                queue_pb2.EnqueueRequest(
                    namespace=ns, queue="q", payload=to_struct({"ns": ns}), unique_key="u"
                )
            )
        archive = export(channel, source).data
        expect_error(
            lambda: import_(channel, archive, target),
            grpc.StatusCode.ALREADY_EXISTS,
            kind="jobs",
        )
        expect_error(
            lambda: import_(channel, archive, target, admin_pb2.CONFLICT_POLICY_OVERWRITE),
            grpc.StatusCode.ALREADY_EXISTS,
            unique_key="u",
        )
        skipped = import_(channel, archive, target, admin_pb2.CONFLICT_POLICY_SKIP)
        assert (skipped.counts["jobs"].imported, skipped.counts["jobs"].skipped) == (0, 1)
        jobs = queue.ListJobs(queue_pb2.ListJobsRequest(namespace=target, queue="q")).jobs
        assert [data_of_job(j) for j in jobs] == [{"ns": target}]


def data_of_job(job: queue_pb2.Job) -> dict[str, object]:
    return dict(json_format.MessageToDict(job.payload))


def test_exports_cancelled_as_they_start_leave_exports_working(server: StrataProcess) -> None:
    """Callers that cancel an export just after sending it leave nothing behind: the
    fuzz suite found that on SQLite an export cancelled while its read transaction
    began returned its reader connection to the pool inside that transaction, and
    every later export drawing it failed with INTERNAL ("cannot start a transaction
    within a transaction"). The cancels come at staggered moments to land in that
    window."""
    ns = namespace()
    with grpc.insecure_channel(server.target) as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        request = admin_pb2.ExportNamespaceRequest(namespace=ns)
        for attempt in range(600):
            call = stub.ExportNamespace(request)
            time.sleep(attempt % 20 * 0.0005)
            call.cancel()
        for _ in range(8):  # more than the SQLite readers (4): each is drawn at least once
            assert export(channel, ns).summary.namespace == ns
