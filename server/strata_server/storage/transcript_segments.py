"""The content of an archived transcript's segment objects: a storage encoding, as
entry_wire.py is for the hot rows.

A segment holds consecutive entries, each as one record:

    varint(size) varint(len(data_json)) data_json wire

`size` is the entry's size as batches count it (core/transcript_rules.py), so a
read of the archive fits exactly the batches a read of the hot rows fits;
`data_json` is the entry's `data` column as the hot row had it (empty: none): since
migration 0023 set only for entries appended before 0009, the others keeping their
data in the wire form's tail alone (segments archived before 0023 have it for
every entry with data; a restore writes no data column, an export reads the JSON
when there is one, else the wire's); `wire` is the stored wire form (entry_wire.py),
which a read sends as it is. The seq of each record is implied by its position: a segment
row names its first seq. A restore takes the role, content and create_time back out
of the wire form (`decode_wire`), so nothing is stored three times.

The blob store compresses a segment (zstd, when that pays) and names it by the
SHA-256 of these bytes; a segment is about SEGMENT_BYTES of content, which is what
one read or restore holds in memory at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from strata_server.protowire import read_varint as _varint
from strata_server.protowire import varint

SEGMENT_BYTES = 1024 * 1024
"""Content bytes after which a segment is closed (it ends at an entry's end)."""
CONTENT_TYPE = "application/x-protobuf"
"""What the blob store's compression decision is told a segment is."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SegmentEntry:
    """One record of a segment: what a read and a restore need of an entry."""

    size: int
    data_json: str | None
    wire: bytes


def record(size: int, data_json: str | None, wire: bytes) -> bytes:
    """One entry's record, as `parse` reads it back."""
    data = data_json.encode() if data_json else b""
    return varint(size) + varint(len(data)) + data + wire


def parse(content: bytes) -> Iterator[SegmentEntry]:
    """The records of a segment's content, in order."""
    at, end = 0, len(content)
    while at < end:
        size, at = _varint(content, at)
        length, at = _varint(content, at)
        data_json = content[at : at + length].decode() if length else None
        at += length
        # The wire form is one Batch.entries field: a tag byte, a length, the entry.
        body, after = _varint(content, at + 1)
        wire = content[at : after + body]
        at = after + body
        yield SegmentEntry(size, data_json, wire)


def read_spans(content: bytes) -> tuple[list[int], list[bytes]]:
    """Each record's size and wire form, in order: what a read needs of a segment,
    without the per-record objects `parse` makes. A read walks every record of
    every segment on the event loop, so the varints of one and two bytes (an entry
    under 16 KiB) are read inline; longer ones go through `_varint`."""
    sizes: list[int] = []
    wires: list[bytes] = []
    at, end = 0, len(content)
    while at < end:
        size = content[at]
        if size < 0x80:
            at += 1
        elif content[at + 1] < 0x80:
            size = size & 0x7F | content[at + 1] << 7
            at += 2
        else:
            size, at = _varint(content, at)
        length = content[at]  # len(data_json), then the data JSON a read skips
        if length < 0x80:
            at += 1 + length
        else:
            length, at = _varint(content, at)
            at += length
        body = content[at + 1]  # the wire form's length, after its tag byte
        if body < 0x80:
            stop = at + 2 + body
        elif content[at + 2] < 0x80:
            stop = at + 3 + (body & 0x7F | content[at + 2] << 7)
        else:
            body, after = _varint(content, at + 1)
            stop = after + body
        sizes.append(size)
        wires.append(content[at:stop])
        at = stop
    return sizes, wires


@dataclass(frozen=True, slots=True)
class WireEntry:
    """The fields of an entry's wire form."""

    seq: int
    role: str
    content: str
    create_time: datetime


def decode_wire(wire: bytes) -> WireEntry:
    """An entry's seq, role, content and create_time from its wire form (the
    fields entry_wire.py writes; data is skipped: the record keeps its JSON)."""
    length, at = _varint(wire, 1)
    end = at + length
    seq, role, content = 0, "", ""
    seconds = nanos = 0
    while at < end:
        tag, at = _varint(wire, at)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            value, at = _varint(wire, at)
            if number == 1:
                seq = value
            continue
        size, at = _varint(wire, at)
        payload = wire[at : at + size]
        at += size
        if number == 2:
            role = payload.decode()
        elif number == 3:
            content = payload.decode()
        elif number == 5:
            seconds, nanos = _timestamp(payload)
    if seconds >= 1 << 63:
        seconds -= 1 << 64
    create_time = _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)
    return WireEntry(seq, role, content, create_time)


def _timestamp(payload: bytes) -> tuple[int, int]:
    seconds = nanos = 0
    at = 0
    while at < len(payload):
        tag, at = _varint(payload, at)
        value, at = _varint(payload, at)
        if tag >> 3 == 1:
            seconds = value
        elif tag >> 3 == 2:
            nanos = value
    return seconds, nanos
