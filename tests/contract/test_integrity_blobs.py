"""CheckIntegrity and RunCleanup over the blob store, on both shapes (local disk;
moto S3): a deleted blob, a flipped byte and an orphan blob planted behind the
server's back are found; the orphan is the one safe to repair (the sweep)."""

from __future__ import annotations

from typing import Any

import pytest

from strata.v1 import admin_pb2, artifacts_pb2, artifacts_pb2_grpc
from tests.contract.artifacts_support import BlobView, random_bytes, upload
from tests.contract.helpers import unique
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


def cleanup(stubs: Any, **fields: Any) -> admin_pb2.CleanupReport:
    *_, last = stubs.admin.RunCleanup(admin_pb2.RunCleanupRequest(**fields))
    return last.report


def test_blob_damage_is_found_and_orphans_swept(stubs, arts, blobs):
    missing = upload(arts, random_bytes(4000), owner=unique("o-"), kind="log", name="m")
    corrupt = upload(arts, random_bytes(4000), owner=unique("o-"), kind="log", name="c")
    orphan = upload(arts, random_bytes(4000), owner=unique("o-"), kind="log", name="x")
    blobs.remove(missing.sha256)
    blobs.corrupt(corrupt.sha256)
    arts.DeleteArtifact(artifacts_pb2.DeleteArtifactRequest(id=orphan.id))

    quick = check(stubs, all_namespaces=True)
    found = {(f.entity, f.entity_id): f for f in quick.findings if f.check == "blobs"}
    assert not found[("artifact", missing.id)].repairable
    assert found[("blob", orphan.sha256)].repairable
    assert ("blob", corrupt.sha256) not in found, "bytes are only read with verify_blobs"
    verified = check(stubs, all_namespaces=True, verify_blobs=True)
    assert ("blob", corrupt.sha256) in {(f.entity, f.entity_id) for f in verified.findings}
    counts = {c.check: c.count for c in verified.checked}
    assert counts["artifacts"] >= 2 and counts["blobs"] >= 2

    dry = cleanup(stubs, all_namespaces=True, dry_run=True)
    assert {s.target: s.count for s in dry.steps}["orphan_blobs"] >= 1
    assert blobs.has(orphan.sha256)

    repaired = check(stubs, all_namespaces=True, repair=True)
    swept = {f.entity_id: f.repaired for f in repaired.findings if f.entity == "blob"}
    assert swept[orphan.sha256] is True and not blobs.has(orphan.sha256)
    assert all(not f.repaired for f in repaired.findings if f.entity == "artifact")

    for artifact in (missing, corrupt):  # leave nothing damaged for other tests
        arts.DeleteArtifact(artifacts_pb2.DeleteArtifactRequest(id=artifact.id))
    after = cleanup(stubs, all_namespaces=True)
    assert {s.target: s.count for s in after.steps}["orphan_blobs"] >= 1
    assert not blobs.has(corrupt.sha256)
