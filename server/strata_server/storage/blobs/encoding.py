"""How blob bytes are stored: hashing, the compression decision, and zstd framing.

Shared by both blob stores; synchronous (the stores call it from worker threads, as
hashing and compression release the GIL on large buffers).

**The compression decision** is made once per blob on a sample: the first
`SAMPLE_SIZE` bytes of content (whatever the message chunking, so identical content
always gets the identical encoding). The sample is compressed at level 1; text-like
content (by content type, or a sample without NUL bytes that decodes as UTF-8) is
compressed when that saves at least 10%, anything else when it saves 25%.

**Ranges on compressed blobs.** A compressed blob is the zstd *seekable format*:
independent frames of `FRAME_SIZE` uncompressed bytes each, then a skippable frame
holding the seek table (each frame's compressed and uncompressed size). Any zstd
decoder reads the whole object as one stream and ignores the table. A range read
loads the table (one small read at the end of the object), then decompresses only
the frames the range touches. Framing costs next to nothing in ratio and speed,
one frame decompresses in well under a millisecond, while decompress-and-skip to
the end of a large log costs a fraction of a second plus every compressed byte
before the offset (bench/RESULTS.md, "measured in passing"). So frames, and ranges
cost at most one frame of wasted work.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator, Sequence

import zstandard

from strata_server.core.artifact_rules import Compression, StagedBlob
from strata_server.core.values import frozen

FRAME_SIZE = 1 << 20
"""Uncompressed bytes per zstd frame: the unit a range read decompresses."""
SAMPLE_SIZE = 256 << 10
"""Content bytes the compression decision looks at."""
LEVEL = 3
TEXT_SAVING = 0.10
OTHER_SAVING = 0.25

SKIPPABLE_MAGIC = 0x184D2A5E
SEEKABLE_MAGIC = 0x8F92EAB1
FOOTER = struct.Struct("<IBI")  # number of frames, descriptor, seekable magic
ENTRY = struct.Struct("<II")  # compressed size, decompressed size
FRAME_HEADER = struct.Struct("<II")  # skippable magic, frame size

_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/x-ndjson")
_TEXT_SUFFIXES = ("+json", "+xml", "javascript", "yaml", "csv", "x-sh", "x-diff", "x-patch")


def table_size(frames: int) -> int:
    """Bytes the seek-table frame takes at the end of a blob of `frames` frames."""
    return FRAME_HEADER.size + frames * ENTRY.size + FOOTER.size


def frame_count(size: int) -> int:
    """Frames a compressed blob of `size` uncompressed bytes has."""
    return -(-size // FRAME_SIZE)


def text_like(content_type: str, sample: bytes) -> bool:
    """Whether content looks like text: by its MIME type, else by its first bytes."""
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime.startswith(_TEXT_TYPES) or mime.endswith(_TEXT_SUFFIXES):
        return True
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start >= len(sample) - 3  # a character cut at the sample's end
    return True


def should_compress(content_type: str, sample: bytes) -> bool:
    """The compression decision for content that starts with `sample`."""
    if not sample:
        return False
    saved = 1 - len(zstandard.ZstdCompressor(level=1).compress(sample)) / len(sample)
    return saved >= (TEXT_SAVING if text_like(content_type, sample) else OTHER_SAVING)


class Encoder:
    """Turns content bytes into stored bytes, hashing as they pass.

    `feed` returns stored bytes ready to write (often the input itself, uncopied),
    `finish` the rest. Memory is bounded by the sample and one frame.
    """

    def __init__(self, content_type: str) -> None:
        self._content_type = content_type
        self._hash = hashlib.sha256()
        self._size = 0
        self._stored = 0
        self._pending = bytearray()
        self._compression: Compression | None = None
        self._compressor = zstandard.ZstdCompressor(level=LEVEL)
        self._table: list[tuple[int, int]] = []

    @property
    def compression(self) -> Compression | None:
        """The chosen encoding, once decided (after the sample, or at finish)."""
        return self._compression

    @property
    def size(self) -> int:
        """Content bytes fed so far."""
        return self._size

    def feed(self, data: bytes) -> bytes:
        """Take the next content bytes; return stored bytes to write next."""
        self._hash.update(data)
        self._size += len(data)
        if self._compression is None:
            self._pending += data
            if len(self._pending) < SAMPLE_SIZE:
                return b""
            self._decide()
            data, self._pending = bytes(self._pending), bytearray()
        if self._compression is Compression.NONE:
            self._stored += len(data)
            return data
        return self._frames(data, final=False)

    def finish(self) -> tuple[bytes, StagedBlob]:
        """The last stored bytes (and the seek table) plus what was staged."""
        out = b""
        if self._compression is None:
            self._decide()
            out, self._pending = bytes(self._pending), bytearray()
            if self._compression is Compression.NONE:
                self._stored += len(out)
            else:
                out = self._frames(out, final=True)
        elif self._compression is Compression.ZSTD:
            out = self._frames(b"", final=True)
        if self._compression is Compression.ZSTD:
            table = self._seek_table()
            self._stored += len(table)
            out += table
        staged = StagedBlob(
            self._hash.hexdigest(), self._size, self._stored, self._compression or Compression.NONE
        )
        return out, staged

    def _decide(self) -> None:
        sample = bytes(self._pending[:SAMPLE_SIZE])
        compress = should_compress(self._content_type, sample)
        self._compression = Compression.ZSTD if compress else Compression.NONE

    def _frames(self, data: bytes, *, final: bool) -> bytes:
        self._pending += data
        out = bytearray()
        while len(self._pending) >= FRAME_SIZE or (final and self._pending):
            frame = bytes(self._pending[:FRAME_SIZE])
            del self._pending[:FRAME_SIZE]
            compressed = self._compressor.compress(frame)
            self._table.append((len(compressed), len(frame)))
            out += compressed
        self._stored += len(out)
        return bytes(out)

    def _seek_table(self) -> bytes:
        body = b"".join(ENTRY.pack(c, d) for c, d in self._table)
        footer = FOOTER.pack(len(self._table), 0, SEEKABLE_MAGIC)
        return FRAME_HEADER.pack(SKIPPABLE_MAGIC, len(body) + len(footer)) + body + footer


class BadTable(Exception):
    """The bytes at the end of a compressed blob are not a seek table."""


@frozen
class FrameSpan:
    """The frames a range touches: stored bytes [start, end) hold frames `sizes`
    (compressed, uncompressed); the range starts `skip` bytes into the first."""

    start: int
    end: int
    sizes: tuple[tuple[int, int], ...]
    skip: int


def parse_table(tail: bytes) -> list[tuple[int, int]]:
    """The (compressed, uncompressed) frame sizes from a blob's seek-table frame."""
    if len(tail) < FRAME_HEADER.size + FOOTER.size:
        raise BadTable("too short")
    count, descriptor, magic = FOOTER.unpack_from(tail, len(tail) - FOOTER.size)
    if magic != SEEKABLE_MAGIC or descriptor & 0x80:
        raise BadTable("no seekable footer")
    if len(tail) != table_size(count):
        raise BadTable("frame count does not match the table size")
    skippable, _ = FRAME_HEADER.unpack_from(tail, 0)
    if skippable != SKIPPABLE_MAGIC:
        raise BadTable("no skippable frame header")
    return [ENTRY.unpack_from(tail, FRAME_HEADER.size + i * ENTRY.size) for i in range(count)]


def span(table: Sequence[tuple[int, int]], start: int, end: int) -> FrameSpan:
    """Which frames hold content bytes [start, end) (frames are FRAME_SIZE each)."""
    first = start // FRAME_SIZE
    last = max(first, (end - 1) // FRAME_SIZE) if end > start else first
    offset = sum(c for c, _ in table[:first])
    sizes = tuple(table[first : last + 1]) if end > start else ()
    return FrameSpan(offset, offset + sum(c for c, _ in sizes), sizes, start - first * FRAME_SIZE)


def decode(span_: FrameSpan, frames: Iterator[bytes], length: int) -> Iterator[bytes]:
    """Content bytes of a range from the compressed frames of `span_`, one frame's
    worth at a time; `frames` yields each frame's compressed bytes in order."""
    decompressor = zstandard.ZstdDecompressor()
    skip = span_.skip
    for (_, usize), frame in zip(span_.sizes, frames, strict=True):
        if length <= 0:
            return
        content = decompressor.decompress(frame, max_output_size=usize)
        piece = content[skip : skip + length]
        skip = 0
        length -= len(piece)
        yield piece
