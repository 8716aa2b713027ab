"""CheckIntegrity reads what downloads trust, on both shapes (local disk; moto S3):
a flipped byte in a compressed blob's frame index is found without reading any
content, a compressed blob whose content no longer hashes to its name is found by a
full or a sampled check, an unreferenced blob is reported with its bytes, a row whose
blob is gone is reported, and GetIntegrityStatus shows the last report."""

from __future__ import annotations

import io
from typing import Any

import grpc
import pytest

from strata.v1 import admin_pb2, artifacts_pb2, artifacts_pb2_grpc
from strata_server.storage.blobs import encoding, layout
from tests.contract.artifacts_support import BlobView, random_bytes, text_log, upload
from tests.contract.helpers import expect_error, unique
from tests.contract.test_integrity import check


@pytest.fixture
def server(blob_server):
    """Every check here reads all the server's blobs: a server of their own (conftest)."""
    return blob_server


@pytest.fixture
def arts(stubs) -> artifacts_pb2_grpc.ArtifactServiceStub:
    return artifacts_pb2_grpc.ArtifactServiceStub(stubs.channel)


@pytest.fixture
def blobs(server, shape, request) -> BlobView:
    return BlobView(server, request.getfixturevalue("s3") if shape == "postgres" else None)


def stored(blobs: BlobView, sha: str) -> tuple[str, bytes]:
    """The key and stored bytes of a published blob."""
    key = next(key for key in blobs.blobs() if (layout.parse(key) or ("",))[0] == sha)
    if blobs.s3 is None:
        return key, (blobs.data_dir / key).read_bytes()
    response = blobs.s3.client().get_object(blobs.bucket, key)
    try:
        return key, response.read()
    finally:
        response.close()
        response.release_conn()


def overwrite(blobs: BlobView, key: str, data: bytes) -> None:
    """Replace a blob's stored bytes behind the server's back."""
    if blobs.s3 is None:
        (blobs.data_dir / key).write_bytes(data)
    else:
        blobs.s3.client().put_object(blobs.bucket, key, io.BytesIO(data), len(data))


def blob_findings(report: admin_pb2.IntegrityReport) -> dict[str, Any]:
    return {f.entity_id: f for f in report.findings if f.entity == "blob"}


def forget(stubs: Any, arts: Any, *artifacts: artifacts_pb2.Artifact) -> None:
    """Delete the damaged artifacts and sweep their blobs: nothing left for others."""
    for artifact in artifacts:
        arts.DeleteArtifact(artifacts_pb2.DeleteArtifactRequest(id=artifact.id))
    list(stubs.admin.RunCleanup(admin_pb2.RunCleanupRequest(all_namespaces=True)))


def test_a_flipped_byte_in_a_frame_index_is_found_without_reading_content(stubs, arts, blobs):
    artifact = upload(arts, text_log(60_000, seed=7), owner=unique("o-"), name="frames.log")
    assert artifact.compression == artifacts_pb2.COMPRESSION_ZSTD
    assert artifact.size > 3 * encoding.FRAME_SIZE
    key, data = stored(blobs, artifact.sha256)
    damaged = bytearray(data)
    damaged[len(data) - encoding.FOOTER.size - encoding.ENTRY.size] ^= 0x01  # last frame's size
    overwrite(blobs, key, bytes(damaged))

    quick = check(stubs, all_namespaces=True)
    finding = blob_findings(quick)[artifact.sha256]
    assert "frame index" in finding.problem and not finding.repairable
    full = check(stubs, all_namespaces=True, verify_blobs=True)
    assert "frame index" in blob_findings(full)[artifact.sha256].problem
    one = check(stubs, namespace="default")
    assert artifact.sha256 not in blob_findings(one), "blobs are shared: only all_namespaces"

    overwrite(blobs, key, data)
    assert artifact.sha256 not in blob_findings(check(stubs, all_namespaces=True))
    forget(stubs, arts, artifact)


def test_content_that_no_longer_hashes_is_found_by_a_full_or_sampled_check(stubs, arts, blobs):
    artifact = upload(arts, text_log(20_000, seed=8), owner=unique("o-"), name="hash.log")
    key, _ = stored(blobs, artifact.sha256)
    encoder = encoding.Encoder("text/plain")
    other = encoder.feed(text_log(20_000, seed=9))
    rest, staged = encoder.finish()
    assert staged.compression.value == "zstd"
    overwrite(blobs, key, other + rest)  # a well-formed blob of other content

    quick = check(stubs, all_namespaces=True)
    assert artifact.sha256 not in blob_findings(quick), "content is read only when asked"
    full = check(stubs, all_namespaces=True, verify_blobs=True)
    assert "no longer hashes" in blob_findings(full)[artifact.sha256].problem
    sampled = check(stubs, all_namespaces=True, verify_sample_percent=100)
    assert "no longer hashes" in blob_findings(sampled)[artifact.sha256].problem
    counts = {c.check: c.count for c in sampled.checked}
    assert counts["blob_contents"] == counts["blobs"] >= 1
    none = check(stubs, all_namespaces=True, verify_sample_percent=0)
    assert {c.check: c.count for c in none.checked}["blob_contents"] == 0
    forget(stubs, arts, artifact)


def test_unreferenced_blobs_come_with_their_bytes_and_missing_blobs_with_their_rows(
    stubs, arts, blobs
):
    orphan = upload(arts, random_bytes(7000), owner=unique("o-"), name="orphan.bin")
    lost = upload(arts, random_bytes(3000), owner=unique("o-"), name="lost.bin")
    arts.DeleteArtifact(artifacts_pb2.DeleteArtifactRequest(id=orphan.id))
    blobs.remove(lost.sha256)

    report = check(stubs, all_namespaces=True)
    finding = blob_findings(report)[orphan.sha256]
    assert finding.bytes == orphan.stored_size == 7000 and finding.repairable
    assert report.unreferenced_bytes >= 7000
    rows = {(f.namespace, f.entity_id): f for f in report.findings if f.entity == "artifact"}
    assert "missing" in rows[("default", lost.id)].problem
    assert ("default", lost.id) in {
        (f.namespace, f.entity_id)
        for f in check(stubs, namespace="default").findings
        if f.entity == "artifact"
    }
    forget(stubs, arts, lost)
    after = check(stubs, all_namespaces=True)
    assert orphan.sha256 not in blob_findings(after)


def test_the_last_report_of_each_scope_is_kept(stubs):
    every = check(stubs, all_namespaces=True)
    mine = check(stubs, namespace="default")
    status = stubs.admin.GetIntegrityStatus(
        admin_pb2.GetIntegrityStatusRequest(all_namespaces=True)
    )
    assert status.last_report == every
    assert not status.HasField("schedule_interval"), "the session servers schedule none"
    default = stubs.admin.GetIntegrityStatus(admin_pb2.GetIntegrityStatusRequest())
    assert default.last_report == mine
    never = stubs.admin.GetIntegrityStatus(
        admin_pb2.GetIntegrityStatusRequest(namespace=unique("never-"))
    )
    assert not never.HasField("last_report")


def test_bad_integrity_requests_are_refused(stubs):
    expect_error(
        lambda: list(
            stubs.admin.CheckIntegrity(
                admin_pb2.CheckIntegrityRequest(all_namespaces=True, verify_sample_percent=101)
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="verify_sample_percent",
    )
    expect_error(
        lambda: stubs.admin.GetIntegrityStatus(
            admin_pb2.GetIntegrityStatusRequest(namespace="bad namespace!")
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="namespace",
    )
