"""The archive tier of artifacts over a real channel, on both shapes: an
archive_artifacts policy and RunCleanup archive (on S3 the blob is copied in place
to the colder storage class, unless a hot artifact still names it; on local disk
only the tier is recorded), GetArtifact and ListArtifacts show the tier, downloads,
URLs, export and the integrity check are unchanged, usage counts bytes per tier,
RestoreArtifact brings an artifact back; archive and restore are audited."""

from __future__ import annotations

import time
import urllib.request
import uuid
from typing import Any

import grpc
import pytest
import zstandard

from strata.v1 import admin_pb2, artifacts_pb2, artifacts_pb2_grpc
from strata_server.core.artifact_rules import Compression
from strata_server.storage.blobs import layout
from tests.contract.archive_support import export
from tests.contract.artifacts_support import random_bytes, text_log, upload
from tests.contract.helpers import expect_error, seconds
from tests.contract.test_integrity import check

ARCHIVE = admin_pb2.RETENTION_TARGET_ARCHIVE_ARTIFACTS
HOT = artifacts_pb2.ARTIFACT_TIER_HOT
ARCHIVED = artifacts_pb2.ARTIFACT_TIER_ARCHIVED


@pytest.fixture
def arts(server, stubs) -> artifacts_pb2_grpc.ArtifactServiceStub:
    """ArtifactService stub over the shared channel to this test's server."""
    return artifacts_pb2_grpc.ArtifactServiceStub(stubs.channel)


@pytest.fixture
def storage_class(shape, server, request) -> Any:
    """The S3 storage class of an artifact's blob, as a HEAD reports it (None on the
    disk shape, which has no classes)."""
    if shape != "postgres":
        return lambda artifact: None
    client = request.getfixturevalue("s3").client()
    bucket = server.env["STRATA_S3_BUCKET"]

    def of(artifact: artifacts_pb2.Artifact) -> str:
        compression = (
            Compression.ZSTD
            if artifact.compression == artifacts_pb2.COMPRESSION_ZSTD
            else Compression.NONE
        )
        head = client.stat_object(bucket, layout.key(artifact.sha256, compression))
        return str(head.metadata.get("x-amz-storage-class", "STANDARD"))

    return of


def download(arts: Any, ns: str, id: str, offset: int = 0, limit: int = 0) -> tuple[int, bytes]:
    stream = arts.DownloadArtifact(
        artifacts_pb2.DownloadArtifactRequest(namespace=ns, id=id, offset=offset, limit=limit)
    )
    first = next(stream)
    return first.artifact.tier, b"".join(message.chunk for message in stream)


def get(arts: Any, ns: str, id: str) -> artifacts_pb2.Artifact:
    return arts.GetArtifact(artifacts_pb2.GetArtifactRequest(namespace=ns, id=id))


def cleanup(stubs: Any, ns: str) -> dict[str, int]:
    *_, last = stubs.admin.RunCleanup(admin_pb2.RunCleanupRequest(namespace=ns))
    return {step.target: step.count for step in last.report.steps}


def artifact_tiers(stubs: Any, ns: str) -> admin_pb2.ArtifactTierUsage:
    [usage] = stubs.admin.GetUsage(admin_pb2.GetUsageRequest(namespace=ns)).namespaces
    return usage.artifact_tiers


def test_archive_by_policy_reads_usage_restore(stubs, arts, shape, storage_class):
    ns = f"art-{uuid.uuid4().hex[:12]}"
    text, binary, shared = text_log(4000, seed=7), random_bytes(70_000), random_bytes(5000)

    def put(data: bytes, kind: str, name: str) -> artifacts_pb2.Artifact:
        return upload(arts, data, namespace=ns, owner="ann", kind=kind, name=name)

    log = put(text, "log", "run.log")
    blob = put(binary, "log", "core.bin")
    shared_log = put(shared, "log", "shared.bin")
    kept = put(shared, "keep", "shared-too.bin")  # hot, names shared_log's blob
    assert log.tier == HOT and log.compression == artifacts_pb2.COMPRESSION_ZSTD
    before = {a.id: download(arts, ns, a.id)[1] for a in (log, blob, shared_log)}
    hot_usage = artifact_tiers(stubs, ns)
    assert (hot_usage.hot_artifacts, hot_usage.archived_artifacts) == (4, 0)

    stubs.admin.SetRetentionPolicy(
        admin_pb2.SetRetentionPolicyRequest(
            namespace=ns, target=ARCHIVE, selector="log", max_age=seconds(1)
        )
    )
    time.sleep(1.2)
    assert cleanup(stubs, ns)["archive_artifacts"] == 3
    assert [get(arts, ns, a.id).tier for a in (log, blob, shared_log, kept)] == [
        ARCHIVED,
        ARCHIVED,
        ARCHIVED,
        HOT,
    ]
    listed = arts.ListArtifacts(artifacts_pb2.ListArtifactsRequest(namespace=ns)).artifacts
    assert {a.id: a.tier for a in listed}[kept.id] == HOT
    if shape == "postgres":
        assert storage_class(log) == storage_class(blob) == "STANDARD_IA"
        assert storage_class(shared_log) == "STANDARD", "a hot artifact still names it"
    # Reads are unchanged: whole, ranged, the presigned URL, export, integrity.
    for a in (log, blob, shared_log):
        assert download(arts, ns, a.id) == (ARCHIVED, before[a.id])
    assert download(arts, ns, log.id, 1000, 5000)[1] == text[1000:6000]
    if shape == "postgres":
        url = arts.GetArtifactUrl(artifacts_pb2.GetArtifactUrlRequest(namespace=ns, id=log.id))
        with urllib.request.urlopen(url.url, timeout=10) as response:
            assert zstandard.ZstdDecompressor().stream_reader(response.read()).read() == text
    assert export(stubs.channel, ns).summary.counts["artifacts"] == 4
    report = check(stubs, namespace=ns, verify_blobs=True)
    assert [f for f in report.findings if f.check == "blobs"] == []
    archived = artifact_tiers(stubs, ns)
    assert (archived.hot_artifacts, archived.archived_artifacts) == (1, 3)
    assert archived.archived_bytes == len(text) + len(binary) + len(shared)
    assert archived.hot_bytes == len(shared)
    assert archived.archived_stored_bytes + archived.hot_stored_bytes == (
        hot_usage.hot_stored_bytes
    )
    assert cleanup(stubs, ns)["archive_artifacts"] == 0  # archived once

    restored = arts.RestoreArtifact(artifacts_pb2.RestoreArtifactRequest(namespace=ns, id=log.id))
    assert restored.tier == HOT and restored.sha256 == log.sha256
    again = arts.RestoreArtifact(artifacts_pb2.RestoreArtifactRequest(namespace=ns, id=log.id))
    assert again == restored
    if shape == "postgres":
        assert storage_class(log) == "STANDARD" and storage_class(blob) == "STANDARD_IA"
    assert download(arts, ns, log.id) == (HOT, text)
    assert artifact_tiers(stubs, ns).archived_artifacts == 2
    audit = stubs.admin.ListAuditEntries(
        admin_pb2.ListAuditEntriesRequest(namespace=ns, entity="artifact")
    ).entries
    actions = [e.action for e in audit if e.entity_id == log.id]
    assert actions.count("archive") == 1 and actions.count("restore") == 1


def test_restore_unknown_and_bad_input(arts):
    expect_error(
        lambda: arts.RestoreArtifact(artifacts_pb2.RestoreArtifactRequest(id="no such/id")),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="id",
    )
    expect_error(
        lambda: arts.RestoreArtifact(
            artifacts_pb2.RestoreArtifactRequest(id=f"a{uuid.uuid4().hex}")
        ),
        grpc.StatusCode.NOT_FOUND,
    )


def test_archive_policy_selector_is_a_kind(stubs):
    expect_error(
        lambda: stubs.admin.SetRetentionPolicy(
            admin_pb2.SetRetentionPolicyRequest(
                namespace="default", target=ARCHIVE, selector="not a kind", max_age=seconds(60)
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="selector",
    )
