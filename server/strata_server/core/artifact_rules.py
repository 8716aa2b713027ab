"""Artifacts: metadata rows that name content-addressed blobs, and the rules for them.

No gRPC, no SQL, no I/O. A blob is identified by the SHA-256 of its uncompressed
bytes; how it is stored (`Compression`) is an encoding the blob store chooses and
callers only see reported.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from strata_server.core.errors import BlobMissing as BlobMissing
from strata_server.core.errors import InvalidArgument, OutOfRange
from strata_server.core.jsontypes import fields_from_json, fields_to_json
from strata_server.core.parent_refs import ParentRef
from strata_server.core.values import frozen

SHA256_RE = re.compile(r"[0-9a-f]{64}")
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
DEFAULT_CONTENT_TYPE = "application/octet-stream"
KIND_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
MAX_OWNER = 256
MAX_NAME = 256
MAX_CONTENT_TYPE = 256
MAX_LABELS = 64
MAX_LABEL_VALUE = 256
CONTENT_TYPE_RE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;.*)?")
MAX_FIND = 1000
"""Most SHA-256s one FindMissingBlobs call may ask about."""

PIN_TTL = timedelta(hours=1)
"""How long an upload's pin keeps its blob from the sweep between publishing the blob
and inserting the artifact row (milliseconds in practice). A pin outliving this is
left by a crashed server and no longer protects anything."""


class Compression(StrEnum):
    """How a blob's bytes are stored."""

    NONE = "none"
    ZSTD = "zstd"


class ArtifactTier(StrEnum):
    """Where an artifact's bytes are kept (docs/artifacts.md, "Tiers")."""

    HOT = "hot"
    ARCHIVED = "archived"
    """An archive_artifacts policy moved it: on S3, its blob is in the colder storage
    class unless a hot artifact still names the blob; on local disk, only recorded."""


@frozen
class BlobRef:
    """What a blob store needs to read a blob: its name, encoding and both sizes."""

    sha256: str
    compression: Compression
    size: int
    stored_size: int


@frozen
class StoredBlob:
    """A blob as the blob store lists it (the uncompressed size is not known there)."""

    sha256: str
    compression: Compression
    stored_size: int
    modified: datetime


@frozen
class StagedBlob:
    """Everything an upload learned while staging its bytes."""

    sha256: str
    size: int
    stored_size: int
    compression: Compression


@frozen
class Artifact:
    """An artifact row: metadata plus the blob it names."""

    namespace: str
    id: str
    owner: str
    kind: str
    name: str
    content_type: str
    sha256: str
    size: int
    stored_size: int
    compression: Compression
    labels: Mapping[str, str]
    create_time: datetime
    parent: ParentRef | None = None
    archive_time: datetime | None = None
    """When an archive_artifacts policy archived it (None: it is hot)."""

    @property
    def tier(self) -> ArtifactTier:
        """Its tier, from `archive_time`."""
        return ArtifactTier.HOT if self.archive_time is None else ArtifactTier.ARCHIVED

    @property
    def blob(self) -> BlobRef:
        """The blob this artifact names."""
        return BlobRef(self.sha256, self.compression, self.size, self.stored_size)


@frozen
class KindUsage:
    """GetUsage's artifacts of one kind: how many, their logical and their stored
    bytes, and of those, the archived ones' (docs/artifacts.md, "Tiers")."""

    kind: str
    artifacts: int
    bytes: int
    stored_bytes: int
    archived: int = 0
    archived_bytes: int = 0
    archived_stored_bytes: int = 0


@frozen
class ArtifactListQuery:
    """A checked ListArtifacts page request, handed unchanged from the RPC to the
    SQL builder so the filters are named once rather than at every layer. Values
    left None do not filter; `after` is the last id of the previous page."""

    limit: int
    owner: str | None = None
    kind: str | None = None
    after: str | None = None
    parent: ParentRef | None = None


@frozen
class Header:
    """An upload header: what the artifact is, and what the content must be
    (`checked_header` checks one as a client sent it)."""

    owner: str
    kind: str
    name: str
    content_type: str
    labels: Mapping[str, str] = field(default_factory=dict)
    sha256: str | None = None
    size: int | None = None
    parent: ParentRef | None = None


@dataclass(slots=True)
class IntegrityReport:
    """What `check_blobs` found; each list is capped, the counts are not."""

    missing: list[tuple[str, str, str]] = field(default_factory=list)
    """(namespace, artifact id, sha256) of artifacts whose blob is missing."""
    missing_segments: list[tuple[str, str, str]] = field(default_factory=list)
    """(namespace, transcript id, sha256) of archived transcripts' segments whose
    blob is missing."""
    corrupt: list[tuple[str, str]] = field(default_factory=list)
    """(sha256, what is wrong) of blobs whose frame index or content is damaged."""
    orphans: list[tuple[str, int]] = field(default_factory=list)
    """(sha256, stored bytes) of blobs no artifact references (the sweep removes
    them after the grace period)."""
    orphan_bytes: int = 0
    """Stored bytes of every orphan, listed or not."""
    artifacts_checked: int = 0
    blobs_checked: int = 0
    contents_checked: int = 0
    """Blobs whose content was re-hashed (every one, or the sample)."""


def sha256_hex(value: str, field_name: str = "sha256") -> str:
    """A lowercase hex SHA-256, or InvalidArgument naming the field."""
    if not SHA256_RE.fullmatch(value):
        raise InvalidArgument.field(field_name, "must be 64 lowercase hex digits (a SHA-256)")
    return value


def _printable(value: str, field_name: str, limit: int) -> str:
    if not value:
        raise InvalidArgument.field(field_name, "is required")
    if len(value) > limit or not value.isprintable():
        raise InvalidArgument.field(field_name, f"must be 1-{limit} printable characters")
    return value


def checked_header(sent: Header) -> Header:
    """An upload header as the client sent it, checked (BadRequest violations name
    the field) and completed: the default content type, an empty sha256 as none."""
    if not KIND_RE.fullmatch(sent.kind):
        raise InvalidArgument.field(
            "header.kind", "must be a letter followed by up to 63 letters, digits, '_' or '-'"
        )
    content_type = sent.content_type or DEFAULT_CONTENT_TYPE
    if len(content_type) > MAX_CONTENT_TYPE or not CONTENT_TYPE_RE.fullmatch(content_type):
        raise InvalidArgument.field("header.content_type", "must be a MIME type like text/plain")
    if len(sent.labels) > MAX_LABELS:
        raise InvalidArgument.field("header.labels", f"must hold at most {MAX_LABELS} labels")
    for key, value in sent.labels.items():
        if not KIND_RE.fullmatch(key):
            raise InvalidArgument.field(
                "header.labels", f"key {key[:64]!r} must be a letter then letters, digits, _ or -"
            )
        if len(value) > MAX_LABEL_VALUE or not value.isprintable():
            raise InvalidArgument.field(
                "header.labels", f"value of {key!r} must be at most 256 printable characters"
            )
    if sent.size is not None and sent.size < 0:
        raise InvalidArgument.field("header.size", "must not be negative")
    return replace(
        sent,
        owner=_printable(sent.owner, "header.owner", MAX_OWNER),
        name=_printable(sent.name, "header.name", MAX_NAME),
        content_type=content_type,
        labels=dict(sent.labels),
        sha256=sha256_hex(sent.sha256, "header.sha256") if sent.sha256 else None,
    )


def check_staged(header: Header, staged: StagedBlob) -> None:
    """InvalidArgument when the content is not what the header promised."""
    if header.size is not None and staged.size != header.size:
        raise InvalidArgument.field(
            "header.size", f"the content has {staged.size} bytes, not {header.size}"
        )
    if header.sha256 is not None and staged.sha256 != header.sha256:
        raise InvalidArgument.field(
            "header.sha256", f"the content's SHA-256 is {staged.sha256}, not {header.sha256}"
        )


def byte_range(size: int, offset: int, limit: int) -> tuple[int, int]:
    """The [start, end) a DownloadArtifact(offset, limit) reads from `size` bytes."""
    if offset < 0:
        raise InvalidArgument.field("offset", "must not be negative")
    if limit < 0:
        raise InvalidArgument.field("limit", "must not be negative")
    if offset > size:
        raise OutOfRange(
            f"offset {offset} is past the end of the artifact ({size} bytes)",
            metadata={"size": str(size)},
        )
    end = size if limit == 0 else min(size, offset + limit)
    return offset, end


def artifact_to_json(artifact: Artifact) -> dict[str, Any]:
    """The artifact as JSON, as the request log stores an upload's result."""
    return fields_to_json(artifact)


def artifact_from_json(value: Mapping[str, Any]) -> Artifact:
    """Inverse of `artifact_to_json`."""
    return fields_from_json(Artifact, value)
