"""Python values to and from the well-known protobuf types the API uses."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Struct, Value
from google.protobuf.timestamp_pb2 import Timestamp

from strata.v1 import records_pb2

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


def duration_from_timedelta(value: timedelta | None, name: str = "duration") -> Duration | None:
    """A timedelta as a Duration; None stays None. Anything else (e.g. a number of
    seconds) is a TypeError, since its unit would be a guess."""
    if value is None:
        return None
    if not isinstance(value, timedelta):
        raise TypeError(f"{name} must be a datetime.timedelta, not {type(value).__name__}")
    duration = Duration()
    duration.FromTimedelta(value)
    return duration


def datetime_from_timestamp(timestamp: Timestamp) -> datetime:
    """A Timestamp as an aware datetime in UTC."""
    return timestamp.ToDatetime(tzinfo=UTC)


def parent_record(parent: tuple[str, str] | None) -> records_pb2.ParentRecord | None:
    """A child's parent, (collection, id), as the wire names it; None: no parent."""
    if parent is None:
        return None
    collection, id = parent
    return records_pb2.ParentRecord(collection=collection, id=id)


def field_mask(paths: Sequence[str] | None) -> FieldMask | None:
    """Paths as a FieldMask; None (or no paths) means no mask."""
    if isinstance(paths, str):
        raise TypeError("update_mask must be a list of paths, not a string")
    return FieldMask(paths=list(paths)) if paths else None


def fields_from_message(cls: type[Any], message: Message, **given: Any) -> dict[str, Any]:
    """The arguments of the dataclass `cls`, but those `given`, read from the
    same-named fields of `message`: a Struct as a dict, a Timestamp as an aware
    datetime, a Duration as a timedelta. For a dataclass field whose default is
    None, an unset message field or an empty string reads as None."""
    values = dict(given)
    for field in dataclasses.fields(cls):
        if field.name in values:
            continue
        value = getattr(message, field.name)
        absent = not message.HasField(field.name) if isinstance(value, Message) else value == ""
        values[field.name] = None if field.default is None and absent else _plain(value)
    return values


def _plain(value: Any) -> Any:
    if isinstance(value, Struct):
        return dict_from_struct(value)
    if isinstance(value, Timestamp):
        return datetime_from_timestamp(value)
    if isinstance(value, Duration):
        return value.ToTimedelta()
    return value
