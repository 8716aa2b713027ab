"""What the integrity check asks of one stored blob, the same for disk and S3.

A compressed blob's seek table (its frame index) is what every range read trusts,
while a plain zstd decoder skips it: so a flipped byte in it left whole-blob
re-hashing content and downloads failing with DATA_LOSS. `inspect` therefore
checks the table on its own, cheaply (two small reads at the end of the blob):
the skippable frame's header and the footer are the ones written, the frames it
lists add up to the stored size (and their content to the artifact's size), every
frame but the last holds FRAME_SIZE bytes.
With `content`, it then reads the frames *by the table*, as a download does,
checks each decompresses to the size the table says, and hashes the result.

Memory is one frame (or READ_SIZE for a raw blob), whatever the blob's size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import zstandard

from strata_server.core.artifact_rules import Compression, StoredBlob
from strata_server.storage.blobs import encoding

READ_SIZE = 256 << 10

Read = Callable[[int, int], bytes]
"""Reads `length` stored bytes at `offset` (fewer only at the end of the blob)."""


def inspect(blob: StoredBlob, read: Read, *, content: bool, size: int | None = None) -> str | None:
    """What is wrong with `blob`'s stored bytes, in words; None when nothing is.
    Without `content`, only the frame index of a compressed blob is read (and, given
    the content `size` its artifact records, checked to add up to it)."""
    if blob.compression is Compression.NONE:
        return _hash_raw(blob, read) if content else None
    table, problem = _frame_index(blob, read)
    if problem is not None:
        return problem
    if size is not None and sum(d for _, d in table) != size:
        return f"its frame index is damaged: its frames do not add up to the {size} bytes stored"
    return _hash_frames(blob, read, table) if content else None


def _frame_index(blob: StoredBlob, read: Read) -> tuple[list[tuple[int, int]], str | None]:
    size = blob.stored_size
    if size < encoding.table_size(0):
        return [], "its frame index is damaged: the blob is shorter than a seek table"
    footer = read(size - encoding.FOOTER.size, encoding.FOOTER.size)
    count, descriptor, magic = encoding.FOOTER.unpack(footer)
    if magic != encoding.SEEKABLE_MAGIC or descriptor != 0:
        return [], "its frame index is damaged: no seekable footer"
    length = encoding.table_size(count)
    if length > size:
        return [], f"its frame index is damaged: {count} frames do not fit in {size} bytes"
    tail = read(size - length, length)
    magic, frame_size = encoding.FRAME_HEADER.unpack_from(tail, 0)
    if magic != encoding.SKIPPABLE_MAGIC or frame_size != length - encoding.FRAME_HEADER.size:
        return [], "its frame index is damaged: bad seek-table frame header"
    table = encoding.parse_table(tail)
    if sum(compressed for compressed, _ in table) + length != size:
        return table, "its frame index is damaged: the frames do not add up to the stored size"
    if any(d != encoding.FRAME_SIZE for _, d in table[:-1]) or (
        table and not 0 < table[-1][1] <= encoding.FRAME_SIZE
    ):
        return table, "its frame index is damaged: a frame's content size is wrong"
    return table, None


def _hash_frames(blob: StoredBlob, read: Read, table: list[tuple[int, int]]) -> str | None:
    digest = hashlib.sha256()
    decompressor = zstandard.ZstdDecompressor()
    offset = 0
    for number, (compressed, expected) in enumerate(table):
        frame = read(offset, compressed)
        offset += compressed
        try:
            content = decompressor.decompress(frame, max_output_size=expected)
        except zstandard.ZstdError as error:
            return f"frame {number} does not decompress: {error}"
        if len(content) != expected:
            return f"frame {number} decompresses to {len(content)} bytes, not {expected}"
        digest.update(content)
    if digest.hexdigest() != blob.sha256:
        return "its decompressed content no longer hashes to its name"
    return None


def _hash_raw(blob: StoredBlob, read: Read) -> str | None:
    digest = hashlib.sha256()
    offset = 0
    while offset < blob.stored_size:
        piece = read(offset, min(READ_SIZE, blob.stored_size - offset))
        if not piece:
            break
        digest.update(piece)
        offset += len(piece)
    if digest.hexdigest() != blob.sha256:
        return "its bytes no longer hash to its name"
    return None
