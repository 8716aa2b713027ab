"""Writing a tar archive as a stream, one member at a time.

`tarfile` can write only to a file it owns and needs each member's size before its
bytes; the exporter knows every size up front (a spooled JSON Lines member, or a
blob's size from its artifact row), so it writes each header, the bytes as they
come, then the padding, and never holds a member in memory. Reading uses `tarfile`
itself on the staged file.
"""

from __future__ import annotations

import tarfile
from datetime import datetime

BLOCK = tarfile.BLOCKSIZE
END = b"\0" * (2 * BLOCK)
"""Two zero blocks end an archive."""


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
