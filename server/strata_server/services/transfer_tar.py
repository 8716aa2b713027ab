"""The tar of a transfer: written as a stream by an export, read back from the
staged file by an import and checked against its manifest.

`tarfile` can write only to a file it owns and needs each member's size before its
bytes; the exporter knows every size up front (a spooled JSON Lines member, or a
blob's size from its artifact row), so it writes each header, the bytes as they
come, then the padding, and never holds a member in memory. Reading uses `tarfile`
itself on the staged file: nothing in it is trusted until `open_staged` has matched
the members with manifest.json (which comes last) and `StagedTar.verify` has hashed
each one.
"""

from __future__ import annotations

import asyncio
import hashlib
import tarfile
from collections.abc import AsyncIterator
from datetime import datetime
from typing import IO

from strata_server.core.transfer_format import (
    BLOB_NAME_RE,
    KINDS,
    MANIFEST,
    BadArchive,
    Manifest,
    member_name,
    parse_manifest,
)

READ = 256 << 10
"""Bytes read from the staged tar at a time."""
MAX_MANIFEST_BYTES = 64 << 20
"""manifest.json is read whole: it lists each member in about 150 bytes, so this
holds some 400,000 blobs."""
BLOCK = tarfile.BLOCKSIZE
END = b"\0" * (2 * BLOCK)
"""Two zero blocks end a tar."""


def header(name: str, size: int, mtime: datetime) -> bytes:
    """The header block(s) of a regular file member (PAX for long names)."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(mtime.timestamp())
    info.mode = 0o644
    info.type = tarfile.REGTYPE
    return info.tobuf(format=tarfile.PAX_FORMAT)


def padding(size: int) -> bytes:
    """Zeros that fill a member's last block."""
    return b"\0" * (-size % BLOCK)


class StagedTar:
    """An import's staged tar: its members, its manifest, and checked reads of both."""

    def __init__(
        self,
        tar: tarfile.TarFile,
        manifest: Manifest,
        infos: dict[str, tarfile.TarInfo],
    ):
        self.file = tar
        self.manifest = manifest
        self.infos = infos
        self.members = {m.name: m for m in manifest.members}
        self.content_bytes = sum(m.size for m in manifest.members)

    def read(self, name: str) -> IO[bytes]:
        """A member's bytes as a file."""
        handle = self.file.extractfile(self.infos[name])
        if handle is None:  # pragma: no cover - members are checked to be files
            raise BadArchive(f"{name} is not a file")
        return handle

    async def verify(self) -> AsyncIterator[int]:
        """Check every member's size and sha256 against the manifest (and a blob's
        against its name); yields bytes checked, for progress."""
        for member in self.manifest.members:
            handle = self.read(member.name)
            digest = hashlib.sha256()
            while data := await asyncio.to_thread(read_piece, handle, member.name):
                digest.update(data)
                yield len(data)
            blob = BLOB_NAME_RE.fullmatch(member.name)
            if digest.hexdigest() != member.sha256 or (blob and blob[1] != member.sha256):
                raise BadArchive(
                    f"{member.name} does not match its checksum in manifest.json: the archive "
                    "is corrupt",
                    metadata={"member": member.name},
                )


def read_piece(handle: IO[bytes], name: str) -> bytes:
    """The next READ bytes of a member (b"" at its end); a short tar is BadArchive."""
    try:
        return handle.read(READ)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise BadArchive(f"{name} cannot be read ({error}): the archive is truncated") from None


def open_staged(staged: IO[bytes]) -> StagedTar:
    """Read the tar's headers and its manifest; BadArchive for anything amiss."""
    try:
        tar = tarfile.open(fileobj=staged, mode="r:")  # noqa: SIM115 - the caller closes it
        infos = tar.getmembers()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise BadArchive(f"the archive is not a readable tar ({error})") from None
    try:
        if not infos or infos[-1].name != MANIFEST:
            raise BadArchive(
                f"the archive does not end with {MANIFEST}: it is truncated or not a Strata "
                "namespace archive"
            )
        by_name: dict[str, tarfile.TarInfo] = {}
        for info in infos:
            if not info.isfile() or info.name in by_name:
                raise BadArchive(f"the archive member {info.name!r} is not expected")
            by_name[info.name] = info
        if infos[-1].size > MAX_MANIFEST_BYTES:
            raise BadArchive(f"{MANIFEST} is larger than {MAX_MANIFEST_BYTES} bytes")
        handle = tar.extractfile(infos[-1])
        assert handle is not None
        data = read_piece(handle, MANIFEST)
        while more := read_piece(handle, MANIFEST):
            data += more
        if len(data) != infos[-1].size:
            raise BadArchive(f"{MANIFEST} is truncated")
        manifest = parse_manifest(data)
        listed = {m.name: m for m in manifest.members}
        present = set(by_name) - {MANIFEST}
        if set(listed) != present:
            missing = sorted(set(listed) - present)[:3]
            extra = sorted(present - set(listed))[:3]
            raise BadArchive(
                f"the archive's members differ from manifest.json (missing {missing}, "
                f"unlisted {extra}): it is truncated or was altered"
            )
        for name, member in listed.items():
            if by_name[name].size != member.size:
                raise BadArchive(f"{name} has {by_name[name].size} bytes, not {member.size}")
        for kind in KINDS:
            if member_name(kind) not in listed:
                raise BadArchive(f"the archive has no {member_name(kind)}")
    except BaseException:
        tar.close()
        raise
    return StagedTar(tar, manifest, by_name)
