"""Where a blob lives, the same on disk and in a bucket: `blobs/sha256/ab/cd/<sha256>`
for bytes stored as sent, `blobs/sha256/ab/cd/<sha256>.zst` for zstd (seekable
format). The two-level fan-out keeps directories small on disk; in a bucket the
same keys let an operator find a blob by hash with the same path in both shapes.
"""

from __future__ import annotations

from strata_server.core.artifact_rules import SHA256_RE, Compression

ROOT = "blobs/sha256"
SUFFIX = {Compression.NONE: "", Compression.ZSTD: ".zst"}


def prefix(sha256: str) -> str:
    """The key of a blob without its encoding suffix."""
    return f"{ROOT}/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def key(sha256: str, compression: Compression) -> str:
    """The key (relative path) of a blob stored with `compression`."""
    return prefix(sha256) + SUFFIX[compression]


def parse(name: str) -> tuple[str, Compression] | None:
    """(sha256, compression) from a blob's file or key base name; None for anything
    else (a stray file)."""
    base = name.rsplit("/", 1)[-1]
    compression = Compression.NONE
    if base.endswith(".zst"):
        base, compression = base[:-4], Compression.ZSTD
    if not SHA256_RE.fullmatch(base):
        return None
    return base, compression
