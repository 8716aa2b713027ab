"""The orphan sweep and the integrity check, run the way the admin work will run them:
`sweep_orphan_blobs` / `check_blobs` on storage ports opened on a live server's
own database and blob store, while that server serves uploads."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest

from strata.v1 import artifacts_pb2, artifacts_pb2_grpc
from strata_server.services.blob_gc import check_blobs, sweep_orphan_blobs
from tests.contract.artifacts_support import (
    MIB,
    BlobView,
    chunked,
    download,
    header,
    random_bytes,
    sha256,
    storage_ports,
    upload,
)
from tests.contract.helpers import unique

NO_GRACE = timedelta(0)


@pytest.fixture
def server(blob_server):
    """Sweeps and checks read all the server's blobs: a server of their own (conftest)."""
    return blob_server


@pytest.fixture
def arts(stubs) -> artifacts_pb2_grpc.ArtifactServiceStub:
    """ArtifactService stub over the shared channel to this test's server."""
    return artifacts_pb2_grpc.ArtifactServiceStub(stubs.channel)


@pytest.fixture
def blobs(server, shape, request) -> BlobView:
    """The blob store behind this test's server."""
    return BlobView(server, request.getfixturevalue("s3") if shape == "postgres" else None)


async def sweep(server, grace: timedelta = NO_GRACE):
    async with storage_ports(server) as (database, store):
        return await sweep_orphan_blobs(database, store, grace)


def delete(arts, id: str) -> None:
    arts.DeleteArtifact(artifacts_pb2.DeleteArtifactRequest(id=id))


async def test_delete_then_sweep_removes_the_blob(server, arts, blobs):
    data = random_bytes(300_000)
    first = upload(arts, data, owner=unique("o-"))
    second = upload(arts, data, owner=unique("o-"))
    delete(arts, first.id)
    await sweep(server)
    assert blobs.has(first.sha256), "still named by the second artifact"
    delete(arts, second.id)
    result = await sweep(server, grace=timedelta(hours=1))
    assert blobs.has(first.sha256), "younger than the grace period"
    result = await sweep(server)
    assert not blobs.has(first.sha256)
    assert result.deleted >= 1 and result.freed_bytes >= len(data)


async def test_a_sweep_keeps_the_blob_of_an_upload_in_flight(server, arts, blobs):
    data = random_bytes(2 * MIB)
    digest = sha256(data)
    old = upload(arts, data, owner=unique("o-"))
    delete(arts, old.id)  # an orphan now, and old enough for a sweep without grace
    owner = unique("o-")
    halfway = threading.Event()
    go_on = threading.Event()

    def messages():
        yield header(owner=owner, sha256=digest)
        for i, message in enumerate(chunked(data)):
            if i == 4:
                halfway.set()
                go_on.wait(20)
            yield message

    call = arts.UploadArtifact.future(messages())
    assert await asyncio.to_thread(halfway.wait, 10)
    await asyncio.sleep(0.2)
    await sweep(server)
    assert blobs.has(digest), "the sweep took a blob an upload in flight had pinned"
    go_on.set()
    made = await asyncio.to_thread(call.result, 30)
    assert download(arts, made.id)[1] == data


async def test_an_upload_without_a_hash_racing_a_sweep_republishes(server, arts, blobs):
    data = random_bytes(MIB)
    old = upload(arts, data, owner=unique("o-"))
    delete(arts, old.id)
    owner = unique("o-")
    halfway = threading.Event()
    go_on = threading.Event()

    def messages():
        yield header(owner=owner)  # no sha256: the server cannot know what is coming
        for i, message in enumerate(chunked(data)):
            if i == 2:
                halfway.set()
                go_on.wait(20)
            yield message

    call = arts.UploadArtifact.future(messages())
    assert await asyncio.to_thread(halfway.wait, 10)
    await sweep(server)
    assert not blobs.has(old.sha256)
    go_on.set()
    made = await asyncio.to_thread(call.result, 30)
    assert blobs.has(made.sha256)
    assert download(arts, made.id)[1] == data


@pytest.mark.parametrize("with_hash", [True, False])
async def test_uploads_racing_sweeps_never_lose_their_blob(server, arts, with_hash):
    data = random_bytes(256 << 10)
    digest = sha256(data)
    fields = {"sha256": digest} if with_hash else {}
    made = []
    for _ in range(6):
        seed = upload(arts, data, owner=unique("o-"))
        delete(arts, seed.id)  # the blob is an old orphan again
        results = await asyncio.gather(
            asyncio.to_thread(upload, arts, data, owner=unique("o-"), **fields),
            sweep(server),
        )
        made.append(results[0])
    for artifact in made:
        assert download(arts, artifact.id)[1] == data, "an artifact lost its blob to a sweep"
    for artifact in made:
        delete(arts, artifact.id)


async def test_integrity_check_finds_missing_corrupt_and_orphan_blobs(server, arts, blobs):
    missing = upload(arts, random_bytes(5000), owner=unique("o-"))
    corrupt = upload(arts, random_bytes(5000), owner=unique("o-"))
    orphan = upload(arts, random_bytes(5000), owner=unique("o-"))
    blobs.remove(missing.sha256)
    blobs.corrupt(corrupt.sha256)
    delete(arts, orphan.id)
    async with storage_ports(server) as (database, store):
        quick = await check_blobs(database, store)
        full = await check_blobs(database, store, verify=True)
    assert ("default", missing.id, missing.sha256) in quick.missing
    assert (orphan.sha256, orphan.stored_size) in quick.orphans
    assert orphan.sha256 not in {sha for _, _, sha in quick.missing}
    assert corrupt.sha256 not in dict(quick.corrupt), "only checked when asked to verify"
    assert corrupt.sha256 in dict(full.corrupt) and orphan.sha256 not in dict(full.corrupt)
    assert full.artifacts_checked >= 2 and full.blobs_checked >= 2
    import grpc

    error = None
    try:
        download(arts, missing.id)
    except grpc.RpcError as failure:
        error = failure
    assert error is not None and error.code() == grpc.StatusCode.DATA_LOSS
    assert "missing" in error.details()
    for artifact in (missing, corrupt):
        delete(arts, artifact.id)
    await sweep(server)


async def test_a_blob_cut_short_behind_the_servers_back_fails_its_download(server, arts, blobs):
    """A stored object shorter than its row says (on S3, a ranged GET of a shorter
    object answers what there is, without an error) fails the download with
    DATA_LOSS after the bytes there are, never ends it as if it were complete."""
    import grpc

    data = random_bytes(300_000)  # random: stored uncompressed, read by one ranged GET
    made = upload(arts, data, owner=unique("o-"))
    assert made.stored_size == len(data)
    blobs.truncate(made.sha256, keep=100_000)
    error = None
    try:
        download(arts, made.id)
    except grpc.RpcError as failure:
        error = failure
    assert error is not None and error.code() == grpc.StatusCode.DATA_LOSS
    assert "shorter" in error.details()
    delete(arts, made.id)
    await sweep(server)
