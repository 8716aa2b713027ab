"""api/struct_wire.py: the Struct bytes the read path encodes by hand must be the
message `Struct.update` builds, for every kind of JSON value, and must come back as
the same JSON through the write path's own decoder (api/convert.data_from_struct)."""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from typing import Any

import pytest
from google.protobuf import struct_pb2

from strata_server.api.convert import data_from_struct, record_to_proto
from strata_server.api.struct_wire import struct_bytes
from strata_server.core.models import Record

CASES: dict[str, dict[str, Any]] = {
    "empty": {},
    "null": {"a": None},
    "bools": {"t": True, "f": False},
    "strings": {"s": "plain", "empty": "", "quote": 'a "b" \\ c\n\t'},
    "unicode": {"ключ": "значение", "emoji": "🙂 naïve 漢字", "nul-free \u2028": "\u00e9\u0301"},
    "ints": {"zero": 0, "neg": -17, "max_exact": 2**53, "min_exact": -(2**53)},
    "large ints": {"big": 2**63 + 1, "bigger": 10**30, "neg": -(10**20)},
    "floats": {"pi": math.pi, "tiny": 5e-324, "huge": 1.7976931348623157e308, "neg": -0.5},
    "negative zero": {"z": -0.0},
    "nested": {"a": {"b": {"c": {"d": [1, {"e": [None, True, "x", []]}]}}}},
    "lists": {"empty": [], "mixed": [1, "two", 3.5, None, False, {"k": "v"}, [[], [1]]]},
    "empty containers": {"o": {}, "l": [], "lo": [{}], "ll": [[]]},
    "long": {"text": "x" * 70_000, "many": list(range(300))},
    "many keys": {f"key{i}": i for i in range(200)},
}


def updated(data: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(data)
    return message


def parsed(data: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.MergeFromString(struct_bytes(data))
    return message


@pytest.mark.parametrize("data", CASES.values(), ids=CASES.keys())
def test_the_same_message_as_struct_update(data: dict[str, Any]) -> None:
    assert parsed(data) == updated(data)


@pytest.mark.parametrize("data", CASES.values(), ids=CASES.keys())
def test_round_trip_through_the_write_path_decoder(data: dict[str, Any]) -> None:
    """What a client sends back after a read is what was stored (ints as the
    write path gives them back: exact up to 2**53, doubles beyond)."""
    expected = json.loads(json.dumps(data), parse_int=_as_stored)
    assert data_from_struct(parsed(data)) == expected


def _as_stored(text: str) -> int | float:
    number = int(text)
    return number if abs(number) <= 2**53 else float(number)


def test_negative_zero_keeps_its_sign() -> None:
    value = parsed({"z": -0.0}).fields["z"].number_value
    assert value == 0 and math.copysign(1, value) == -1


def test_from_json_text_as_the_database_returns_it() -> None:
    text = '{"a": [1, 2.5, "\\u00e9", null, {"b": true}], "big": 123456789012345678901234567890}'
    assert parsed(json.loads(text)) == updated(json.loads(text))


def test_subclasses_of_json_types_and_tuples() -> None:
    class Text(str):
        pass

    class Flag(int):
        pass

    data = OrderedDict(a=Text("x"), b=(1, Text("y")), c=Flag(3), d=OrderedDict(e=True))
    assert parsed(data) == updated(dict(data))


def test_what_struct_update_refuses_is_refused() -> None:
    with pytest.raises(ValueError, match="Unexpected type"):
        struct_bytes({"a": object()})
    with pytest.raises(ValueError):
        updated({"a": object()})
    with pytest.raises(OverflowError):
        struct_bytes({"a": 10**400})
    with pytest.raises(OverflowError):
        updated({"a": 10**400})


def test_record_to_proto_carries_the_data() -> None:
    from datetime import UTC, datetime

    when = datetime(2026, 12, 7, 15, 0, 0, 123456, tzinfo=UTC)
    data = CASES["nested"] | CASES["unicode"]
    message = record_to_proto(Record("ns", "c", "r1", data, 3, when, when, None))
    assert message.data == updated(data)
    assert (message.id, message.version, message.create_time.nanos) == ("r1", 3, 123456000)
