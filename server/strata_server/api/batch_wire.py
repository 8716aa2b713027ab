"""ReadTranscript's batch message, framed around entries already in wire form.

The storage adapters hand a batch over as its entries' stored bytes, concatenated
(storage/entry_wire.py); rendering that as a `ReadTranscriptResponse` is this
layer's job, as every other proto rendering is. Building the message through the
protobuf library would decode and re-encode every entry, so the frame is written by
hand: the response's `batch` field around the entries and the batch's `next_seq`.
The field numbers come from the generated descriptor, so the frame follows the
proto; the entries' own field numbers are the storage encoding's business. The
varints are written by the storage encoding's `varint`, the one protobuf varint
writer of the server.
"""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor

from strata.v1 import transcripts_pb2
from strata_server.protowire import varint

_LENGTH_DELIMITED = 2
_VARINT = 0


def _tag(field: FieldDescriptor, wire_type: int) -> bytes:
    return bytes([field.number << 3 | wire_type])


_RESPONSE = transcripts_pb2.ReadTranscriptResponse
_BATCH = _tag(_RESPONSE.DESCRIPTOR.fields_by_name["batch"], _LENGTH_DELIMITED)
_NEXT_SEQ = _tag(_RESPONSE.Batch.DESCRIPTOR.fields_by_name["next_seq"], _VARINT)


def batch_message(entries: bytes, next_seq: int) -> bytes:
    """A serialized ReadTranscriptResponse whose batch holds `entries` (concatenated
    stored forms) and `next_seq`."""
    tail = _NEXT_SEQ + varint(next_seq)
    # One join: a batch may be megabytes, and concatenating would copy it twice.
    return b"".join((_BATCH, varint(len(entries) + len(tail)), entries, tail))
