"""Protobuf wire encoding by hand, for what the protobuf library refuses to build.

The Python protobuf runtime will not put invalid UTF-8 (a lone surrogate, an
overlong sequence) in a string field, nor nest a `google.protobuf.Value` past its
recursion limit. A hostile client is not so polite, so the fuzzer builds a message
with a same-length placeholder where such a value goes, serializes it, and swaps the
placeholder's bytes for the hostile ones (`Built.body`): equal lengths keep every
enclosing length prefix valid.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass, field

from google.protobuf.message import Message

_PLACEHOLDERS = itertools.count()


def varint(value: int) -> bytes:
    """The base-128 varint of a non-negative integer (negative: its 64-bit two's complement)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    """A field key: field number and wire type."""
    return varint(number << 3 | wire_type)


def length_delimited(number: int, payload: bytes) -> bytes:
    """Field `number` carrying `payload` (a string, bytes or sub-message)."""
    return tag(number, 2) + varint(len(payload)) + payload


PLACEHOLDER_MIN = 8
"""The shortest placeholder: hostile strings shorter than this are padded with 'a'."""
_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def placeholder(length: int) -> str:
    """A unique ASCII string of `length` characters (at least PLACEHOLDER_MIN) that
    no generated value contains, to be swapped out after serializing."""
    number = next(_PLACEHOLDERS)
    digits = "".join(_DIGITS[number // 36**i % 36] for i in range(6))
    stem = f"\x01{digits}\x02"
    assert length >= len(stem) == PLACEHOLDER_MIN, (length, stem)
    return stem + "~" * (length - len(stem))


# google.protobuf.Value fields: null 1 (varint), number 2 (fixed64), string 3, bool 4,
# struct 5, list 6. ListValue.values is field 1; Struct.fields is a map (field 1 of
# entries with key 1 and value 2).


def value_number(number: float) -> bytes:
    """The encoding of Value{number_value: number}."""
    return tag(2, 1) + struct.pack("<d", number)


def value_list(items: list[bytes]) -> bytes:
    """Value{list_value: {values: items}} from encoded Values."""
    return length_delimited(6, b"".join(length_delimited(1, item) for item in items))


def value_struct(entries: list[tuple[bytes, bytes]]) -> bytes:
    """Value{struct_value: {fields: entries}} from (raw key bytes, encoded Value)."""
    body = b"".join(
        length_delimited(1, length_delimited(1, key) + length_delimited(2, value))
        for key, value in entries
    )
    return length_delimited(5, body)


def nested_value(depth: int, in_lists: bool) -> bytes:
    """A Value nested `depth` levels deep, as lists or as one-key structs."""
    inner = value_number(1.0)
    for _ in range(depth):
        inner = value_list([inner]) if in_lists else value_struct([(b"a", inner)])
    return inner


def value_placeholder_length(encoded: bytes) -> int | None:
    """The length of a placeholder string whose Value{string_value} encodes to exactly
    len(encoded) bytes, or None if none does."""
    for prefix in range(1, 11):
        length = len(encoded) - 1 - prefix
        if length >= 8 and len(varint(length)) == prefix:
            return length
    return None


@dataclass
class Built:
    """A message plus the byte swaps that make it hostile (each of equal length)."""

    message: Message
    swaps: list[tuple[bytes, bytes]] = field(default_factory=list)

    def body(self) -> bytes:
        """The request body as sent."""
        data = bytearray(self.message.SerializeToString())
        for old, new in self.swaps:
            at = data.find(old)
            assert at >= 0 and len(old) == len(new), "placeholder lost"
            data[at : at + len(old)] = new
        return bytes(data)
