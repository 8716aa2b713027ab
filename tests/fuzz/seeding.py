"""The namespaces a fuzz run works with: one to attack, one that must not change.

`seed` puts a little of everything in a namespace (records with an index and a
retention policy, jobs with one leased, transcripts with entries and one sealed,
artifacts, a cache entry), so hostile requests that name real things reach past
the lookups. `harvest` then collects from the fuzzed namespace what a caller
could have seen (page tokens, a watch cursor, a lease token, an export archive)
for the fuzzer to forge from. `snapshot` reads back everything a namespace holds,
to show that fuzzing another namespace left it as it was.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc
from google.protobuf import duration_pb2, struct_pb2
from google.protobuf.message import Message

from strata.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    artifacts_pb2,
    artifacts_pb2_grpc,
    cache_pb2,
    cache_pb2_grpc,
    queue_pb2,
    queue_pb2_grpc,
    records_pb2,
    records_pb2_grpc,
    transcripts_pb2,
    transcripts_pb2_grpc,
)
from tests.fuzz.calls import Known, Method

COLLECTION = "fz_items"
QUEUE = "fz_jobs"
OWNER = "fz_owner"
KIND = "log"
CACHE_KEY = "fz_key"
WORD = "needle"
RECORD_IDS = ("r1", "r2", "r3", "r4")
TRANSCRIPT_IDS = ("t1", "t2", "t3")
TIMEOUT = 30.0


def _duration(value: timedelta) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromTimedelta(value)
    return message


def _struct(data: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(data)
    return message


def seed(channel: grpc.Channel, namespace: str) -> dict[str, list[str]]:
    """Store a little of every kind in `namespace`; returns what the fuzzer may name,
    by request field name."""
    records = records_pb2_grpc.RecordServiceStub(channel)
    queue = queue_pb2_grpc.QueueServiceStub(channel)
    transcripts = transcripts_pb2_grpc.TranscriptServiceStub(channel)
    artifacts = artifacts_pb2_grpc.ArtifactServiceStub(channel)
    cache = cache_pb2_grpc.CacheServiceStub(channel)
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    ns = namespace

    for n, record_id in enumerate(RECORD_IDS):
        data = {"status": "open" if n % 2 else "done", "n": n, "text": f"{WORD} {n}"}
        records.CreateRecord(
            records_pb2.CreateRecordRequest(
                namespace=ns, collection=COLLECTION, record_id=record_id, data=_struct(data)
            ),
            timeout=TIMEOUT,
        )
    for _ in admin.CreateIndex(
        admin_pb2.CreateIndexRequest(namespace=ns, collection=COLLECTION, field="data.status"),
        timeout=TIMEOUT,
    ):
        pass
    admin.SetRetentionPolicy(
        admin_pb2.SetRetentionPolicyRequest(
            namespace=ns,
            target=admin_pb2.RETENTION_TARGET_RECORDS,
            selector=COLLECTION,
            max_age=_duration(timedelta(days=365 * 50)),
        ),
        timeout=TIMEOUT,
    )

    job_ids = [
        queue.Enqueue(
            queue_pb2.EnqueueRequest(
                namespace=ns,
                queue=QUEUE,
                payload=_struct({"n": n, "text": WORD}),
                unique_key=f"u{n}",
            ),
            timeout=TIMEOUT,
        ).id
        for n in range(4)
    ]
    leased = queue.LeaseJobs(
        queue_pb2.LeaseJobsRequest(
            namespace=ns, queue=QUEUE, max_jobs=1, lease_duration=_duration(timedelta(hours=6))
        ),
        timeout=TIMEOUT,
    ).jobs

    for transcript_id in TRANSCRIPT_IDS:
        transcripts.CreateTranscript(
            transcripts_pb2.CreateTranscriptRequest(
                namespace=ns,
                transcript_id=transcript_id,
                owner=OWNER,
                title=f"{WORD} {transcript_id}",
                labels={"env": "fuzz"},
            ),
            timeout=TIMEOUT,
        )
    transcripts.AppendEntries(
        transcripts_pb2.AppendEntriesRequest(
            namespace=ns,
            id=TRANSCRIPT_IDS[0],
            entries=[
                transcripts_pb2.Entry(
                    role="user", content=f"{WORD} entry {n}", data=_struct({"n": n})
                )
                for n in range(4)
            ],
        ),
        timeout=TIMEOUT,
    )
    transcripts.SealTranscript(
        transcripts_pb2.SealTranscriptRequest(namespace=ns, id=TRANSCRIPT_IDS[1]), timeout=TIMEOUT
    )

    uploaded = [
        artifacts.UploadArtifact(
            iter(
                [
                    artifacts_pb2.UploadArtifactRequest(
                        header=artifacts_pb2.ArtifactHeader(
                            namespace=ns,
                            owner=OWNER,
                            kind=KIND,
                            name=f"{WORD}-{n}.txt",
                            content_type="text/plain",
                            labels={"env": "fuzz"},
                        )
                    ),
                    artifacts_pb2.UploadArtifactRequest(chunk=f"{WORD} {n}\n".encode() * 100),
                ]
            ),
            timeout=TIMEOUT,
        )
        for n in range(3)
    ]
    cache.Set(
        cache_pb2.CacheServiceSetRequest(
            namespace=ns, key=CACHE_KEY, value=b"cached", ttl=_duration(timedelta(days=7))
        ),
        timeout=TIMEOUT,
    )

    artifact_ids = [artifact.id for artifact in uploaded]
    return {
        "collection": [COLLECTION],
        "record_id": list(RECORD_IDS),
        "ids": list(RECORD_IDS),
        "id": [*RECORD_IDS, *job_ids, *TRANSCRIPT_IDS, *artifact_ids],
        "RecordService.id": list(RECORD_IDS),
        "QueueService.id": job_ids,
        "JobAck.id": job_ids,
        "TranscriptService.id": list(TRANSCRIPT_IDS),
        "AppendEntriesWrite.id": list(TRANSCRIPT_IDS),
        "UpdateRecordWrite.id": list(RECORD_IDS),
        "DeleteRecordWrite.id": list(RECORD_IDS),
        "ArtifactService.id": artifact_ids,
        "transcript_id": list(TRANSCRIPT_IDS),
        "queue": [QUEUE],
        "key": [CACHE_KEY],
        "owner": [OWNER],
        "kind": [KIND],
        "query": [WORD, f"{WORD} entry"],
        "lease_token": [job.lease_token for job in leased],
        "sha256": [artifact.sha256 for artifact in uploaded],
        "sha256s": [artifact.sha256 for artifact in uploaded],
        "field": ["data.status", "data.n"],
        "selector": [COLLECTION, QUEUE, KIND],
        "entity_id": [f"{COLLECTION}/{RECORD_IDS[0]}", *job_ids],
        "name": [f"{WORD}-0.txt"],
        "content_type": ["text/plain", "application/json"],
        "role": ["user", "assistant"],
        "unique_key": ["u0", "u9"],
        "service": ["", "strata.v1.RecordService"],
        "file_containing_symbol": ["strata.v1.RecordService", "strata.v1.Record"],
        "file_by_filename": ["strata/v1/records.proto"],
    }


def harvest(
    channel: grpc.Channel, methods: list[Method], namespace: str, values: dict[str, list[str]]
) -> Known:
    """What a caller of `namespace` could have been handed, for the fuzzer to forge:
    page tokens of every paged RPC, watch cursors, an export archive."""
    known = Known(namespace, frozenset(), values=dict(values))
    for method in methods:
        if not method.pages or method.client_streaming or method.server_streaming:
            continue
        for request in _paged_requests(method, namespace, values):
            try:
                body = channel.unary_unary(method.path)(
                    request.SerializeToString(), timeout=TIMEOUT
                )
            except grpc.RpcError:
                continue
            token = method.response_class.FromString(body).next_page_token
            if token:
                known.pages.setdefault(method.path, []).append((request, token))

    records = records_pb2_grpc.RecordServiceStub(channel)
    watch = records.WatchRecords(
        records_pb2.WatchRecordsRequest(namespace=namespace, collection=COLLECTION),
        timeout=TIMEOUT,
    )
    cursors = [next(watch).started.cursor]
    records.UpdateRecord(
        records_pb2.UpdateRecordRequest(
            namespace=namespace,
            collection=COLLECTION,
            id=RECORD_IDS[0],
            data=_struct({"status": "open", "n": 0, "text": f"{WORD} 0"}),
        ),
        timeout=TIMEOUT,
    )
    cursors.append(next(watch).change.cursor)
    watch.cancel()
    known.values["from_cursor"] = cursors
    known.values["cursor"] = cursors

    admin = admin_pb2_grpc.AdminServiceStub(channel)
    archive = b"".join(
        message.chunk
        for message in admin.ExportNamespace(
            admin_pb2.ExportNamespaceRequest(namespace=namespace), timeout=TIMEOUT
        )
        if message.WhichOneof("event") == "chunk"
    )
    known.blobs["chunk"] = [archive]
    return known


def _paged_requests(method: Method, namespace: str, values: dict[str, list[str]]) -> list[Message]:
    """Requests for page 1 of one item: bare, and with the seeded names filled in."""
    # A server-wide list (ListTokens) names no namespace.
    scope = {"namespace": namespace} if "namespace" in method.input.fields_by_name else {}
    bare = method.message_class(page_size=1, **scope)
    filled = method.message_class(page_size=1, **scope)
    for name in ("collection", "queue", "query", "owner"):
        if name in method.input.fields_by_name and values.get(name):
            setattr(filled, name, values[name][0])
    return [bare, filled]


def snapshot(channel: grpc.Channel, namespace: str) -> dict[str, Message]:
    """Everything `namespace` holds, as the API shows it (fields that move with the
    clock alone cleared)."""
    records = records_pb2_grpc.RecordServiceStub(channel)
    queue = queue_pb2_grpc.QueueServiceStub(channel)
    transcripts = transcripts_pb2_grpc.TranscriptServiceStub(channel)
    artifacts = artifacts_pb2_grpc.ArtifactServiceStub(channel)
    cache = cache_pb2_grpc.CacheServiceStub(channel)
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    ns = namespace
    page = 1000
    stats = queue.GetQueueStats(
        queue_pb2.GetQueueStatsRequest(namespace=ns, queue=QUEUE), timeout=TIMEOUT
    )
    stats.ClearField("oldest_available_age")
    read = transcripts_pb2.ReadTranscriptResponse()
    for message in transcripts.ReadTranscript(
        transcripts_pb2.ReadTranscriptRequest(namespace=ns, id=TRANSCRIPT_IDS[0]), timeout=TIMEOUT
    ):
        if message.WhichOneof("event") == "batch":
            read.batch.entries.extend(message.batch.entries)
    return {
        "usage": admin.GetUsage(admin_pb2.GetUsageRequest(namespace=ns), timeout=TIMEOUT),
        "records": records.ListRecords(
            records_pb2.ListRecordsRequest(namespace=ns, collection=COLLECTION, page_size=page),
            timeout=TIMEOUT,
        ),
        "jobs": queue.ListJobs(
            queue_pb2.ListJobsRequest(namespace=ns, queue=QUEUE, page_size=page), timeout=TIMEOUT
        ),
        "queue_stats": stats,
        "transcripts": transcripts.ListTranscripts(
            transcripts_pb2.ListTranscriptsRequest(namespace=ns, page_size=page), timeout=TIMEOUT
        ),
        "entries": read,
        "artifacts": artifacts.ListArtifacts(
            artifacts_pb2.ListArtifactsRequest(namespace=ns, page_size=page), timeout=TIMEOUT
        ),
        "cache": cache.Get(
            cache_pb2.CacheServiceGetRequest(namespace=ns, key=CACHE_KEY), timeout=TIMEOUT
        ),
        "audit": admin.ListAuditEntries(
            admin_pb2.ListAuditEntriesRequest(namespace=ns, page_size=page), timeout=TIMEOUT
        ),
        "retention": admin.ListRetentionPolicies(
            admin_pb2.ListRetentionPoliciesRequest(namespace=ns), timeout=TIMEOUT
        ),
        "indexes": admin.ListIndexes(admin_pb2.ListIndexesRequest(namespace=ns), timeout=TIMEOUT),
    }
