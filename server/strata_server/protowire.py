"""Protobuf's base-128 varints, the one piece of the wire format that both layers
write by hand: storage keeps transcript entries in their wire form
(storage/entry_wire.py) and the API frames stored batches into stream messages
(api/batch_wire.py). Here rather than in either so that neither imports the other.

Wire format: https://protobuf.dev/programming-guides/encoding/#varints
"""

from __future__ import annotations


def varint(value: int) -> bytes:
    """A non-negative integer as a protobuf varint: 7 bits a byte, low bits first,
    the high bit set on every byte but the last."""
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_varint(buffer: bytes, at: int) -> tuple[int, int]:
    """The varint at `at` in `buffer` and the position after it."""
    value = shift = 0
    while True:
        byte = buffer[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
