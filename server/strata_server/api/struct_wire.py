"""A record's JSON data as google.protobuf.Struct wire bytes, for the read path.

`Struct.update` fills a Struct through the protobuf runtime one map entry and one
Value at a time, each a Python-level call into it; on GetRecord and ListRecords it
was the largest part of the server's own work per record (bench/RESULTS.md,
records, "where the time goes"). Encoding the wire bytes here and letting the
runtime parse them in C (`Struct.MergeFromString`) builds the same message at a
fraction of the cost. The encoding follows `Struct.update` value for value: None
is null, bools are bools (checked before ints), ints and floats are doubles (an
int too large for a double raises OverflowError, as the runtime does), dicts are
Structs and lists or tuples ListValues; anything else is a ValueError.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

_double = struct.Struct("<d").pack
_SHORT = [bytes((n,)) for n in range(0x80)]

# Value's fields (google/protobuf/struct.proto), as their tag bytes.
_NULL = b"\x08\x00"  # null_value = 1, varint NULL_VALUE (0)
_NUMBER = b"\x11"  # number_value = 2, 64-bit
_STRING = b"\x1a"  # string_value = 3, length-delimited
_TRUE, _FALSE = b"\x20\x01", b"\x20\x00"  # bool_value = 4, varint
_STRUCT = b"\x2a"  # struct_value = 5, length-delimited
_LIST = b"\x32"  # list_value = 6, length-delimited
_ENTRY = b"\x0a"  # Struct.fields = 1 and ListValue.values = 1; the entry's key = 1
_ENTRY_VALUE = b"\x12"  # the map entry's value = 2


def _size(n: int) -> bytes:
    """A length as a base-128 varint (the callers inline lengths below 128)."""
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _value(value: Any) -> bytes:
    """A google.protobuf.Value's bytes. Lengths below 128, almost all of them, are
    one byte looked up inline: a call per length cost a sixth of the encoding."""
    kind = type(value)
    if kind is str:
        data: bytes = value.encode()
        n = len(data)
        return _STRING + (_SHORT[n] if n < 0x80 else _size(n)) + data
    if kind is int:
        return _NUMBER + _double(float(value))
    if kind is float:
        return _NUMBER + _double(value)
    if value is None:
        return _NULL
    if kind is bool:
        return _TRUE if value else _FALSE
    if kind is dict:
        data = struct_bytes(value)
        n = len(data)
        return _STRUCT + (_SHORT[n] if n < 0x80 else _size(n)) + data
    if kind is list:
        data = _list(value)
        n = len(data)
        return _LIST + (_SHORT[n] if n < 0x80 else _size(n)) + data
    return _other(value)


def _other(value: Any) -> bytes:
    """Subclasses of the JSON types, by the same rules (rare: not what json.loads gives)."""
    if isinstance(value, bool):
        return _TRUE if value else _FALSE
    if isinstance(value, str):
        return _value(str.__str__(value))
    if isinstance(value, int | float):
        return _NUMBER + _double(float(value))
    if isinstance(value, Mapping):
        data = struct_bytes(value)
        return _STRUCT + _size(len(data)) + data
    if isinstance(value, list | tuple):
        data = _list(value)
        return _LIST + _size(len(data)) + data
    raise ValueError(f"Unexpected type {type(value).__name__} in JSON data")


def _list(values: list[Any] | tuple[Any, ...]) -> bytes:
    """A ListValue's bytes."""
    parts = []
    for item in values:
        data = _value(item)
        n = len(data)
        parts.append(_ENTRY + (_SHORT[n] if n < 0x80 else _size(n)) + data)
    return b"".join(parts)


def struct_bytes(data: Mapping[str, Any]) -> bytes:
    """The google.protobuf.Struct wire bytes of a JSON object, the message
    `Struct.update(data)` builds (map entries in `data`'s order)."""
    parts = []
    for key, item in data.items():
        name = key.encode()
        value = _value(item)
        k, v = len(name), len(value)
        entry = (
            _ENTRY
            + (_SHORT[k] if k < 0x80 else _size(k))
            + name
            + _ENTRY_VALUE
            + (_SHORT[v] if v < 0x80 else _size(v))
            + value
        )
        n = len(entry)
        parts.append(_ENTRY + (_SHORT[n] if n < 0x80 else _size(n)) + entry)
    return b"".join(parts)
