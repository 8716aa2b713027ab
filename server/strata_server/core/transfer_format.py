"""The namespace archive format: which members an archive holds, and its manifest.

An archive is a plain (POSIX ustar/pax) tar, so `tar tvf` and `tar xf` read it:

    records.jsonl.gz, jobs.jsonl.gz, ...   one gzip-compressed JSON Lines member per kind,
                                          rows in key order (KINDS gives the order)
    blobs/<sha256>                        each blob's content, uncompressed, once
    manifest.json                         last: format, version, counts, and every
                                          member's size and sha256

The manifest comes last so the exporter can hash each member while streaming it and
never hold a member, or the archive, in memory. A reader must therefore see the whole
archive before trusting any of it: the importer stages it to a file, checks the
manifest against every member, and only then writes.

Everything here is deterministic (sorted JSON keys, gzip without a timestamp, fixed
tar headers), so exporting the same rows twice gives byte-identical members: a round
trip (export, import into an empty server, export) is checked by comparing the
manifests' member checksums. No I/O, no gRPC, no SQL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from strata_server.core.errors import AlreadyExists, InvalidArgument
from strata_server.core.values import frozen

FORMAT = "strata-namespace-archive"
"""manifest.json "format": what kind of file this is."""
VERSION = 2
"""manifest.json "version": bumped whenever a reader of the previous version would
misread an archive. A reader refuses versions it does not know. Version 2: an audit
line may list `entity_ids` and `entity_versions` (a purge batch's row, migration
0024), which a version 1 reader would take for one entry of the collection."""
READABLE = (1, VERSION)
"""The versions this server imports: a version 1 archive is a version 2 one without
batch rows."""
MANIFEST = "manifest.json"
BLOB_PREFIX = "blobs/"
BLOB_NAME_RE = re.compile(r"blobs/([0-9a-f]{64})")
SHA256_RE = re.compile(r"[0-9a-f]{64}")


class BadArchive(InvalidArgument):
    """The archive is truncated, corrupt or not a Strata namespace archive."""

    reason = "BAD_ARCHIVE"


class Kind(StrEnum):
    """One kind of row an archive holds, named as its member and ImportCount.kind."""

    QUEUES = "queues"
    RECORDS = "records"
    JOBS = "jobs"
    TRANSCRIPTS = "transcripts"
    ENTRIES = "entries"
    ARTIFACTS = "artifacts"
    AUDIT = "audit"


KINDS: tuple[Kind, ...] = tuple(Kind)
"""Member order. Transcripts precede their entries, and artifacts come before the
blobs, so an importer meets what it needs to check a row before the row."""
BLOBS = "blobs"
"""The count name of distinct blobs (ImportCount.kind, ArchiveSummary.counts)."""


class ConflictPolicy(StrEnum):
    """What an import does with a row whose key the target namespace already holds."""

    SKIP = "skip"
    OVERWRITE = "overwrite"
    FAIL = "fail"


def member_name(kind: Kind) -> str:
    """The tar member holding one kind's rows."""
    return f"{kind.value}.jsonl.gz"


def blob_member(sha256: str) -> str:
    """The tar member holding a blob's content."""
    return f"{BLOB_PREFIX}{sha256}"


@frozen
class Member:
    """One tar member as the manifest lists it."""

    name: str
    size: int
    sha256: str
    rows: int = 0
    """JSON Lines rows (0 for blobs)."""


@frozen
class Manifest:
    """What manifest.json says."""

    namespace: str
    owner: str
    create_time: datetime
    members: tuple[Member, ...]
    counts: Mapping[str, int] = field(default_factory=dict)
    source: Mapping[str, str] = field(default_factory=dict)
    """Where it came from (server version, database and blob backends): informative."""
    version: int = VERSION

    def to_bytes(self) -> bytes:
        """manifest.json's content (pretty-printed: operators read it)."""
        return (
            json.dumps(
                {
                    "format": FORMAT,
                    "version": self.version,
                    "namespace": self.namespace,
                    "owner": self.owner,
                    "create_time": format_time(self.create_time),
                    "source": dict(self.source),
                    "counts": dict(self.counts),
                    "members": [
                        {"name": m.name, "size": m.size, "sha256": m.sha256, "rows": m.rows}
                        for m in self.members
                    ],
                },
                indent=2,
                sort_keys=True,
            ).encode()
            + b"\n"
        )


def parse_manifest(data: bytes) -> Manifest:
    """Read manifest.json; BadArchive when it is not a manifest this version reads."""
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadArchive(f"manifest.json is not valid JSON: {error}") from None
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        raise BadArchive("manifest.json does not describe a Strata namespace archive")
    version = value.get("version")
    if version not in READABLE or type(version) is not int:
        raise BadArchive(
            f"the archive's format version is {version!r}; this server reads versions "
            f"{', '.join(map(str, READABLE))}",
            metadata={"version": str(version), "supported": ",".join(map(str, READABLE))},
        )
    try:
        members = tuple(
            Member(_str(m["name"]), _int(m["size"]), _sha(m["sha256"]), _int(m.get("rows", 0)))
            for m in value["members"]
        )
        manifest = Manifest(
            namespace=_str(value["namespace"]),
            owner=_str(value.get("owner", "")),
            create_time=parse_time(value["create_time"]),
            members=members,
            counts={_str(k): _int(v) for k, v in dict(value.get("counts", {})).items()},
            source={_str(k): _str(v) for k, v in dict(value.get("source", {})).items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise BadArchive(f"manifest.json is malformed: {error!r}") from None
    check_members(manifest.members)
    return manifest


def check_members(members: Sequence[Member]) -> None:
    """Every member name is a known kind or a blob, each at most once."""
    known = {member_name(kind) for kind in KINDS}
    seen: set[str] = set()
    for member in members:
        if member.name in seen:
            raise BadArchive(f"manifest.json lists {member.name} twice")
        seen.add(member.name)
        if member.name not in known and not BLOB_NAME_RE.fullmatch(member.name):
            raise BadArchive(f"manifest.json lists an unknown member {member.name!r}")


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with exactly six fractional digits: one spelling per instant.
    (isoformat, not strftime: a tenth of the cost, and an export formats millions.)"""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")[:-6] + "Z"


def parse_time(value: Any) -> datetime:
    """Inverse of format_time (any RFC 3339 with an offset is accepted)."""
    if not isinstance(value, str):
        raise ValueError(f"a time must be an RFC 3339 string, not {value!r}")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"the time {value!r} has no offset")
    return parsed


_LINE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
"""One encoder for every row: json.dumps with options builds a new one per call."""


def dumps_line(value: Mapping[str, Any]) -> bytes:
    """One JSON Lines row: sorted keys, no spaces, UTF-8, so the bytes are canonical."""
    return (_LINE.encode(value) + "\n").encode()


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _int(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise TypeError(f"expected a non-negative integer, got {value!r}")
    return value


def _sha(value: Any) -> str:
    if not isinstance(value, str) or not SHA256_RE.fullmatch(value):
        raise ValueError(f"expected a sha256 in hex, got {value!r}")
    return value


@dataclass(slots=True)
class KindCount:
    """What an import did with the rows of one kind."""

    kind: str
    imported: int = 0
    skipped: int = 0
    overwritten: int = 0


@dataclass(slots=True)
class ImportCounts:
    """What an import did, kind by kind (in KINDS order, then blobs)."""

    kinds: dict[str, KindCount] = field(
        default_factory=lambda: {name: KindCount(name) for name in (*KINDS, BLOBS)}
    )

    def __getitem__(self, kind: str) -> KindCount:
        return self.kinds[kind]


def split_conflicts(
    kind: str,
    namespace: str,
    rows: Sequence[Any],
    keys: Sequence[Any],
    stored: set[Any],
    policy: ConflictPolicy,
    count: KindCount,
) -> tuple[list[Any], list[Any]]:
    """Rows to insert and rows to write over stored ones, by the conflict policy:
    SKIP counts the stored keys as skipped, FAIL refuses the import (AlreadyExists,
    naming the first key), OVERWRITE returns them to be replaced. `keys[i]` is the
    key of `rows[i]`; `stored` the keys of this batch the namespace already holds."""
    fresh: list[Any] = []
    taken: list[Any] = []
    for row, key in zip(rows, keys, strict=True):
        if key not in stored:
            fresh.append(row)
            continue
        if policy is ConflictPolicy.FAIL:
            shown = "/".join(key) if isinstance(key, tuple) else str(key)
            raise AlreadyExists(
                f"the namespace {namespace!r} already holds {kind} {shown!r}; nothing was "
                "imported (import with the conflict policy skip or overwrite)",
                metadata={"kind": kind, "id": shown},
            )
        taken.append(row)
    if policy is ConflictPolicy.SKIP:
        count.skipped += len(taken)
        taken = []
    count.imported += len(fresh)
    count.overwritten += len(taken)
    return fresh, taken
