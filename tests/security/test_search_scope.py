"""SearchService.Search under token auth, on both shapes: a reader of one namespace
finds that namespace's records, entries and artifacts, never another's, and is
refused another namespace by name."""

from __future__ import annotations

import uuid

import grpc

from strata.v1 import (
    artifacts_pb2_grpc,
    records_pb2,
    records_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
    transcripts_pb2,
    transcripts_pb2_grpc,
)
from tests.contract.artifacts_support import upload
from tests.contract.helpers import details_of, to_struct
from tests.contract.transcript_helpers import entry
from tests.security.support import SecureServer, unique


def fill(channel: grpc.Channel, namespace: str, word: str) -> str:
    """A record, an entry and a text artifact holding `word`; the artifact's id."""
    records_pb2_grpc.RecordServiceStub(channel).CreateRecord(
        records_pb2.CreateRecordRequest(
            namespace=namespace, collection="notes", record_id="r1", data=to_struct({"t": word})
        ),
        timeout=30,
    )
    transcripts = transcripts_pb2_grpc.TranscriptServiceStub(channel)
    transcripts.CreateTranscript(
        transcripts_pb2.CreateTranscriptRequest(namespace=namespace, transcript_id="t1"),
        timeout=30,
    )
    transcripts.AppendEntries(
        transcripts_pb2.AppendEntriesRequest(namespace=namespace, id="t1", entries=[entry(word)]),
        timeout=30,
    )
    return upload(
        artifacts_pb2_grpc.ArtifactServiceStub(channel),
        f"{word}\n".encode(),
        namespace=namespace,
        owner="ada",
        content_type="text/plain",
    ).id


def test_a_reader_searches_its_namespace_only(secure: SecureServer) -> None:
    word = f"shared{uuid.uuid4().hex[:8]}"
    mine, theirs = unique("mine"), unique("theirs")
    root = secure.channel(secure.root)
    my_artifact = fill(root, mine, word)
    their_artifact = fill(root, theirs, word)
    search = search_pb2_grpc.SearchServiceStub(secure.channel(secure.token("reader", mine)))

    found = search.Search(search_pb2.SearchRequest(namespace=mine, query=word), timeout=30)
    assert sorted(hit.kind for hit in found.hits) == [
        search_pb2.SEARCH_KIND_RECORD,
        search_pb2.SEARCH_KIND_TRANSCRIPT_ENTRY,
        search_pb2.SEARCH_KIND_ARTIFACT_TEXT,
    ]
    everything = search_pb2_grpc.SearchServiceStub(root).Search(
        search_pb2.SearchRequest(namespace=theirs, query=word), timeout=30
    )
    assert len(everything.hits) == 3
    assert [hit.artifact.id for hit in everything.hits if hit.HasField("artifact")] == [
        their_artifact
    ]
    assert [hit.artifact.id for hit in found.hits if hit.HasField("artifact")] == [my_artifact]

    for namespace in (theirs, ""):
        try:
            search.Search(search_pb2.SearchRequest(namespace=namespace, query=word), timeout=30)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED
            info, _ = details_of(error)
            assert info.reason == "NAMESPACE_NOT_ALLOWED"
        else:
            raise AssertionError(f"a reader of {mine} searched {namespace or 'default'}")
