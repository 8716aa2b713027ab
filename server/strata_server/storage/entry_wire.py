"""The stored wire form of transcript entries: each entry is kept beside its columns
as the protobuf bytes ReadTranscript sends for it, so that a batch is a
concatenation of stored bytes.

A storage encoding, as zstd is for blobs, and so here rather than in core: the bytes
are a column both adapters write, and PostgreSQL writes part of them in SQL (the
append statement puts each entry's seq and length around its body with
`strata_varint`, migration 0009, mirroring `varint` here, and the tags of
`Batch.entries` and `Entry.seq` are in that statement too). The field numbers are
therefore constants, not looked up in the generated descriptor: stored bytes outlive
any lookup, the protos' numbers can never change (buf breaking), and
tests/unit/test_transcript_batches.py holds these bytes to what the protobuf
library writes. Framing a batch into the stream message is the API's rendering
(api/batch_wire.py).

An entry never changes once appended (its seq and create_time are fixed by the
append), so its encoding can be worked out once, at append time, instead of on
every read. Protobuf lets a message's fields be concatenated, and a repeated
field's elements too: a `Batch` is its `entries` fields (each stored as
`entry_field` gives it) followed by `next_seq`. With the bytes stored, the
PostgreSQL adapter has the database concatenate a whole batch (`string_agg`), and
the server copies one value per batch instead of building ~300 entries in Python:
bench/transcripts.py has the figures (RESULTS.md, "transcripts").

An append encodes each entry's role, content and data (`entry_body`) and the
append's time (`time_field`); the seq is assigned where the append runs. Entries
appended before migration 0009 have no stored form: the adapters encode them on
read (`encoded_batch`).

Wire format (https://protobuf.dev/programming-guides/encoding/): a field is a tag
byte `(number << 3) | wire_type`, then a varint (type 0), or a varint length and
that many bytes (type 2). Fields holding their default (0, "") are left out, and
fields go in field-number order, as the protobuf libraries write them, so these
bytes are the ones `SerializeToString` gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from google.protobuf import struct_pb2

from strata_server.core.jsontypes import JSON
from strata_server.core.transcript_rules import SEQ, Entry, EntryBatch

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT64 = (1 << 64) - 1
"""A negative int64 is written as its two's complement, a 10-byte varint."""

# Batch.entries: field 1, length-delimited.
_ENTRIES = b"\x0a"
# Entry: seq (1, varint), role (2), content (3), data (4), create_time (5).
_SEQ, _ROLE, _CONTENT, _DATA, _CREATE_TIME = b"\x08", b"\x12", b"\x1a", b"\x22", b"\x2a"
# Timestamp: seconds (1), nanos (2), both varints.
_SECONDS, _NANOS = b"\x08", b"\x10"


def varint(value: int) -> bytes:
    """A non-negative integer as a protobuf varint: 7 bits a byte, low bits first,
    the high bit set on every byte but the last."""
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    return tag + varint(len(payload)) + payload


def entry_body(role: str, content: str, data: JSON | None) -> bytes:
    """An entry's role, content and data fields: what the append knows of it before
    the entry has a seq."""
    body = b""
    if role:
        body += _field(_ROLE, role.encode())
    if content:
        body += _field(_CONTENT, content.encode())
    if data is not None:
        message = struct_pb2.Struct()
        message.update(data)
        body += _field(_DATA, message.SerializeToString())
    return body


def time_field(create_time: datetime) -> bytes:
    """Entry.create_time, tag included (one per append: its entries share the time)."""
    delta = create_time - _EPOCH
    seconds = delta.days * 86400 + delta.seconds
    nanos = delta.microseconds * 1000
    timestamp = b""
    if seconds:
        timestamp += _SECONDS + varint(seconds & _INT64)
    if nanos:
        timestamp += _NANOS + varint(nanos)
    return _field(_CREATE_TIME, timestamp)


def entry_field(seq: int, body: bytes, time: bytes) -> bytes:
    """One stored entry: a Batch.entries field holding seq, then `body`, then `time`."""
    return _field(_ENTRIES, _SEQ + varint(seq) + body + time)


def encode_entry(
    seq: int, role: str, content: str, data: JSON | None, create_time: datetime
) -> bytes:
    """An entry's stored form from its parts (imports, and entries stored without it)."""
    return entry_field(seq, entry_body(role, content, data), time_field(create_time))


def encoded_batch(entries: Sequence[Entry]) -> EntryBatch:
    """A batch (of at least one entry) encoded here, for entries stored without their
    wire form (appended before migration 0009)."""
    wire = b"".join(
        encode_entry(seq, role, content, data, create_time)
        for seq, role, content, data, create_time, _size in entries
    )
    return EntryBatch(wire, entries[-1][SEQ] + 1)
