"""Artifacts as the client returns them, and the file handling of `upload` and
`download` (no I/O on the network here: see `strata._artifact_streams`)."""

from __future__ import annotations

import hashlib
import mimetypes
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Literal

from strata._convert import datetime_from_timestamp, parent_record
from strata.v1 import artifacts_pb2

__all__ = ["Artifact", "Progress", "Source", "Target"]

CHUNK_SIZE = 1 << 20
"""Bytes per upload message: large enough to keep per-message costs small."""

Progress = Callable[[int, int | None], None]
"""Called as bytes move: (bytes so far, total bytes or None when unknown)."""

Source = str | os.PathLike[str] | IO[bytes]
"""What `upload` reads: a path, or a binary file object (read from its position)."""

Target = str | os.PathLike[str] | IO[bytes]
"""Where `download` writes: a path (written to a temporary file, then renamed into
place), or a binary file object (written at its position)."""

_TYPES = {
    ".log": "text/plain",
    ".txt": "text/plain",
    ".diff": "text/x-diff",
    ".patch": "text/x-diff",
    ".json": "application/json",
    ".ndjson": "application/x-ndjson",
}
"""Types `mimetypes` may not know on a machine without /etc/mime.types."""

_COMPRESSION: dict[int, Literal["none", "zstd"]] = {
    artifacts_pb2.COMPRESSION_NONE: "none",
    artifacts_pb2.COMPRESSION_ZSTD: "zstd",
}


@dataclass(frozen=True, slots=True)
class Artifact:
    """A stored blob and what it is."""

    namespace: str
    """The tenant or workspace."""
    id: str
    """Server-assigned id; ids sort by creation."""
    owner: str
    """The record or entity the artifact belongs to."""
    kind: str
    """What it is, e.g. "log" or "diff"."""
    name: str
    """A file name for the content."""
    content_type: str
    """The MIME type of the content."""
    sha256: str
    """Hex SHA-256 of the content."""
    size: int
    """Content size in bytes."""
    stored_size: int
    """Bytes the content takes in the blob store (shared by identical content)."""
    compression: Literal["none", "zstd"]
    """How the server stores the bytes (downloads are always the original bytes)."""
    labels: Mapping[str, str] = field(hash=False)
    """Caller-defined labels."""
    create_time: datetime
    """When the artifact was created (aware, UTC)."""
    parent: tuple[str, str] | None = None
    """(collection, id) of the record it belongs to; None when none."""
    archived: bool = False
    """Whether it is in the archive tier (on S3, a colder storage class; reads are
    the same). `restore_artifact` brings it back."""

    @classmethod
    def from_proto(cls, message: artifacts_pb2.Artifact) -> Artifact:
        """The artifact a `strata.v1.Artifact` message describes."""
        return cls(
            namespace=message.namespace,
            id=message.id,
            owner=message.owner,
            kind=message.kind,
            name=message.name,
            content_type=message.content_type,
            sha256=message.sha256,
            size=message.size,
            stored_size=message.stored_size,
            compression=_COMPRESSION.get(message.compression, "none"),
            labels=dict(message.labels),
            create_time=datetime_from_timestamp(message.create_time),
            parent=(message.parent.collection, message.parent.id)
            if message.HasField("parent")
            else None,
            archived=message.tier == artifacts_pb2.ARTIFACT_TIER_ARCHIVED,
        )


@dataclass(frozen=True, slots=True)
class Prepared:
    """An upload's header fields, with the content's hash and size when the source
    could be read twice (a path or a seekable file)."""

    header: artifacts_pb2.ArtifactHeader
    sha256: str | None
    size: int | None
    start: int | None


def open_source(source: Source) -> tuple[IO[bytes], bool]:
    """The file object to read, and whether this call opened it (and must close it)."""
    if isinstance(source, str | os.PathLike):
        return open(source, "rb"), True
    return source, False


def digest(file: IO[bytes]) -> tuple[str, int, int] | None:
    """(sha256, size, start) of a seekable file from its position, which is restored;
    None when the file cannot seek (it is then sent without a hash in the header)."""
    try:
        if not file.seekable():
            return None
        start = file.tell()
    except (AttributeError, OSError):
        return None
    hasher = hashlib.sha256()
    size = 0
    while piece := file.read(CHUNK_SIZE):
        hasher.update(piece)
        size += len(piece)
    file.seek(start)
    return hasher.hexdigest(), size, start


def prepare(
    file: IO[bytes],
    source: Source,
    *,
    owner: str,
    kind: str,
    name: str | None,
    content_type: str | None,
    labels: Mapping[str, str] | None,
    request_id: str | None,
    parent: tuple[str, str] | None = None,
) -> Prepared:
    """The header of an upload, but for its namespace (hashing the content first
    when it can be re-read)."""
    if name is None:
        raw = source if isinstance(source, str | os.PathLike) else getattr(file, "name", "")
        name = Path(os.fsdecode(raw)).name if isinstance(raw, str | bytes | os.PathLike) else ""
        name = name or "artifact"
    if content_type is None:
        guessed = mimetypes.guess_type(name)[0]
        content_type = guessed or _TYPES.get(Path(name).suffix.lower(), "")
    known = digest(file)
    header = artifacts_pb2.ArtifactHeader(
        owner=owner,
        kind=kind,
        name=name,
        content_type=content_type,
        labels=dict(labels or {}),
        request_id=request_id or "",
        parent=parent_record(parent),
    )
    if known is None:
        return Prepared(header, None, None, None)
    sha, size, start = known
    header.sha256 = sha
    header.size = size
    return Prepared(header, sha, size, start)


class Sink:
    """Where a download's bytes go: a file object, or a temporary file beside the
    target path that becomes the target only when the download is complete."""

    def __init__(self, target: Target) -> None:
        self._path: Path | None = None
        self._temp: Path | None = None
        if isinstance(target, str | os.PathLike):
            self._path = Path(target)
            self._temp = self._path.with_name(f".{self._path.name}.{os.getpid()}.part")
            self.file: IO[bytes] = open(self._temp, "wb")  # noqa: SIM115 - closed in finish/abort
        else:
            self.file = target

    def finish(self, durable: bool = False) -> None:
        """Close and move the temporary file into place; `durable` makes its
        bytes reach the disk first (fsync), so that the target is never a file
        of which a crash keeps only a part."""
        if self._path is not None and self._temp is not None:
            if durable:
                self.file.flush()
                os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self._temp, self._path)

    def abort(self) -> None:
        """Close and remove the temporary file."""
        if self._temp is not None:
            self.file.close()
            self._temp.unlink(missing_ok=True)
