"""Range checks for every google.protobuf.Timestamp and Duration a request carries.

Checked once per request message, before any servicer code runs (api/decoding.py),
so no handler can meet a time that overflows `datetime` or `timedelta`. The walk
follows the message's descriptor, so a field added to any request tomorrow, at any
depth (a Commit write's `enqueue.delay`), is checked without code of its own.

The ranges are the ones the well-known types themselves define:

- Timestamp: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z, that is
  `seconds` from -62,135,596,800 to 253,402,299,799 and `nanos` from 0 to 999,999,999.
- Duration: -10,000 to +10,000 years, that is `seconds` from -315,576,000,000 to
  315,576,000,000 and `nanos` from -999,999,999 to 999,999,999, with the sign of
  `seconds` when both are non-zero.

Outside them a request is INVALID_ARGUMENT naming the field's path
(`writes[2].enqueue.delay`). Each method's own narrower limits (a lease of at most
an hour, an expiry of at most 7 days) are checked by the servicer afterwards.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from strata_server.core.errors import InvalidArgument

TIMESTAMP_MIN_SECONDS = -62_135_596_800
TIMESTAMP_MAX_SECONDS = 253_402_300_799
DURATION_MAX_SECONDS = 315_576_000_000
_NANOS = 999_999_999

_TIMESTAMP = timestamp_pb2.Timestamp.DESCRIPTOR.full_name
_DURATION = duration_pb2.Duration.DESCRIPTOR.full_name


def _timestamp(value: timestamp_pb2.Timestamp, path: str) -> None:
    if not (
        TIMESTAMP_MIN_SECONDS <= value.seconds <= TIMESTAMP_MAX_SECONDS
        and 0 <= value.nanos <= _NANOS
    ):
        raise InvalidArgument.field(
            path, "must be a time from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z"
        )


def _duration(value: duration_pb2.Duration, path: str) -> None:
    seconds, nanos = value.seconds, value.nanos
    if not (
        -DURATION_MAX_SECONDS <= seconds <= DURATION_MAX_SECONDS
        and -_NANOS <= nanos <= _NANOS
        and (seconds == 0 or nanos == 0 or (seconds < 0) == (nanos < 0))
    ):
        raise InvalidArgument.field(
            path,
            "must be a duration within 10,000 years either way (nanos of the sign of seconds)",
        )


class _Plan:
    """The fields of one message type that can hold a Timestamp or Duration."""

    def __init__(self, fields: list[tuple[str, bool, bool, str]]) -> None:
        self.fields = fields
        """(name, repeated, map, full name of the value's type) per field to visit."""

    def check(self, message: Any, prefix: str) -> None:
        for name, repeated, is_map, kind in self.fields:
            if is_map:
                for key, item in getattr(message, name).items():
                    _check_value(kind, item, f"{prefix}{name}[{key!r}]")
            elif repeated:
                for index, item in enumerate(getattr(message, name)):
                    _check_value(kind, item, f"{prefix}{name}[{index}]")
            elif message.HasField(name):
                _check_value(kind, getattr(message, name), f"{prefix}{name}")


def _check_value(kind: str, value: Any, path: str) -> None:
    if kind == _TIMESTAMP:
        _timestamp(value, path)
    elif kind == _DURATION:
        _duration(value, path)
    else:
        plan = _PLANS[kind]
        assert plan is not None  # only types that hold a time are visited
        plan.check(value, f"{path}.")


_PLANS: dict[str, _Plan | None] = {}
"""By message full name: its plan, or None when no time can be inside it. Filled
per request type on first use, bounded by the number of types the server knows."""


def _value_type(field: FieldDescriptor) -> tuple[Descriptor | None, bool]:
    """The message type of a field's values (a map's value type) and whether it is a map."""
    if field.type != FieldDescriptor.TYPE_MESSAGE:
        return None, False
    target = field.message_type
    if target is None:
        return None, False
    if target.GetOptions().map_entry:
        value: Descriptor | None = target.fields_by_name["value"].message_type
        return value, True
    return target, False


def _learn(root: Descriptor) -> None:
    """Plan `root` and every message type reachable from it. Types can be recursive
    (Struct holds Value holds Struct), so whether a type holds a time is found as a
    fixed point over the whole graph rather than by plain recursion."""
    graph: dict[str, Descriptor] = {}
    pending = [root]
    while pending:
        descriptor = pending.pop()
        if descriptor.full_name in graph or descriptor.full_name in _PLANS:
            continue
        graph[descriptor.full_name] = descriptor
        for field in descriptor.fields:
            target, _ = _value_type(field)
            if target is not None:
                pending.append(target)
    holds = {_TIMESTAMP, _DURATION} | {name for name, plan in _PLANS.items() if plan is not None}
    changed = True
    while changed:
        changed = False
        for name, descriptor in graph.items():
            if name in holds:
                continue
            for field in descriptor.fields:
                target, _ = _value_type(field)
                if target is not None and target.full_name in holds:
                    holds.add(name)
                    changed = True
                    break
    for name, descriptor in graph.items():
        if name in (_TIMESTAMP, _DURATION) or name not in holds:
            _PLANS[name] = None
            continue
        fields = []
        for field in descriptor.fields:
            target, is_map = _value_type(field)
            if target is not None and target.full_name in holds:
                repeated = field.is_repeated and not is_map
                fields.append((field.name, repeated, is_map, target.full_name))
        _PLANS[name] = _Plan(fields)


def check(message: Message) -> None:
    """Raise InvalidArgument naming the first Timestamp or Duration anywhere in
    `message` that lies outside the range its type defines."""
    name = message.DESCRIPTOR.full_name
    if name not in _PLANS:
        _learn(message.DESCRIPTOR)  # type: ignore[arg-type]  # upb's Descriptor is one
    plan = _PLANS[name]
    if plan is not None:
        plan.check(message, "")
