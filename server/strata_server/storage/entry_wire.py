"""The stored wire form of transcript entries: each entry is kept beside its columns
as the protobuf bytes ReadTranscript sends for it, so that a batch is a
concatenation of stored bytes.

A storage encoding, as zstd is for blobs, and so here rather than in core: the bytes
are columns both adapters write, and PostgreSQL writes part of them in SQL (the
append statement puts each entry's seq and length before its role with
`strata_varint`, migration 0009, mirroring `protowire.varint`, and the tags of
`Batch.entries` and `Entry.seq` are in that statement and in migration 0021). The
field numbers are therefore constants, not looked up in the generated descriptor:
stored bytes outlive any lookup, the protos' numbers can never change (buf
breaking), and tests/unit/test_transcript_batches.py holds these bytes to what the
protobuf library writes. Framing a batch into the stream message is the API's
rendering (api/batch_wire.py).

An entry never changes once appended (its seq and create_time are fixed by the
append), so its encoding can be worked out once, at append time, instead of on
every read. Protobuf lets a message's fields be concatenated, and a repeated
field's elements too: a `Batch` is its `entries` fields (each stored as
`entry_field` gives it) followed by `next_seq`. With the bytes stored, the
PostgreSQL adapter has the database concatenate a whole batch (`string_agg`), and
the server copies one value per batch instead of building ~300 entries in Python:
bench/transcripts.py has the figures (RESULTS.md, "transcripts").

The content is stored once (migration 0021): the row keeps it as text, for search,
snippets and exports, and the wire form as the bytes around it (`stored_parts`):
the head (the entry's tag and length, seq, role, the content's tag and length) and
the tail (data, create_time), which the batch query joins with the content between
them. Protobuf's length-delimited fields carry no escaping, so the content's UTF-8
bytes are the field's payload as they are. An append encodes each entry's parts
(`body_parts`) and the append's time (`time_field`); the seq is assigned where the
append runs (PostgreSQL puts the head's seq and length on in SQL). A restore from
the archive cuts a whole stored form back around its content (`split_stored`).
Entries appended before migration 0009 have no stored form: the adapters encode
them on read (`joined_batch`).

The data is stored once too (migration 0023): the tail's Struct is the only copy
of an entry's data, the `data` column being kept only by entries appended before
0009 (they have no tail). Readers that want it as JSON (exports, the archive's
exports) decode it from the tail (`tail_data`, `stored_data`); reads never do.

Wire format (https://protobuf.dev/programming-guides/encoding/): a field is a tag
byte `(number << 3) | wire_type`, then a varint (type 0), or a varint length and
that many bytes (type 2). Fields holding their default (0, "") are left out, and
fields go in field-number order, as the protobuf libraries write them, so these
bytes are the ones `SerializeToString` gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, struct_pb2

from strata_server.core.jsontypes import JSON
from strata_server.core.transcript_rules import SEQ, Entry, EntryBatch
from strata_server.protowire import read_varint, varint

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT64 = (1 << 64) - 1
"""A negative int64 is written as its two's complement, a 10-byte varint."""
_MAX_EXACT = 2**53
"""Doubles up to this are integers exactly."""

# Batch.entries: field 1, length-delimited.
_ENTRIES = b"\x0a"
# Entry: seq (1, varint), role (2), content (3), data (4), create_time (5).
_SEQ, _ROLE, _CONTENT, _DATA, _CREATE_TIME = b"\x08", b"\x12", b"\x1a", b"\x22", b"\x2a"
# Timestamp: seconds (1), nanos (2), both varints.
_SECONDS, _NANOS = b"\x08", b"\x10"


def _field(tag: bytes, payload: bytes) -> bytes:
    return tag + varint(len(payload)) + payload


def body_parts(role: str, content: bytes, data: JSON | None) -> tuple[bytes, bytes]:
    """An entry's role, content and data fields less the content's bytes: the fields
    before them (role, then the content's tag and length) and after them (data)."""
    before = _field(_ROLE, role.encode()) if role else b""
    if content:
        before += _CONTENT + varint(len(content))
    after = b""
    if data is not None:
        message = struct_pb2.Struct()
        message.update(data)
        after = _field(_DATA, message.SerializeToString())
    return before, after


def entry_body(role: str, content: str, data: JSON | None) -> bytes:
    """An entry's role, content and data fields: what the append knows of it before
    the entry has a seq."""
    text = content.encode()
    before, after = body_parts(role, text, data)
    return before + text + after


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


def stored_parts(
    seq: int, role: str, content: str, data: JSON | None, time: bytes
) -> tuple[bytes, bytes]:
    """An entry's stored form around its content (`wire_head`, `wire_tail`; `time` is
    its `time_field`): the bytes before the content's and after them, so
    `head + content + tail` is `encode_entry`'s bytes and the content is stored once,
    as text."""
    text = content.encode()
    before, after = body_parts(role, text, data)
    after += time
    fields = _SEQ + varint(seq)
    length = len(fields) + len(before) + len(text) + len(after)
    return _ENTRIES + varint(length) + fields + before, after


def split_stored(wire: bytes, content: str) -> tuple[bytes, bytes]:
    """A whole stored entry (`encode_entry`'s bytes, as an archive segment keeps it)
    cut around its content into `stored_parts`' head and tail."""
    _, at = read_varint(wire, 1)  # Batch.entries' tag, then the entry's length
    while wire[at] in (_SEQ[0], _ROLE[0]):  # the fields before the content, in order
        tag = wire[at]
        value, at = read_varint(wire, at + 1)
        if tag == _ROLE[0]:
            at += value  # a length, then the role's bytes (the seq is the varint itself)
    text = content.encode()
    if text:
        _, at = read_varint(wire, at + 1)  # the content's tag and length
    return wire[:at], wire[at + len(text) :]


def tail_data(tail: bytes | None) -> JSON | None:
    """The data an entry's `wire_tail` holds (None when it has none), as JSON values.
    Since migration 0023 the tail is the one place an entry's data is kept (the
    `data` column is left for entries appended before 0009, which have no tail), so
    readers other than the batch query (exports, archives, the fallbacks) take it
    from here."""
    if not tail or tail[0] != _DATA[0]:
        return None
    length, at = read_varint(tail, 1)
    return struct_data(tail[at : at + length])


def stored_data(column: JSON | None, tail: bytes | None) -> JSON | None:
    """An entry's data from a row: its `data` column when set (entries appended
    before 0009), else its wire tail's."""
    return column if column is not None else tail_data(tail)


def struct_data(payload: bytes) -> JSON:
    """Entry.data's Struct bytes as JSON values, as the `data` column held them.
    Numbers in a Struct are doubles; integral ones within 2**53 come back as ints,
    as the API gave them to the append (api/convert.py)."""
    message = struct_pb2.Struct()
    message.MergeFromString(payload)
    data: JSON = _plain(json_format.MessageToDict(message))
    return data


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) <= _MAX_EXACT else value
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def joined_batch(rows: Sequence[tuple[Entry, bytes | None]]) -> EntryBatch:
    """A batch (of at least one entry) from its rows' stored forms, encoding here the
    entries stored without one (appended before migration 0009) from their columns."""
    wire = b"".join(
        stored if stored is not None else encode_entry(*entry[:5]) for entry, stored in rows
    )
    return EntryBatch(wire, rows[-1][0][SEQ] + 1)


def encoded_batch(entries: Sequence[Entry]) -> EntryBatch:
    """A batch (of at least one entry) encoded here, for entries stored without their
    wire form (appended before migration 0009)."""
    return joined_batch([(entry, None) for entry in entries])
