"""`upload` and `download`, written once for both clients as machines
(`strata._machines`): streamed, hashed, with progress.

Uploads hash a re-readable source first and ask `FindMissingBlobs`: content the
server already stores for the namespace is not sent at all (the header names its
sha256 and the server reuses it). Downloads of a whole artifact are checked against
its sha256; a path target only appears once the download is complete and correct.
File reads and writes are `Blocking` effects: the asyncio client runs them in
worker threads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import partial
from typing import Any

from strata._artifact_requests import find_missing_blobs
from strata._machines import Blocking, Chunks, Machine, Open, Read, Send
from strata._rpc import StreamRpc
from strata.artifacts import (
    CHUNK_SIZE,
    Artifact,
    Progress,
    Sink,
    Source,
    Target,
    open_source,
    prepare,
)
from strata.errors import DataLoss, StrataError
from strata.v1 import artifacts_pb2

BLOB_NOT_FOUND = "BLOB_NOT_FOUND"
"""ErrorInfo reason of an upload without chunks whose content the server no
longer has (removed since FindMissingBlobs said it had it)."""


def _range_total(artifact: Artifact, offset: int, limit: int) -> int:
    end = artifact.size if limit == 0 else min(artifact.size, offset + limit)
    return max(0, end - offset)


class _Download:
    """One download's bookkeeping: the sink, hash, count and progress."""

    def __init__(self, target: Target, offset: int, limit: int, progress: Progress | None):
        self.sink = Sink(target)
        self.whole = offset == 0 and limit == 0
        self.offset, self.limit = offset, limit
        self.progress = progress
        self.hasher = hashlib.sha256()
        self.received = 0
        self.total: int | None = None
        self.artifact: Artifact | None = None

    def take(self, message: artifacts_pb2.DownloadArtifactResponse) -> bytes | None:
        """Record the artifact message; return a chunk's bytes to write."""
        if message.WhichOneof("part") == "artifact":
            self.artifact = Artifact.from_proto(message.artifact)
            self.total = _range_total(self.artifact, self.offset, self.limit)
            return None
        return message.chunk

    def wrote(self, data: bytes) -> None:
        """Account for bytes written."""
        if self.whole:
            self.hasher.update(data)
        self.received += len(data)
        if self.progress is not None:
            self.progress(self.received, self.total)

    def result(self) -> Artifact:
        """The artifact, after checking what arrived."""
        if self.artifact is None:
            raise DataLoss("the download stream ended before the artifact's metadata")
        if self.received != self.total or (
            self.whole and self.hasher.hexdigest() != self.artifact.sha256
        ):
            raise DataLoss(
                f"the downloaded bytes of artifact {self.artifact.id} do not match its "
                f"sha256 and size ({self.received} of {self.total} bytes)"
            )
        return self.artifact


def _upload_rpc(
    header: artifacts_pb2.ArtifactHeader, namespace: str | None
) -> StreamRpc[artifacts_pb2.Artifact, Artifact]:
    def build(ns: str) -> artifacts_pb2.UploadArtifactRequest:
        request = artifacts_pb2.UploadArtifactRequest(header=header)
        request.header.namespace = ns
        return request

    return StreamRpc("artifacts", "UploadArtifact", build, Artifact.from_proto, namespace)


def _chunk(piece: bytes) -> artifacts_pb2.UploadArtifactRequest:
    return artifacts_pb2.UploadArtifactRequest(chunk=piece)


# The calls; each docstring is the documentation of the client method.


def upload(
    source: Source,
    *,
    owner: str,
    kind: str,
    name: str | None = None,
    content_type: str | None = None,
    labels: Mapping[str, str] | None = None,
    request_id: str | None = None,
    namespace: str | None = None,
    progress: Progress | None = None,
    parent: tuple[str, str] | None = None,
) -> Machine[Artifact]:
    """Upload a file (a path, or a binary file object from its position) as an
    artifact of `owner` and `kind`, streamed in 1 MiB chunks. A re-readable
    source is hashed first: content the server already stores for the
    namespace is not sent again. `name` defaults to the file's name,
    `content_type` to a guess from it. `progress(sent, total)` is called as
    bytes go. `parent` is the (collection, id) of the record the artifact belongs
    to. Raises InvalidArgument, ResourceExhausted (too large), Unavailable."""
    file, opened = yield Blocking(partial(open_source, source))
    try:
        prepared = yield Blocking(
            partial(
                prepare,
                file,
                source,
                owner=owner,
                kind=kind,
                name=name,
                content_type=content_type,
                labels=labels,
                request_id=request_id,
                parent=parent,
            )
        )
        rpc = _upload_rpc(prepared.header, namespace)
        if prepared.sha256 is not None and not (
            yield find_missing_blobs([prepared.sha256], namespace=namespace)
        ):
            try:
                stored: Artifact = yield Send(
                    rpc, Chunks(None, _chunk, CHUNK_SIZE, progress, prepared.size)
                )
                return stored
            except StrataError as error:  # removed since FindMissingBlobs: send the bytes
                if error.reason != BLOB_NOT_FOUND:
                    raise
        sent: Artifact = yield Send(rpc, Chunks(file, _chunk, CHUNK_SIZE, progress, prepared.size))
        return sent
    finally:
        if opened:
            yield Blocking(file.close)


def download(
    id: str,
    target: Target,
    *,
    offset: int = 0,
    limit: int = 0,
    namespace: str | None = None,
    progress: Progress | None = None,
) -> Machine[Artifact]:
    """Download an artifact's content, or `limit` bytes from `offset` (0: to the
    end), into `target`: a path (written beside it, renamed into place when
    complete) or a binary file object. A whole download is checked against
    the artifact's sha256 (DataLoss if it differs). `progress(received,
    total)` is called as bytes arrive. Returns the artifact's metadata.
    Raises NotFound, OutOfRange, InvalidArgument, Unavailable."""
    state: _Download = yield Blocking(partial(_Download, target, offset, limit, progress))
    rpc: StreamRpc[Any, Any] = StreamRpc(
        "artifacts",
        "DownloadArtifact",
        lambda ns: artifacts_pb2.DownloadArtifactRequest(
            namespace=ns, id=id, offset=offset, limit=limit
        ),
        lambda message: message,
        namespace,
    )
    try:
        stream = yield Open(rpc)
        while (message := (yield Read(stream))) is not None:
            data = state.take(message)
            if data is not None:
                yield Blocking(partial(state.sink.file.write, data))
                state.wrote(data)
        artifact = state.result()
        yield Blocking(state.sink.finish)
        return artifact
    except BaseException:
        yield Blocking(state.sink.abort)
        raise
