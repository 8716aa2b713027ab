"""Python values to and from the well-known protobuf types the API uses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.struct_pb2 import Struct, Value
from google.protobuf.timestamp_pb2 import Timestamp

_EXACT_INT = 2**53
"""Integers up to this size survive the trip through a double unchanged."""


def struct_from_dict(data: Mapping[str, Any]) -> Struct:
    """A JSON object as a Struct. Raises TypeError for anything that is not JSON:
    keys must be strings; values str, int, float, bool, None, lists or dicts."""
    if not isinstance(data, Mapping):
        raise TypeError(f"data must be a mapping, not {type(data).__name__}")
    struct = Struct()
    try:
        struct.update(data)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"data is not a JSON object: {exc}") from exc
    return struct


def dict_from_struct(struct: Struct) -> dict[str, Any]:
    """A Struct as plain Python values. JSON has one number type, carried as a
    double: whole numbers within 2**53 come back as int, others as float."""
    return {key: _from_value(value) for key, value in struct.fields.items()}


def _from_value(value: Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return dict_from_struct(value.struct_value)
    if kind == "list_value":
        return [_from_value(item) for item in value.list_value.values]
    if kind == "number_value":
        number = value.number_value
        return int(number) if number.is_integer() and abs(number) <= _EXACT_INT else number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    return None


def timestamp_from_datetime(value: datetime | None, name: str = "time") -> Timestamp | None:
    """A timezone-aware datetime as a Timestamp; None stays None. A naive datetime
    is a ValueError: its instant is unknown."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, e.g. datetime.now(UTC)")
    timestamp = Timestamp()
    timestamp.FromDatetime(value)
    return timestamp


def datetime_from_timestamp(timestamp: Timestamp) -> datetime:
    """A Timestamp as an aware datetime in UTC."""
    return timestamp.ToDatetime(tzinfo=UTC)


def field_mask(paths: Sequence[str] | None) -> FieldMask | None:
    """Paths as a FieldMask; None (or no paths) means no mask."""
    if isinstance(paths, str):
        raise TypeError("update_mask must be a list of paths, not a string")
    return FieldMask(paths=list(paths)) if paths else None
