"""ArtifactService over a real channel, on both shapes: SQLite with blobs on local disk,
PostgreSQL with blobs in S3 (moto). Each test uses an owner of its own."""

from __future__ import annotations

import hashlib
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
import zstandard
from google.protobuf import duration_pb2

from strata.v1 import artifacts_pb2, artifacts_pb2_grpc
from strata_server.storage.blobs.encoding import FRAME_SIZE
from tests.contract.artifacts_support import (
    MIB,
    BlobView,
    download,
    random_bytes,
    sha256,
    text_log,
    upload,
)
from tests.contract.helpers import expect_error, unique

READ_CHUNK = 256 << 10


@pytest.fixture
def arts(server, stubs) -> artifacts_pb2_grpc.ArtifactServiceStub:
    """ArtifactService stub over the shared channel to this test's server."""
    return artifacts_pb2_grpc.ArtifactServiceStub(stubs.channel)


@pytest.fixture
def blobs(server, shape, request) -> BlobView:
    """The blob store behind this test's server."""
    return BlobView(server, request.getfixturevalue("s3") if shape == "postgres" else None)


@pytest.fixture
def owner() -> str:
    """An owner no other test uses."""
    return unique("executions/ex-")


def test_upload_get_list_download_delete(arts, owner):
    data = text_log(2000)
    made = upload(
        arts,
        data,
        owner=owner,
        kind="log",
        name="build.log",
        content_type="text/plain; charset=utf-8",
        labels={"step": "compile"},
    )
    assert (made.owner, made.kind, made.name, made.size) == (owner, "log", "build.log", len(data))
    assert made.sha256 == sha256(data)
    assert made.content_type == "text/plain; charset=utf-8"
    assert dict(made.labels) == {"step": "compile"}
    assert made.create_time.seconds > 0

    got = arts.GetArtifact(artifacts_pb2.GetArtifactRequest(id=made.id))
    assert got == made
    first, content = download(arts, made.id)
    assert first == made and content == data

    diff = upload(arts, b"--- a\n+++ b\n", owner=owner, kind="diff", name="x.diff")
    listed = arts.ListArtifacts(artifacts_pb2.ListArtifactsRequest(owner=owner))
    assert [a.id for a in listed.artifacts] == [made.id, diff.id]
    logs = arts.ListArtifacts(artifacts_pb2.ListArtifactsRequest(owner=owner, kind="log"))
    assert [a.id for a in logs.artifacts] == [made.id]

    arts.DeleteArtifact(artifacts_pb2.DeleteArtifactRequest(id=made.id))
    expect_error(
        lambda: arts.GetArtifact(artifacts_pb2.GetArtifactRequest(id=made.id)),
        grpc.StatusCode.NOT_FOUND,
    )
    expect_error(
        lambda: arts.DeleteArtifact(artifacts_pb2.DeleteArtifactRequest(id=made.id)),
        grpc.StatusCode.NOT_FOUND,
    )


def test_list_pages_in_creation_order(arts, owner):
    made = [upload(arts, f"n{i}".encode(), owner=owner).id for i in range(5)]
    seen, token = [], ""
    while True:
        page = arts.ListArtifacts(
            artifacts_pb2.ListArtifactsRequest(owner=owner, page_size=2, page_token=token)
        )
        seen += [a.id for a in page.artifacts]
        token = page.next_page_token
        if not token:
            break
    assert seen == made
    first_page = arts.ListArtifacts(artifacts_pb2.ListArtifactsRequest(owner=owner, page_size=2))
    expect_error(
        lambda: arts.ListArtifacts(
            artifacts_pb2.ListArtifactsRequest(
                owner=owner, kind="diff", page_token=first_page.next_page_token
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="page_token",
    )


def test_text_log_is_stored_at_least_3x_smaller(arts, owner, blobs):
    data = text_log(60_000)  # ~5 MB
    made = upload(arts, data, owner=owner, content_type="text/plain")
    assert made.compression == artifacts_pb2.COMPRESSION_ZSTD
    assert made.stored_size * 3 <= made.size, (made.stored_size, made.size)
    stored = {k: v for k, v in blobs.blobs().items() if made.sha256 in k}
    assert list(stored.values()) == [made.stored_size]
    assert next(iter(stored)).endswith(".zst")


def test_random_content_is_stored_as_sent(arts, owner, blobs):
    data = random_bytes(600_000)
    made = upload(arts, data, owner=owner, content_type="text/plain")
    assert made.compression == artifacts_pb2.COMPRESSION_NONE
    assert made.stored_size == made.size == len(data)
    assert download(arts, made.id)[1] == data


@pytest.mark.parametrize("kind", ["text", "random"])
def test_ranges_are_exact_at_chunk_and_frame_boundaries(arts, owner, kind):
    data = text_log(40_000) if kind == "text" else random_bytes(3 * MIB + 12345)
    made = upload(arts, data, owner=owner)
    expected = artifacts_pb2.COMPRESSION_ZSTD if kind == "text" else artifacts_pb2.COMPRESSION_NONE
    assert made.compression == expected
    size = len(data)
    cases = [
        (0, 1),
        (0, READ_CHUNK),
        (READ_CHUNK - 1, 2),
        (READ_CHUNK, READ_CHUNK),
        (FRAME_SIZE - 1, 1),
        (FRAME_SIZE - 1, 2),
        (FRAME_SIZE, 0),
        (FRAME_SIZE, FRAME_SIZE),
        (FRAME_SIZE - 10, FRAME_SIZE + 20),
        (2 * FRAME_SIZE + 5, 7),
        (size - 1, 0),
        (size - 1, 10),
        (size, 0),
        (123, 0),
    ]
    for offset, limit in cases:
        _, content = download(arts, made.id, offset, limit)
        want = data[offset : offset + limit] if limit else data[offset:]
        assert content == want, (offset, limit, len(content), len(want))
    expect_error(lambda: download(arts, made.id, size + 1), grpc.StatusCode.OUT_OF_RANGE)


def test_chunks_are_at_most_256_kib(arts, owner):
    data = random_bytes(MIB + 7)
    made = upload(arts, data, chunk_size=3 * MIB)
    stream = arts.DownloadArtifact(artifacts_pb2.DownloadArtifactRequest(id=made.id))
    sizes = [len(m.chunk) for m in stream if m.WhichOneof("part") == "chunk"]
    assert sum(sizes) == len(data) and max(sizes) <= READ_CHUNK


def test_identical_content_is_stored_once(arts, owner, blobs):
    data = text_log(5000, seed=hash(owner))
    staged = blobs.staging()
    first = upload(arts, data, owner=owner)
    before = blobs.blobs()
    second = upload(arts, data, owner=owner, name="again.log")
    assert second.id != first.id and second.sha256 == first.sha256
    assert blobs.blobs() == before, "a re-upload stored new blob bytes"
    # naming the hash lets the client skip the bytes entirely
    third = upload(arts, b"", owner=owner, sha256=first.sha256, name="skipped.log")
    assert (third.size, third.stored_size, third.compression) == (
        first.size,
        first.stored_size,
        first.compression,
    )
    assert download(arts, third.id)[1] == data
    assert blobs.blobs() == before
    assert blobs.staged_since(staged) == []


def test_find_missing_blobs(arts, owner):
    data = random_bytes(1000)
    made = upload(arts, data, owner=owner)
    absent = sha256(b"never uploaded " + owner.encode())
    found = arts.FindMissingBlobs(
        artifacts_pb2.FindMissingBlobsRequest(sha256s=[made.sha256, absent])
    )
    assert list(found.missing_sha256s) == [absent]
    other = arts.FindMissingBlobs(
        artifacts_pb2.FindMissingBlobsRequest(namespace=unique("ns-"), sha256s=[made.sha256])
    )
    assert list(other.missing_sha256s) == [made.sha256], "namespaces do not see each other"


def test_concurrent_uploads_of_the_same_content_make_one_blob(arts, owner, blobs):
    data = random_bytes(2 * MIB)
    staged = blobs.staging()
    with ThreadPoolExecutor(6) as pool:
        made = list(pool.map(lambda i: upload(arts, data, owner=owner, name=f"{i}.bin"), range(6)))
    assert len({a.id for a in made}) == 6 and {a.sha256 for a in made} == {sha256(data)}
    assert [k for k in blobs.blobs() if sha256(data) in k] != []
    assert len([k for k in blobs.blobs() if sha256(data) in k]) == 1
    assert blobs.staged_since(staged) == []


def test_cancelled_upload_leaves_nothing(arts, owner, blobs):
    data = random_bytes(3 * MIB)
    sent = threading.Event()
    hold = threading.Event()

    def messages():
        from tests.contract.artifacts_support import chunked, header

        yield header(owner=owner)
        for i, message in enumerate(chunked(data)):
            if i == 8:
                sent.set()
                hold.wait(10)
            yield message

    before, staged = blobs.blobs(), blobs.staging()
    call = arts.UploadArtifact.future(messages())
    assert sent.wait(10)
    time.sleep(0.3)  # the server has staged the first chunks
    call.cancel()
    hold.set()
    assert call.cancelled() or call.exception() is not None
    deadline = time.monotonic() + 10
    while blobs.staged_since(staged) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert blobs.staged_since(staged) == []
    assert blobs.blobs() == before
    listed = arts.ListArtifacts(artifacts_pb2.ListArtifactsRequest(owner=owner))
    assert list(listed.artifacts) == []


def test_retry_with_the_same_request_id_returns_the_first_result(arts, owner, blobs):
    data = text_log(100, seed=7)
    first = upload(arts, data, owner=owner, request_id=owner)
    again = upload(arts, data, owner=owner, request_id=owner)
    assert again == first
    listed = arts.ListArtifacts(artifacts_pb2.ListArtifactsRequest(owner=owner))
    assert [a.id for a in listed.artifacts] == [first.id]
    expect_error(
        lambda: upload(arts, data + b"x", owner=owner, request_id=owner),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="request_id",
    )


def test_presigned_url(arts, owner, shape):
    data = text_log(3000)
    made = upload(arts, data, owner=owner, content_type="text/plain", name="run.log")
    request = artifacts_pb2.GetArtifactUrlRequest(
        id=made.id, expiry=duration_pb2.Duration(seconds=60)
    )
    if shape == "sqlite":
        expect_error(
            lambda: arts.GetArtifactUrl(request),
            grpc.StatusCode.FAILED_PRECONDITION,
            reason="PRESIGNED_URLS_UNSUPPORTED",
        )
        return
    answer = arts.GetArtifactUrl(request)
    assert answer.compression == made.compression == artifacts_pb2.COMPRESSION_ZSTD
    with urllib.request.urlopen(answer.url, timeout=10) as response:
        body = response.read()
    assert zstandard.ZstdDecompressor().stream_reader(body).read() == data


class PeakRss:
    """Samples a process's resident set every 50 ms while the block runs; `growth`
    is the peak above the resident set at the start, in bytes."""

    def __init__(self, pid: int) -> None:
        self._status = Path(f"/proc/{pid}/status")
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample)
        self.baseline = self.peak = self._rss()

    def _rss(self) -> int:
        for line in self._status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) << 10
        raise AssertionError("no VmRSS")

    def _sample(self) -> None:
        while not self._done.wait(0.05):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


@pytest.mark.slow
def test_200_mb_round_trip(server, arts, owner):
    """Also: the server's memory stays bounded by chunks and parts, not the payload
    (holding the content whole would add at least 200 MB)."""
    size = 200 * MIB
    piece = MIB
    digest = hashlib.sha256()
    text = text_log(16_000)[:piece]  # a text frame every fourth MiB, the rest random

    def pieces():
        for at in range(0, size, piece):
            block = random_bytes(piece) if (at // piece) % 4 else text
            digest.update(block)
            yield block

    with PeakRss(server.process.pid) as memory:
        made = upload(arts, pieces(), owner=owner, name="big.bin")
        assert made.size == size and made.sha256 == digest.hexdigest()
        check = hashlib.sha256()
        received = 0
        stream = arts.DownloadArtifact(
            artifacts_pb2.DownloadArtifactRequest(id=made.id), timeout=300
        )
        for message in stream:
            if message.WhichOneof("part") == "chunk":
                check.update(message.chunk)
                received += len(message.chunk)
    assert received == size and check.hexdigest() == made.sha256
    assert memory.growth < 80 * MIB, f"server RSS grew {memory.growth / MIB:.0f} MiB"


def test_uploads_and_deletes_are_audited(arts, stubs, owner):
    from strata.v1 import admin_pb2
    from tests.contract.artifacts_support import chunked, header

    request_id = unique("req-")
    made = arts.UploadArtifact(
        iter([header(owner=owner, request_id=request_id), *chunked(b"audited")]),
        metadata=[("x-strata-actor", "ci-bot")],
    )
    arts.DeleteArtifact(
        artifacts_pb2.DeleteArtifactRequest(id=made.id), metadata=[("x-strata-actor", "ops")]
    )
    entries = stubs.admin.ListAuditEntries(
        admin_pb2.ListAuditEntriesRequest(entity="artifact", entity_id=made.id)
    ).entries
    assert [(e.action, e.actor) for e in entries] == [("delete", "ops"), ("create", "ci-bot")]
    assert entries[1].request_id == request_id
    assert "sha256" in entries[1].changed_fields
