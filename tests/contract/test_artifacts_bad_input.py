"""Every caller mistake on ArtifactService gets its own code and a detail naming the
fault, on both shapes, and stores nothing."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from strata.v1 import artifacts_pb2, artifacts_pb2_grpc
from tests.contract.artifacts_support import (
    BlobView,
    chunk,
    download,
    header,
    random_bytes,
    sha256,
    upload,
)
from tests.contract.helpers import expect_error, raised_by, unique
from tests.support.server import StrataProcess


@pytest.fixture
def arts(stubs) -> artifacts_pb2_grpc.ArtifactServiceStub:
    """ArtifactService stub over the shared channel to this test's server."""
    return artifacts_pb2_grpc.ArtifactServiceStub(stubs.channel)


@pytest.fixture
def blobs(server, shape, request) -> BlobView:
    """The blob store behind this test's server."""
    return BlobView(server, request.getfixturevalue("s3") if shape == "postgres" else None)


def stream(
    *messages: artifacts_pb2.UploadArtifactRequest,
) -> Iterator[artifacts_pb2.UploadArtifactRequest]:
    yield from messages


def test_an_empty_stream_needs_a_header(arts):
    expect_error(
        lambda: arts.UploadArtifact(stream()), grpc.StatusCode.INVALID_ARGUMENT, field="header"
    )
    assert "empty" in raised_by(lambda: arts.UploadArtifact(stream())).details()


def test_a_chunk_before_the_header(arts):
    error = raised_by(lambda: arts.UploadArtifact(stream(chunk(b"x"), header())))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "first message must be the header" in error.details()


def test_a_header_twice(arts, blobs):
    owner = unique("o-")
    before = blobs.blobs()
    error = raised_by(
        lambda: arts.UploadArtifact(stream(header(owner=owner), chunk(b"abc"), header(owner=owner)))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "header: was sent twice" in error.details()
    assert blobs.blobs() == before
    assert list(arts.ListArtifacts(artifacts_pb2.ListArtifactsRequest(owner=owner)).artifacts) == []


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"name": ""}, "header.name", "is required"),
        ({"name": "a\nb"}, "header.name", "printable"),
        ({"owner": ""}, "header.owner", "is required"),
        ({"kind": ""}, "header.kind", "letter"),
        ({"kind": "9lives"}, "header.kind", "letter"),
        ({"sha256": "abc"}, "header.sha256", "64 lowercase hex"),
        ({"sha256": "A" * 64}, "header.sha256", "64 lowercase hex"),
        ({"content_type": "not a type"}, "header.content_type", "MIME"),
        ({"size": -1}, "header.size", "negative"),
        ({"labels": {"1bad": "x"}}, "header.labels", "key"),
        ({"namespace": "Bad Namespace"}, "namespace", "a-z"),
        ({"request_id": "x" * 300}, "request_id", "printable"),
    ],
)
def test_an_ill_formed_header(arts, fields, field, words):
    error = raised_by(lambda: arts.UploadArtifact(stream(header(**fields), chunk(b"data"))))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert words in error.details()
    expect_error(
        lambda: arts.UploadArtifact(stream(header(**fields), chunk(b"data"))),
        grpc.StatusCode.INVALID_ARGUMENT,
        field=field,
    )


def test_a_wrong_sha256_stores_nothing(arts, blobs):
    owner = unique("o-")
    data = random_bytes(700_000)
    before, staged = blobs.blobs(), blobs.staging()
    claimed = sha256(b"something else")
    error = raised_by(lambda: upload(arts, data, owner=owner, sha256=claimed))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"SHA-256 is {sha256(data)}, not {claimed}" in error.details()
    assert blobs.blobs() == before and blobs.staged_since(staged) == []
    assert list(arts.ListArtifacts(artifacts_pb2.ListArtifactsRequest(owner=owner)).artifacts) == []


@pytest.mark.parametrize("announced", [10, 5000])
def test_a_wrong_size_stores_nothing(arts, blobs, announced):
    owner = unique("o-")
    before, staged = blobs.blobs(), blobs.staging()
    expect_error(
        lambda: upload(arts, random_bytes(1000), owner=owner, size=announced),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="header.size",
    )
    assert blobs.blobs() == before and blobs.staged_since(staged) == []


def test_skipping_the_bytes_of_unknown_content(arts):
    unknown = sha256(unique("never").encode())
    error = raised_by(lambda: arts.UploadArtifact(stream(header(sha256=unknown))))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "send the content" in error.details()
    expect_error(
        lambda: arts.UploadArtifact(stream(header(sha256=unknown))),
        grpc.StatusCode.FAILED_PRECONDITION,
        reason="BLOB_NOT_FOUND",
    )


def test_ranges_and_ids(arts):
    made = upload(arts, b"0123456789")
    expect_error(
        lambda: download(arts, made.id, offset=-1), grpc.StatusCode.INVALID_ARGUMENT, field="offset"
    )
    expect_error(
        lambda: download(arts, made.id, limit=-1), grpc.StatusCode.INVALID_ARGUMENT, field="limit"
    )
    error = raised_by(lambda: download(arts, made.id, offset=11))
    assert error.code() == grpc.StatusCode.OUT_OF_RANGE
    assert "past the end of the artifact (10 bytes)" in error.details()
    assert download(arts, made.id, offset=10)[1] == b""
    expect_error(lambda: download(arts, "no-such-artifact"), grpc.StatusCode.NOT_FOUND)
    expect_error(lambda: download(arts, "../etc"), grpc.StatusCode.INVALID_ARGUMENT, field="id")


def test_find_missing_blobs_checks_its_input(arts):
    expect_error(
        lambda: arts.FindMissingBlobs(artifacts_pb2.FindMissingBlobsRequest(sha256s=["zz"])),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="sha256s[0]",
    )
    expect_error(
        lambda: arts.FindMissingBlobs(
            artifacts_pb2.FindMissingBlobsRequest(sha256s=[sha256(b"")] * 1001)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="sha256s",
    )


def test_url_expiry_is_bounded(arts):
    from google.protobuf import duration_pb2

    made = upload(arts, b"x")
    expect_error(
        lambda: arts.GetArtifactUrl(
            artifacts_pb2.GetArtifactUrlRequest(
                id=made.id, expiry=duration_pb2.Duration(seconds=8 * 86400)
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="expiry",
    )


@pytest.fixture(params=["sqlite", "postgres"])
def small_server(request, database_url, tmp_path, s3):
    """A server whose artifacts may hold at most 1 MiB."""
    env = {"STRATA_MAX_ARTIFACT_BYTES": str(1 << 20)}
    if request.param == "postgres":
        env |= s3.env(unique("small-"))
    process = StrataProcess(database_url(request.param), tmp_path / "strata", **env)
    process.start()
    yield process
    process.stop()


def test_content_over_the_limit_is_resource_exhausted(small_server, s3):
    channel = small_server.channel()
    try:
        arts = artifacts_pb2_grpc.ArtifactServiceStub(channel)
        shape = "postgres" if small_server.database_url.startswith("postgres") else "sqlite"
        view = BlobView(small_server, s3 if shape == "postgres" else None)
        assert upload(arts, random_bytes(1 << 20)).size == 1 << 20  # exactly the limit
        before = view.blobs()
        error = raised_by(lambda: upload(arts, random_bytes((1 << 20) + 1)))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "larger than the limit of 1048576 bytes" in error.details()
        assert view.blobs() == before and view.staging() == []
    finally:
        channel.close()
