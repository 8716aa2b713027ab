"""AdminService.ReindexArtifacts over a real channel, on both shapes: an imported text
artifact has no indexed text (import does not read blobs back), so Search finds it
by its text only after the re-index; a second run reads and indexes nothing new, a
rebuild indexes again; progress comes before the report."""

from __future__ import annotations

import uuid
from typing import Any

import grpc

from strata.v1 import admin_pb2, artifacts_pb2_grpc, search_pb2, search_pb2_grpc
from tests.contract.archive_support import export, import_
from tests.contract.artifacts_support import random_bytes, upload
from tests.contract.helpers import expect_error


def found(stubs: Any, ns: str, word: str) -> list[str]:
    hits = search_pb2_grpc.SearchServiceStub(stubs.channel).Search(
        search_pb2.SearchRequest(
            namespace=ns, query=word, kinds=[search_pb2.SEARCH_KIND_ARTIFACT_TEXT]
        )
    )
    return [hit.artifact.id for hit in hits.hits]


def reindex(stubs: Any, **fields: Any) -> tuple[list[admin_pb2.Progress], admin_pb2.ReindexReport]:
    *progress, last = stubs.admin.ReindexArtifacts(admin_pb2.ReindexArtifactsRequest(**fields))
    assert progress and all(event.HasField("progress") for event in progress)
    assert last.HasField("report")
    return [event.progress for event in progress], last.report


def test_imported_text_is_found_after_the_reindex(stubs):
    source, copy = (f"rx-{uuid.uuid4().hex[:12]}" for _ in range(2))
    word = f"marker{uuid.uuid4().hex[:10]}"
    arts = artifacts_pb2_grpc.ArtifactServiceStub(stubs.channel)
    text = upload(
        arts,
        f"line one\nthe {word} is here\n".encode() * 50,
        namespace=source,
        owner="ann",
        kind="log",
        name="run.log",
        content_type="text/plain",
    )
    upload(arts, random_bytes(3000), namespace=source, owner="ann", kind="bin", name="x.bin")
    assert found(stubs, source, word) == [text.id]  # the upload indexed it

    import_(stubs.channel, export(stubs.channel, source).data, copy)
    assert found(stubs, copy, word) == [], "an import writes no text index"
    progress, report = reindex(stubs, namespace=copy)
    assert (report.artifacts, report.indexed, report.not_text, report.failed) == (2, 1, 1, 0)
    assert progress[-1].done == 2 and progress[-1].unit == "artifacts"
    assert found(stubs, copy, word) == [text.id]

    _, again = reindex(stubs, namespace=copy)
    assert (again.indexed, again.already_indexed) == (0, 1)
    _, rebuilt = reindex(stubs, namespace=copy, rebuild=True)
    assert (rebuilt.indexed, rebuilt.already_indexed) == (1, 0)
    assert found(stubs, copy, word) == [text.id]
    _, everywhere = reindex(stubs, all_namespaces=True)
    assert everywhere.artifacts >= 4


def test_reindex_bad_input(stubs):
    expect_error(
        lambda: reindex(stubs, namespace="x", all_namespaces=True),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="namespace",
    )
    expect_error(
        lambda: reindex(stubs, namespace="bad namespace!"),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="namespace",
    )
