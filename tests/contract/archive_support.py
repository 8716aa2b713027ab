"""Helpers of the export/import tests: fill a namespace with every kind of data,
export and import over gRPC, and read archives member by member."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import duration_pb2

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
from tests.contract.artifacts_support import random_bytes, text_log, upload
from tests.contract.helpers import from_now, to_struct

CHUNK = 256 << 10


def namespace() -> str:
    """A namespace no other test uses: empty until a test writes to it."""
    return f"ns-{uuid.uuid4().hex[:12]}"


@dataclass
class Filled:
    """What `fill` wrote, for the tests to check against."""

    text_artifact: str
    binary_artifact: str
    text: bytes
    binary: bytes


def fill(channel: grpc.Channel, ns: str) -> Filled:
    """Every kind of row in `ns`: records (one updated, one expiring later, one
    deleted), jobs in several states, a paused queue, transcripts (one sealed, one
    empty) with entries, artifacts of two owners (two naming one blob)."""
    records = records_pb2_grpc.RecordServiceStub(channel)
    for i in range(12):
        records.CreateRecord(
            records_pb2.CreateRecordRequest(
                namespace=ns,
                collection="tickets",
                record_id=f"t{i:02d}",
                data=to_struct({"n": i, "title": f"ticket {i}", "tags": ["a", "b"], "x": 1.5}),
            )
        )
    records.UpdateRecord(
        records_pb2.UpdateRecordRequest(
            namespace=ns, collection="tickets", id="t01", data=to_struct({"n": 100})
        )
    )
    records.CreateRecord(
        records_pb2.CreateRecordRequest(
            namespace=ns,
            collection="sessions",
            record_id="s1",
            data=to_struct({"user": "ada"}),
            expire_time=from_now(86400),
        )
    )
    records.DeleteRecord(
        records_pb2.DeleteRecordRequest(namespace=ns, collection="tickets", id="t11")
    )

    queue = queue_pb2_grpc.QueueServiceStub(channel)
    for i in range(4):
        queue.Enqueue(
            queue_pb2.EnqueueRequest(
                namespace=ns,
                queue="emails",
                payload=to_struct({"to": f"user{i}@example.com"}),
                priority=i,
                unique_key=f"mail-{i}" if i == 3 else "",
            )
        )
    queue.Enqueue(
        queue_pb2.EnqueueRequest(
            namespace=ns,
            queue="later",
            payload=to_struct({"k": 1}),
            delay=duration_pb2.Duration(seconds=3600),
        )
    )
    leased = queue.LeaseJobs(
        queue_pb2.LeaseJobsRequest(
            namespace=ns,
            queue="emails",
            max_jobs=2,
            lease_duration=duration_pb2.Duration(seconds=600),
        )
    ).jobs
    queue.AckJob(
        queue_pb2.AckJobRequest(
            namespace=ns,
            id=leased[0].id,
            lease_token=leased[0].lease_token,
            result=to_struct({"sent": True}),
        )
    )
    queue.PauseQueue(queue_pb2.PauseQueueRequest(namespace=ns, queue="later"))

    transcripts = transcripts_pb2_grpc.TranscriptServiceStub(channel)
    for id, owner in (("chat-1", "ada"), ("chat-2", "bob"), ("chat-3", "ada")):
        transcripts.CreateTranscript(
            transcripts_pb2.CreateTranscriptRequest(
                namespace=ns, transcript_id=id, owner=owner, title=f"{id} title", labels={"k": id}
            )
        )
    transcripts.AppendEntries(
        transcripts_pb2.AppendEntriesRequest(
            namespace=ns,
            id="chat-1",
            entries=[
                transcripts_pb2.Entry(role="user", content="Where is my refund?"),
                transcripts_pb2.Entry(
                    role="tool:orders", content="", data=to_struct({"order": "A-17"})
                ),
            ],
        )
    )
    transcripts.AppendEntries(
        transcripts_pb2.AppendEntriesRequest(
            namespace=ns,
            id="chat-1",
            entries=[transcripts_pb2.Entry(role="assistant", content="Refunded: ünïcödé ✓")],
        )
    )
    transcripts.AppendEntries(
        transcripts_pb2.AppendEntriesRequest(
            namespace=ns, id="chat-2", entries=[transcripts_pb2.Entry(role="user", content="hi")]
        )
    )
    transcripts.SealTranscript(transcripts_pb2.SealTranscriptRequest(namespace=ns, id="chat-2"))

    artifacts = artifacts_pb2_grpc.ArtifactServiceStub(channel)
    text = text_log(20000, seed=len(ns))
    binary = random_bytes(300 << 10)
    logged = upload(artifacts, text, namespace=ns, owner="ada", kind="log", name="run.log")
    upload(artifacts, text, namespace=ns, owner="ada", kind="log", name="copy.log")
    blob = upload(
        artifacts,
        binary,
        namespace=ns,
        owner="bob",
        kind="bin",
        name="x.bin",
        content_type="application/octet-stream",
    )
    return Filled(logged.id, blob.id, text, binary)


@dataclass
class Exported:
    """An archive as exported: its bytes, the summary and the progress messages."""

    data: bytes
    summary: admin_pb2.ArchiveSummary
    progress: list[admin_pb2.Progress]


def export(channel: grpc.Channel, ns: str, owner: str = "") -> Exported:
    """ExportNamespace, collected."""
    stub = admin_pb2_grpc.AdminServiceStub(channel)
    out = io.BytesIO()
    summary = None
    progress = []
    for event in stub.ExportNamespace(
        admin_pb2.ExportNamespaceRequest(namespace=ns, owner=owner), timeout=120
    ):
        part = event.WhichOneof("event")
        if part == "chunk":
            assert summary is None
            out.write(event.chunk)
        elif part == "progress":
            progress.append(event.progress)
        else:
            summary = event.summary
    assert summary is not None
    assert summary.archive_bytes == len(out.getvalue())
    return Exported(out.getvalue(), summary, progress)


def import_requests(
    data: bytes, ns: str = "", policy: int = admin_pb2.CONFLICT_POLICY_UNSPECIFIED
) -> Iterator[admin_pb2.ImportNamespaceRequest]:
    """The header, then `data` in chunks."""
    yield admin_pb2.ImportNamespaceRequest(
        header=admin_pb2.ImportHeader(namespace=ns, on_conflict=policy, size=len(data))  # type: ignore[arg-type]
    )
    for at in range(0, len(data), CHUNK):
        yield admin_pb2.ImportNamespaceRequest(chunk=data[at : at + CHUNK])


@dataclass
class Imported:
    """An import's result, its counts by kind, and its progress messages."""

    result: admin_pb2.ImportResult
    counts: dict[str, admin_pb2.ImportCount]
    progress: list[admin_pb2.Progress]


def import_(
    channel: grpc.Channel,
    data: bytes,
    ns: str = "",
    policy: int = admin_pb2.CONFLICT_POLICY_UNSPECIFIED,
) -> Imported:
    """ImportNamespace, collected (raises grpc.RpcError when it fails)."""
    stub = admin_pb2_grpc.AdminServiceStub(channel)
    result = None
    progress = []
    for event in stub.ImportNamespace(import_requests(data, ns, policy), timeout=120):
        if event.HasField("progress"):
            progress.append(event.progress)
        else:
            result = event.result
    assert result is not None
    return Imported(result, {c.kind: c for c in result.counts}, progress)


def members(data: bytes) -> dict[str, bytes]:
    """The archive's members by name (tests keep archives small)."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        out = {}
        for info in tar.getmembers():
            handle = tar.extractfile(info)
            assert handle is not None
            out[info.name] = handle.read()
        return out


def rows(data: bytes, kind: str) -> list[dict[str, Any]]:
    """One kind's decoded JSON Lines rows."""
    return [
        json.loads(line) for line in gzip.decompress(members(data)[f"{kind}.jsonl.gz"]).splitlines()
    ]


def manifest(data: bytes) -> dict[str, Any]:
    """manifest.json, decoded."""
    return dict(json.loads(members(data)["manifest.json"]))


def checksums(data: bytes) -> dict[str, str]:
    """Member name -> sha256, from the manifest."""
    return {m["name"]: m["sha256"] for m in manifest(data)["members"]}


def rebuild(data: bytes, replaced: dict[str, bytes], **manifest_fields: Any) -> bytes:
    """The archive with members replaced and the manifest's checksums and sizes
    updated to match (then `manifest_fields` set): well-formed, other content."""
    parts = members(data)
    parts.update(replaced)
    meta = json.loads(parts.pop("manifest.json"))
    for member in meta["members"]:
        content = parts[member["name"]]
        member["size"] = len(content)
        member["sha256"] = hashlib.sha256(content).hexdigest()
    meta.update(manifest_fields)
    parts["manifest.json"] = json.dumps(meta).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, content in parts.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


def gz_lines(lines: list[bytes]) -> bytes:
    """A JSON Lines member's bytes."""
    return gzip.compress(b"".join(line + b"\n" for line in lines))


def nothing_in(channel: grpc.Channel, ns: str) -> None:
    """`ns` holds no record, job, transcript or artifact."""
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    usage = admin.GetUsage(admin_pb2.GetUsageRequest(namespace=ns)).namespaces[0]
    assert usage.record_count == 0 and usage.job_count == 0
    transcripts = transcripts_pb2_grpc.TranscriptServiceStub(channel)
    assert not transcripts.ListTranscripts(
        transcripts_pb2.ListTranscriptsRequest(namespace=ns)
    ).transcripts
    artifacts = artifacts_pb2_grpc.ArtifactServiceStub(channel)
    assert not artifacts.ListArtifacts(artifacts_pb2.ListArtifactsRequest(namespace=ns)).artifacts
