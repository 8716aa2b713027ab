"""Cross-namespace isolation: an admin token for namespace `a` sees zero bytes of
namespace `b` through every read path (List, Search, Watch, ReadTranscript,
Download, Export, GetUsage, ListAuditEntries, and the other Gets), on both shapes.

`b` holds a marker word in every kind of data. Every response (and every error
message) the `a` token gets is kept, with each export's members decompressed, and
the marker and b's name must appear in none of it. The same reads of `b` by an
admin of every namespace do find the marker, so the check can fail.
"""

from __future__ import annotations

import gzip
import uuid
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

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
    search_pb2,
    search_pb2_grpc,
    transcripts_pb2,
    transcripts_pb2_grpc,
)
from tests.contract.archive_support import export, import_, members
from tests.contract.artifacts_support import upload
from tests.contract.helpers import details_of, to_struct
from tests.contract.transcript_helpers import entry
from tests.security.support import SecureServer, unique


@dataclass
class Stubs:
    """Every service over one channel."""

    records: records_pb2_grpc.RecordServiceStub
    queue: queue_pb2_grpc.QueueServiceStub
    transcripts: transcripts_pb2_grpc.TranscriptServiceStub
    artifacts: artifacts_pb2_grpc.ArtifactServiceStub
    cache: cache_pb2_grpc.CacheServiceStub
    admin: admin_pb2_grpc.AdminServiceStub
    search: search_pb2_grpc.SearchServiceStub

    @classmethod
    def over(cls, channel: grpc.Channel) -> Stubs:
        return cls(
            records_pb2_grpc.RecordServiceStub(channel),
            queue_pb2_grpc.QueueServiceStub(channel),
            transcripts_pb2_grpc.TranscriptServiceStub(channel),
            artifacts_pb2_grpc.ArtifactServiceStub(channel),
            cache_pb2_grpc.CacheServiceStub(channel),
            admin_pb2_grpc.AdminServiceStub(channel),
            search_pb2_grpc.SearchServiceStub(channel),
        )


@dataclass
class Tenant:
    """What one namespace holds: ids of each kind."""

    namespace: str
    word: str
    transcript: str = ""
    artifact: str = ""
    job: str = ""
    orphan: str = ""
    """The SHA-256 of a blob whose artifact was deleted (no namespace owns it now)."""


COLLECTION = "notes"
QUEUE = "work"
CACHE_KEY = "greeting"


def fill(stubs: Stubs, namespace: str, word: str) -> Tenant:
    """One of everything in `namespace`, each carrying `word`."""
    tenant = Tenant(namespace, word)
    stubs.records.CreateRecord(
        records_pb2.CreateRecordRequest(
            namespace=namespace,
            collection=COLLECTION,
            record_id="r1",
            data=to_struct({"text": f"a note about {word}"}),
        ),
        timeout=30,
    )
    tenant.transcript = unique("chat")
    stubs.transcripts.CreateTranscript(
        transcripts_pb2.CreateTranscriptRequest(
            namespace=namespace, transcript_id=tenant.transcript, owner="ada", title=word
        ),
        timeout=30,
    )
    stubs.transcripts.AppendEntries(
        transcripts_pb2.AppendEntriesRequest(
            namespace=namespace, id=tenant.transcript, entries=[entry(f"said {word} twice")]
        ),
        timeout=30,
    )
    tenant.artifact = upload(
        stubs.artifacts,
        f"log line {word}\n".encode() * 50,
        namespace=namespace,
        owner="ada",
        name=f"{word}.log",
    ).id
    gone = upload(stubs.artifacts, f"deleted {word}".encode(), namespace=namespace, owner="ada")
    stubs.artifacts.DeleteArtifact(
        artifacts_pb2.DeleteArtifactRequest(namespace=namespace, id=gone.id), timeout=30
    )
    tenant.orphan = gone.sha256
    tenant.job = stubs.queue.Enqueue(
        queue_pb2.EnqueueRequest(
            namespace=namespace, queue=QUEUE, payload=to_struct({"task": word})
        ),
        timeout=30,
    ).id
    stubs.cache.Set(
        cache_pb2.CacheServiceSetRequest(
            namespace=namespace, key=CACHE_KEY, value=f"hello {word}".encode()
        ),
        timeout=30,
    )
    return tenant


@dataclass
class Seen:
    """Everything one caller was shown."""

    data: bytearray = field(default_factory=bytearray)
    errors: bytearray = field(default_factory=bytearray)
    codes: list[tuple[str, grpc.StatusCode]] = field(default_factory=list)

    def keep(self, what: str, call: Any) -> Any:
        """Run `call`; keep its response(s) (a stream's every message) or error."""
        try:
            result = call()
            messages = [result] if hasattr(result, "SerializeToString") else list(result)
        except grpc.RpcError as error:
            self.codes.append((what, error.code()))
            self.errors += (error.details() or "").encode()
            self.errors += repr(details_of(error)).encode()
            return None
        for message in messages:
            self.data += message.SerializeToString()
            if message.DESCRIPTOR.name == "ExportNamespaceResponse" and message.chunk:
                self.data += message.chunk
        self.codes.append((what, grpc.StatusCode.OK))
        if messages and messages[0].DESCRIPTOR.name == "ExportNamespaceResponse":
            archive = b"".join(m.chunk for m in messages)
            for name, content in members(archive).items():
                self.data += name.encode()
                self.data += gzip.decompress(content) if name.endswith(".gz") else content
        return messages


def read_everything(stubs: Stubs, seen: Seen, mine: str, other: Tenant) -> None:
    """Every read path of namespace `mine`, plus direct attempts at `other`'s ids
    and namespace."""
    theirs = other.namespace
    for ns in (mine, theirs, ""):
        seen.keep(
            f"ListRecords {ns}",
            lambda ns=ns: stubs.records.ListRecords(
                records_pb2.ListRecordsRequest(namespace=ns, collection=COLLECTION), timeout=30
            ),
        )
        seen.keep(
            f"SearchRecords {ns}",
            lambda ns=ns: stubs.records.SearchRecords(
                records_pb2.SearchRecordsRequest(
                    namespace=ns, collection=COLLECTION, query=other.word
                ),
                timeout=30,
            ),
        )
        seen.keep(
            f"ListTranscripts {ns}",
            lambda ns=ns: stubs.transcripts.ListTranscripts(
                transcripts_pb2.ListTranscriptsRequest(namespace=ns), timeout=30
            ),
        )
        seen.keep(
            f"SearchTranscripts {ns}",
            lambda ns=ns: stubs.transcripts.SearchTranscripts(
                transcripts_pb2.SearchTranscriptsRequest(namespace=ns, query=other.word),
                timeout=30,
            ),
        )
        seen.keep(
            f"Search {ns}",
            lambda ns=ns: stubs.search.Search(
                search_pb2.SearchRequest(namespace=ns, query=other.word), timeout=30
            ),
        )
        seen.keep(
            f"ListArtifacts {ns}",
            lambda ns=ns: stubs.artifacts.ListArtifacts(
                artifacts_pb2.ListArtifactsRequest(namespace=ns), timeout=30
            ),
        )
        seen.keep(
            f"ListJobs {ns}",
            lambda ns=ns: stubs.queue.ListJobs(
                queue_pb2.ListJobsRequest(namespace=ns, queue=QUEUE), timeout=30
            ),
        )
        seen.keep(
            f"GetQueueStats {ns}",
            lambda ns=ns: stubs.queue.GetQueueStats(
                queue_pb2.GetQueueStatsRequest(namespace=ns, queue=QUEUE), timeout=30
            ),
        )
        seen.keep(
            f"cache Get {ns}",
            lambda ns=ns: stubs.cache.Get(
                cache_pb2.CacheServiceGetRequest(namespace=ns, key=CACHE_KEY), timeout=30
            ),
        )
        seen.keep(
            f"GetRecord {ns}",
            lambda ns=ns: stubs.records.GetRecord(
                records_pb2.GetRecordRequest(namespace=ns, collection=COLLECTION, id="r1"),
                timeout=30,
            ),
        )
        seen.keep(
            f"ReadTranscript {ns}",
            lambda ns=ns: stubs.transcripts.ReadTranscript(
                transcripts_pb2.ReadTranscriptRequest(namespace=ns, id=other.transcript),
                timeout=30,
            ),
        )
        seen.keep(
            f"GetTranscript {ns}",
            lambda ns=ns: stubs.transcripts.GetTranscript(
                transcripts_pb2.GetTranscriptRequest(namespace=ns, id=other.transcript),
                timeout=30,
            ),
        )
        seen.keep(
            f"DownloadArtifact {ns}",
            lambda ns=ns: stubs.artifacts.DownloadArtifact(
                artifacts_pb2.DownloadArtifactRequest(namespace=ns, id=other.artifact),
                timeout=30,
            ),
        )
        seen.keep(
            f"GetArtifact {ns}",
            lambda ns=ns: stubs.artifacts.GetArtifact(
                artifacts_pb2.GetArtifactRequest(namespace=ns, id=other.artifact), timeout=30
            ),
        )
        seen.keep(
            f"GetArtifactUrl {ns}",
            lambda ns=ns: stubs.artifacts.GetArtifactUrl(
                artifacts_pb2.GetArtifactUrlRequest(namespace=ns, id=other.artifact), timeout=30
            ),
        )
        seen.keep(
            f"GetJob {ns}",
            lambda ns=ns: stubs.queue.GetJob(
                queue_pb2.GetJobRequest(namespace=ns, id=other.job), timeout=30
            ),
        )
        seen.keep(
            f"ExportNamespace {ns}",
            lambda ns=ns: stubs.admin.ExportNamespace(
                admin_pb2.ExportNamespaceRequest(namespace=ns), timeout=60
            ),
        )
        seen.keep(
            f"GetUsage {ns}",
            lambda ns=ns: stubs.admin.GetUsage(admin_pb2.GetUsageRequest(namespace=ns), timeout=30),
        )
        seen.keep(
            f"ListAuditEntries {ns}",
            lambda ns=ns: stubs.admin.ListAuditEntries(
                admin_pb2.ListAuditEntriesRequest(namespace=ns, page_size=1000), timeout=30
            ),
        )
    for repair in (False, True):
        seen.keep(
            f"CheckIntegrity repair={repair}",
            lambda repair=repair: stubs.admin.CheckIntegrity(
                admin_pb2.CheckIntegrityRequest(namespace=mine, verify_blobs=True, repair=repair),
                timeout=60,
            ),
        )
    seen.keep(
        "RunCleanup",
        lambda: stubs.admin.RunCleanup(
            admin_pb2.RunCleanupRequest(namespace=mine, dry_run=True), timeout=60
        ),
    )
    seen.keep(
        "GetUsage all_namespaces",
        lambda: stubs.admin.GetUsage(admin_pb2.GetUsageRequest(all_namespaces=True), timeout=30),
    )
    seen.keep(
        'ListAuditEntries "*"',
        lambda: stubs.admin.ListAuditEntries(
            admin_pb2.ListAuditEntriesRequest(namespace="*"), timeout=30
        ),
    )


def watch_first_change(stubs: Stubs, writer: Stubs, mine: str, theirs: str) -> Any:
    """A WatchRecords stream of `mine`: `theirs` changes first, then `mine`; the
    first change the stream delivers."""
    stream = stubs.records.WatchRecords(
        records_pb2.WatchRecordsRequest(namespace=mine, collection=COLLECTION), timeout=60
    )
    try:
        started = next(stream)
        assert started.HasField("started")
        for ns in (theirs, mine):
            writer.records.CreateRecord(
                records_pb2.CreateRecordRequest(
                    namespace=ns,
                    collection=COLLECTION,
                    record_id=unique("w"),
                    data=to_struct({"from": ns}),
                ),
                timeout=30,
            )
        return next(stream)
    finally:
        stream.cancel()


@pytest.fixture
def tenants(secure: SecureServer) -> tuple[Tenant, Tenant, Stubs]:
    root = Stubs.over(secure.channel(secure.root))
    a = fill(root, unique("a"), f"visible{uuid.uuid4().hex[:8]}")
    b = fill(root, unique("b"), f"hidden{uuid.uuid4().hex[:8]}")
    return a, b, root


def test_a_token_for_one_namespace_sees_zero_bytes_of_another(secure, tenants):
    a, b, root = tenants
    token = secure.token("admin", a.namespace)
    mine = Stubs.over(secure.channel(token))

    seen = Seen()
    read_everything(mine, seen, a.namespace, b)
    change = watch_first_change(mine, root, a.namespace, b.namespace)
    seen.data += change.SerializeToString()

    assert change.change.record.namespace == a.namespace
    assert a.word.encode() in seen.data, "the reads of its own namespace showed nothing"
    assert b.word.encode() not in seen.data
    assert b.word.encode() not in seen.errors
    assert b.orphan.encode() not in seen.data, "an integrity check showed b's deleted blob"
    # Refusals name the namespace the caller itself asked for; no answer names it.
    assert b.namespace.encode() not in seen.data
    refused = {what for what, code in seen.codes if code == grpc.StatusCode.PERMISSION_DENIED}
    for ns in (b.namespace, ""):
        assert f"ExportNamespace {ns}" in refused
        assert f"ListRecords {ns}" in refused
    assert "GetUsage all_namespaces" in refused
    assert 'ListAuditEntries "*"' in refused
    for what, code in seen.codes:
        if what.endswith(a.namespace) and what.split()[0] in (
            "ReadTranscript",
            "DownloadArtifact",
            "GetJob",
            "GetTranscript",
            "GetArtifact",
        ):
            assert code == grpc.StatusCode.NOT_FOUND, (what, code)


def test_an_admin_of_every_namespace_does_see_the_other_namespace(secure, tenants):
    _, b, root = tenants
    seen = Seen()
    read_everything(root, seen, b.namespace, b)
    assert b.word.encode() in seen.data
    for path in ("ExportNamespace", "DownloadArtifact", "ReadTranscript", "GetUsage", "Search"):
        alone = Seen()
        read = next(what for what, _ in seen.codes if what == f"{path} {b.namespace}")
        assert (read, grpc.StatusCode.OK) in seen.codes
        if path == "ExportNamespace":
            alone.keep(
                read,
                lambda: root.admin.ExportNamespace(
                    admin_pb2.ExportNamespaceRequest(namespace=b.namespace), timeout=60
                ),
            )
            assert b.word.encode() in alone.data, "the export's members were not searched"


def test_an_import_cannot_write_into_a_namespace_the_token_does_not_cover(secure, tenants):
    a, b, root = tenants
    archive = export(secure.channel(secure.root), b.namespace)
    copy = unique("copy")
    mine = secure.channel(secure.token("admin", a.namespace, copy))

    # Without a namespace an import goes where its archive came from (b): only a
    # token for every namespace may send one.
    for target in ("", b.namespace):
        with pytest.raises(grpc.RpcError) as raised:
            import_(mine, archive.data, target)
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
        info, _ = details_of(raised.value)
        assert info.reason == "NAMESPACE_NOT_ALLOWED"
        assert info.metadata["namespace"] == (target or "*")

    imported = import_(mine, archive.data, copy)
    assert imported.result.namespace == copy
    before = root.records.GetRecord(
        records_pb2.GetRecordRequest(namespace=b.namespace, collection=COLLECTION, id="r1")
    )
    assert before.version == 1  # b untouched
