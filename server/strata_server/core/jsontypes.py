"""The JSON type, the one stored text form of a JSON document, and the JSON form of
a domain value (a frozen dataclass) that adapters store and must read back exactly.

In a module of its own, below every other domain module: core.models, core.job_transitions,
core.transcript_rules and core.writes all use them, and none of them needs another to
do so (core.transcript_rules checks an entry's data with `serialize` as core.writes
checks a record's; core.models refers to both of their types).
"""

import dataclasses
import enum
import functools
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from strata_server.core.errors import InvalidArgument, TooLarge

JSON = dict[str, Any]
"""A JSON object as Python values: what a record's data or a job's payload is."""

D = TypeVar("D")

_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
"""`\\u0000` not itself escaped (an even run of backslashes before it)."""


def dumps(data: Any) -> str:
    """Compact JSON as stored in both dialects; NaN and infinities are refused since
    JSON (and PostgreSQL's jsonb) has no such numbers."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def serialize(data: JSON, max_bytes: int, field: str = "data", what: str = "record data") -> str:
    """The stored JSON text of a document, refusing what either shape cannot store
    (NaN, infinities, NUL) and anything over `max_bytes`."""
    try:
        text = dumps(data)
    except ValueError:
        raise InvalidArgument.field(field, "numbers must be finite (no NaN or Infinity)") from None
    # json.dumps escapes control characters, so a NUL shows as \u0000; PostgreSQL's
    # jsonb cannot hold it, and both shapes must accept the same documents.
    if _NUL_ESCAPE.search(text):
        raise InvalidArgument.field(field, "strings must not contain the NUL character")
    size = len(text.encode())
    if size > max_bytes:
        raise TooLarge(
            f"{what} is {size} bytes, over the {max_bytes}-byte limit; "
            "store large content as an artifact",
            metadata={"size": str(size), "limit": str(max_bytes)},
        )
    return text


def fields_to_json(value: Any) -> JSON:
    """A dataclass instance as a JSON object of its fields: times as ISO 8601, enums
    as their values, mappings as objects, the rest as it is."""
    out: JSON = {}
    for field in dataclasses.fields(value):
        item = getattr(value, field.name)
        if isinstance(item, datetime):
            item = item.isoformat()
        elif isinstance(item, enum.Enum):
            item = item.value
        elif isinstance(item, Mapping):
            item = dict(item)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            item = fields_to_json(item)
        out[field.name] = item
    return out


def fields_from_json(cls: type[D], value: Mapping[str, Any]) -> D:
    """Inverse of `fields_to_json` for the dataclass `cls`, led by its field types.
    A field the JSON lacks takes its default (JSON stored before the field existed)."""
    return typing.cast(Callable[..., D], cls)(
        **{
            name: value[name] if read is None or value[name] is None else read(value[name])
            for name, read in _readers(cls)
            if name in value
        }
    )


def _readers(cls: type[Any]) -> list[tuple[str, Callable[[Any], Any] | None]]:
    """Each field of `cls` and what turns its JSON back into its type (None: as is)."""
    hints = typing.get_type_hints(cls)
    readers: list[tuple[str, Callable[[Any], Any] | None]] = []
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        if isinstance(hint, types.UnionType):  # `X | None`
            [hint] = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        read: Callable[[Any], Any] | None = None
        if hint is datetime:
            read = datetime.fromisoformat
        elif isinstance(hint, type) and issubclass(hint, enum.Enum):
            read = hint
        elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
            read = functools.partial(fields_from_json, hint)
        readers.append((field.name, read))
    return readers
