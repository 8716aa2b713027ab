"""A client stream that stops sending without closing is given up on, on both shapes:
UploadArtifact and ImportNamespace fail with DEADLINE_EXCEEDED (reason IDLE_TIMEOUT)
after the configured idle time, and what they had staged is removed."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from strata.v1 import admin_pb2_grpc, artifacts_pb2_grpc
from tests.contract.archive_support import export, import_, import_requests, namespace, nothing_in
from tests.contract.artifacts_support import BlobView, chunked, header, random_bytes, upload
from tests.contract.helpers import details_of, raised_by, unique
from tests.support.server import StrataProcess

MIB = 1 << 20
IDLE_SECONDS = "1"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def idle_server(request, database_url, tmp_path_factory, s3) -> Iterator[StrataProcess]:  # type: ignore[no-untyped-def]
    """A server of one shape that waits 1 s for a client's next message, with its own
    TMPDIR (where an import is staged)."""
    workdir = tmp_path_factory.mktemp(f"idle-{request.param}")
    (workdir / "tmp").mkdir()
    env = {
        "STRATA_UPLOAD_IDLE_TIMEOUT_SECONDS": IDLE_SECONDS,
        "STRATA_IMPORT_IDLE_TIMEOUT_SECONDS": IDLE_SECONDS,
        "TMPDIR": str(workdir / "tmp"),
    }
    if request.param == "postgres":
        env |= s3.env(unique("idle-"))
    process = StrataProcess(database_url(request.param), workdir, **env)
    process.start()
    yield process
    process.stop()


@pytest.fixture
def view(idle_server, s3) -> BlobView:  # type: ignore[no-untyped-def]
    return BlobView(idle_server, s3 if idle_server.database_url.startswith("postgres") else None)


class Stall:
    """Request messages, then silence until released (the stream stays open)."""

    def __init__(self, messages: list[object]) -> None:
        self.messages = messages
        self.released = threading.Event()

    def __iter__(self) -> Iterator[object]:
        yield from self.messages
        self.released.wait(60)

    def __enter__(self) -> Stall:
        return self

    def __exit__(self, *_: object) -> None:
        self.released.set()


def _assert_idle_timeout(error: grpc.RpcError, setting: str) -> None:
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED, error.details()
    info, _ = details_of(error)
    assert info.reason == "IDLE_TIMEOUT" and info.metadata["idle_seconds"] == IDLE_SECONDS
    assert setting in error.details()


def _staged_imports(server: StrataProcess) -> list[str]:
    """The server's open files under its TMPDIR (an import's staged archive)."""
    pid = server.process.pid  # type: ignore[union-attr]
    temp = server.env["TMPDIR"]
    fds = Path(f"/proc/{pid}/fd")
    found = []
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:
            continue  # closed meanwhile
        if target.startswith(temp):
            found.append(target)
    return found


def test_a_stalled_upload_is_aborted_and_its_staging_removed(idle_server, view):
    with idle_server.channel() as channel:
        stub = artifacts_pb2_grpc.ArtifactServiceStub(channel)
        content = random_bytes(4 * MIB)
        before = view.blobs()
        with Stall([header(name="stalled.bin"), *chunked(content)]) as stall:
            error = raised_by(lambda: stub.UploadArtifact(iter(stall), timeout=60))
        _assert_idle_timeout(error, "STRATA_UPLOAD_IDLE_TIMEOUT_SECONDS")
        assert view.staging() == []
        if view.s3 is not None:
            assert view.unfinished_multipart_uploads() == []
        assert view.blobs() == before
        # a header alone, then silence, is given up on too
        with Stall([header(name="silent.bin")]) as stall:
            error = raised_by(lambda: stub.UploadArtifact(iter(stall), timeout=60))
        _assert_idle_timeout(error, "STRATA_UPLOAD_IDLE_TIMEOUT_SECONDS")
        # a client that keeps sending is served
        assert upload(stub, content).size == len(content)


def test_a_stalled_import_is_aborted_and_its_staging_removed(idle_server):
    with idle_server.channel() as channel:
        archive = export(channel, namespace()).data
        target = namespace()
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        # the header and 4 MiB of a larger archive (it has no end yet), then silence
        messages = list(import_requests(archive + bytes(4 * MIB), target))
        with Stall(messages) as stall:
            error = raised_by(lambda: list(stub.ImportNamespace(iter(stall), timeout=60)))
        _assert_idle_timeout(error, "STRATA_IMPORT_IDLE_TIMEOUT_SECONDS")
        assert _staged_imports(idle_server) == []
        nothing_in(channel, target)
        assert import_(channel, archive, target).result.namespace == target
