"""Field values for any request message, by the field's type and name.

`Builder.fill` walks a message's descriptor and sets each field from one of two
pools: a plausible one (names that exist, small numbers, times near now, plain
JSON), so the request gets past validation and lookups, and a hostile one (see
`hostile.py`). How many fields turn hostile depends on the message's mode: none
("plain", which exercises the handlers with valid random input), about one in
five ("targeted", the common case: one bad value among good ones reaches deep), or
all ("chaos"). Struct, Value, Timestamp, Duration and FieldMask have pools of
their own; every other message type is filled recursively.

Names that exist come from `Known.values`, looked up by "<Message>.<field>",
then "<Service>.<field>", then "<field>", so an `id` in QueueService names a job
and one in an AppendEntriesWrite names a transcript.
"""

from __future__ import annotations

import functools
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from tests.fuzz import encoding, hostile
from tests.fuzz.hostile import Raw, weighted

if TYPE_CHECKING:
    from tests.fuzz.calls import Known

MAX_DEPTH = 4
"""Message nesting the builder descends to (Commit > Write > AppendEntriesWrite >
Entry is three); deeper JSON comes from `encoding.nested_value`."""

T = FieldDescriptor


class _Unset:
    """A google.protobuf.Value with no kind set."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()


@dataclass(frozen=True)
class Big:
    """A Value too deep or too large to build through the protobuf runtime."""

    shape: str
    size: int


@functools.lru_cache(maxsize=64)
def _big_value(big: Big) -> bytes:
    if big.shape == "deep_list":
        return encoding.nested_value(big.size, in_lists=True)
    if big.shape == "deep_struct":
        return encoding.nested_value(big.size, in_lists=False)
    if big.shape == "long_list":
        number = encoding.length_delimited(1, encoding.value_number(1.5))
        return encoding.length_delimited(6, number * big.size)
    if big.shape == "wide_struct":
        return encoding.value_struct(
            [(f"k{i}".encode(), encoding.value_number(i)) for i in range(big.size)]
        )
    raise AssertionError(big.shape)


BIG_VALUES = st.one_of(
    st.sampled_from((10, 20, 30, 31, 32, 33, 45, 49, 50, 51, 64, 99, 100, 101, 500)).flatmap(
        lambda depth: st.sampled_from((Big("deep_list", depth), Big("deep_struct", depth)))
    ),
    st.sampled_from((1_000, 100_000)).map(lambda n: Big("long_list", n)),
    st.sampled_from((1_000, 20_000)).map(lambda n: Big("wide_struct", n)),
    st.sampled_from((1 << 20, 2 << 20)).map(lambda n: "x" * n),
)

_PLAIN_KEYS = st.sampled_from(("status", "n", "text", "title", "tags", "owner", "a", "b"))
_PLAIN_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000).map(float),
    st.sampled_from(("open", "done", "needle", "x")),
    st.text(string.ascii_letters + " ", max_size=12),
)
PLAIN_JSON = st.recursive(
    _PLAIN_LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(_PLAIN_KEYS, children, max_size=3)
    ),
    max_leaves=6,
)
PLAIN_STRUCTS = st.dictionaries(_PLAIN_KEYS, PLAIN_JSON, max_size=4)


def _json(raw: bool) -> tuple[st.SearchStrategy[Any], st.SearchStrategy[dict[Any, Any]]]:
    """Hostile JSON values and Struct contents; with `raw`, also keys and strings
    that are not UTF-8 and Values with no kind set."""
    keys = st.one_of(
        st.sampled_from(("status", "n", "text", "a", "title", "_", "$", "a.b", "data", "id")),
        st.sampled_from(hostile.EDGE_STRINGS),
        st.text(max_size=12),
    )
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        hostile.doubles(),
        st.integers(-(2**53), 2**53).map(float),
        st.sampled_from(hostile.EDGE_STRINGS),
        st.text(max_size=20),
    )
    if raw:
        keys = weighted((6, keys), (1, st.sampled_from(hostile.RAW_STRINGS).map(Raw)))
        leaves = weighted(
            (12, leaves),
            (1, st.sampled_from(hostile.RAW_STRINGS).map(Raw)),
            (1, st.just(UNSET)),
        )
    values = st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
        ),
        max_leaves=10,
    )
    structs = weighted(
        (30, st.dictionaries(keys, values, max_size=5)),
        (1, st.tuples(st.sampled_from(("big", "a", "")), BIG_VALUES).map(lambda kv: dict([kv]))),
    )
    return values, structs


JSON, STRUCTS = _json(raw=False)
RAW_JSON, RAW_STRUCTS = _json(raw=True)

MASK_PATHS = st.one_of(
    st.sampled_from(
        (
            "data",
            "data.status",
            "data.a.b.c",
            "data.",
            "data..a",
            "expire_time",
            "version",
            "id",
            "namespace",
            "*",
            "data.*",
            "data.`a`",
            "data." + "k" * 300,
        )
    ),
    st.sampled_from(hostile.EDGE_STRINGS),
    st.text(max_size=12),
)
HOSTILE_MASKS = st.lists(MASK_PATHS, max_size=4)
PLAIN_MASKS = st.lists(
    st.sampled_from(("data", "data.status", "data.n", "expire_time")), max_size=2
)


def _soon() -> st.SearchStrategy[tuple[int, int]]:
    now = int(time.time())
    return st.tuples(st.integers(now + 60, now + 86_400), st.integers(0, 999_999_999))


PLAIN_TIMES = _soon()
PLAIN_DURATIONS = st.tuples(st.integers(1, 4), st.just(0))

# --- modes ------------------------------------------------------------------------------

MODES = st.sampled_from((0, 0, 20, 20, 20, 20, 20, 100))
"""The percentage of a message's fields that get hostile values: plain, targeted, chaos."""
RAW_MESSAGE = st.sampled_from((True, False, False, False, False, False, False, False))
"""Whether a message's hostile strings may be invalid UTF-8: one in eight (any such
string makes the whole message undecodable, so more would leave handlers untested)."""
_PERCENT = st.integers(0, 99)
_FEW = st.integers(0, 3)
_SOME = st.integers(1, 3)
_MANY_MESSAGES = weighted((20, _FEW), (1, st.sampled_from((50, 1001))))
_MANY_SCALARS = weighted((20, _FEW), (1, st.sampled_from((1000, 1001, 5000))))
_BIG_BYTES = st.sampled_from((1 << 20, (16 << 20) + 1)).map(lambda n: b"\x00" * n)


def _set_percent(fd: FieldDescriptor) -> int:
    """How often a field outside any oneof is set: most often, but times, durations
    and preconditions less often, since a valid request takes one or none of them
    (run_time or delay; a size or digest that must match the content)."""
    if fd.message_type is not None and fd.message_type.full_name in _TIMES:
        return 35
    if fd.name in _PRECONDITIONS or (fd.has_presence and fd.message_type is None):
        return 35
    return 85


_TIMES = frozenset({"google.protobuf.Timestamp", "google.protobuf.Duration"})
_PRECONDITIONS = frozenset({"sha256", "size", "expected_version", "expected_next_seq"})


@functools.cache
def _rest(size: int) -> st.SearchStrategy[int]:
    """1 + the index of a oneof member other than the first."""
    return st.integers(2, size) if size > 1 else st.just(1)


@functools.cache
def _oneof_choice(size: int, plain: bool) -> st.SearchStrategy[int]:
    """0 for none of a oneof's fields, else 1 + the index of the one to set."""
    return st.integers(1, size) if plain else st.integers(0, size)


# --- scalar pools -----------------------------------------------------------------------

_INT_BOUNDS = {
    T.TYPE_INT32: hostile.INT32,
    T.TYPE_SINT32: hostile.INT32,
    T.TYPE_SFIXED32: hostile.INT32,
    T.TYPE_INT64: hostile.INT64,
    T.TYPE_SINT64: hostile.INT64,
    T.TYPE_SFIXED64: hostile.INT64,
    T.TYPE_UINT32: hostile.UINT32,
    T.TYPE_FIXED32: hostile.UINT32,
    T.TYPE_UINT64: hostile.UINT64,
    T.TYPE_FIXED64: hostile.UINT64,
}


def _name(first: str, rest: str, longest: int) -> st.SearchStrategy[str]:
    """Names that pass validation: one of `first`, then up to `longest` - 1 of `rest`
    (st.text draws a string as one choice, st.from_regex one per character)."""
    return st.tuples(st.sampled_from(first), st.text(rest, max_size=longest - 1)).map("".join)


_LOWER = string.ascii_lowercase + string.digits
_LETTERS = string.ascii_letters
_VALID_NAMES = {
    "namespace": _name(_LOWER, _LOWER + "_-", 63),
    "collection": _name(_LETTERS, _LETTERS + string.digits + "_-", 64),
    "queue": _name(_LETTERS, _LETTERS + string.digits + "_-", 64),
    "id": _name(_LETTERS + string.digits, _LETTERS + string.digits + "._~:@+=-", 40),
}
_NAME_KINDS = {"record_id": "id", "transcript_id": "id", "ids": "id", "entity_id": "id"}
_PLAIN_FILTERS = st.sampled_from(
    ("", 'data.status = "open"', "data.n > 1", 'id = "r1"', "version >= 1", "data.tags:*")
)
_PLAIN_ORDERS = st.sampled_from(("", "data.n desc", "create_time", "id desc", "update_time, id"))


@dataclass(frozen=True)
class Where:
    """Where a field sits: its request's service and its message's short name."""

    service: str
    message: str


class Pools:
    """The strategy for each scalar field, plausible or hostile, built once per field
    and place."""

    def __init__(self, known: Known) -> None:
        self.known = known
        self._cache: dict[tuple[Any, ...], st.SearchStrategy[Any]] = {}

    def cached(
        self, key: tuple[Any, ...], make: Callable[[], st.SearchStrategy[Any]]
    ) -> st.SearchStrategy[Any]:
        """The strategy under `key`, made once (Hypothesis validates each new one)."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def known_values(self, name: str, where: Where) -> list[str]:
        values = self.known.values
        for key in (f"{where.message}.{name}", f"{where.service}.{name}", name):
            if key in values:
                return values[key]
        return []

    def repeat(self, fd: FieldDescriptor, hostile_field: bool) -> st.SearchStrategy[int]:
        """How many elements a repeated field gets: a few, or past a limit when hostile."""
        if not hostile_field:
            return _SOME
        return _MANY_MESSAGES if fd.message_type is not None else _MANY_SCALARS

    def scalar(
        self, fd: FieldDescriptor, where: Where, hostile_field: bool, raw: bool
    ) -> st.SearchStrategy[Any]:
        """Values of a scalar field; with `raw`, hostile strings may be invalid UTF-8."""
        key = (fd.full_name, where, hostile_field, raw)
        if key not in self._cache:
            if hostile_field:
                self._cache[key] = self._hostile(fd, where, raw)
            else:
                self._cache[key] = self._plausible(fd, where)
        return self._cache[key]

    def _plausible(self, fd: FieldDescriptor, where: Where) -> st.SearchStrategy[Any]:
        name = fd.name
        if fd.type == T.TYPE_STRING:
            values = self.known_values(name, where)
            if name == "namespace":
                return st.just(self.known.namespace)
            if name == "filter":
                return _PLAIN_FILTERS
            if name == "order_by":
                return _PLAIN_ORDERS
            if name in ("page_token", "next_page_token"):
                return st.just("")
            kind = _NAME_KINDS.get(name, name)
            valid = _VALID_NAMES.get(kind)
            if values and valid is not None:
                return weighted((2, st.sampled_from(values)), (1, valid))
            if values:
                return st.sampled_from(values)
            if valid is not None:
                return valid
            return st.text(string.ascii_letters + string.digits + " ._-", max_size=16)
        if fd.type == T.TYPE_BYTES:
            blobs = self.known.blobs.get(name, [])
            return st.sampled_from(blobs) if blobs else st.binary(max_size=256)
        if fd.type == T.TYPE_BOOL:
            return st.booleans()
        if fd.type in (T.TYPE_DOUBLE, T.TYPE_FLOAT):
            return st.floats(-1e6, 1e6)
        if fd.type == T.TYPE_ENUM:
            numbers = [value.number for value in fd.enum_type.values]
            return st.sampled_from([number for number in numbers if number] or numbers)
        if name == "page_size":
            return st.integers(0, 50)
        return weighted((4, st.integers(1, 10)), (1, st.just(0)))

    def _hostile(self, fd: FieldDescriptor, where: Where, raw: bool) -> st.SearchStrategy[Any]:
        if fd.type == T.TYPE_STRING:
            return self._hostile_string(fd.name, where, raw)
        if fd.type == T.TYPE_BYTES:
            small = st.one_of(
                st.binary(max_size=64),
                st.binary(max_size=4096),
                st.sampled_from((b"", b"\x00" * 1024, b"\xff" * 65_536)),
            )
            branches = [(20, small), (1, _BIG_BYTES)]
            blobs = self.known.blobs.get(fd.name, [])
            if blobs:
                branches.append((20, damaged(tuple(blobs))))
            return weighted(*branches)
        if fd.type == T.TYPE_BOOL:
            return st.booleans()
        if fd.type == T.TYPE_DOUBLE:
            return hostile.doubles()
        if fd.type == T.TYPE_FLOAT:
            return hostile.doubles().filter(lambda v: not abs(v) < float("inf") or abs(v) < 3e38)
        if fd.type == T.TYPE_ENUM:
            numbers = [value.number for value in fd.enum_type.values]
            return st.one_of(st.sampled_from(numbers), st.sampled_from((-1, 99, *hostile.INT32)))
        return hostile.integers(_INT_BOUNDS[fd.type])

    def _hostile_string(self, name: str, where: Where, raw: bool) -> st.SearchStrategy[Any]:
        known = self.known
        values = self.known_values(name, where)
        generic: st.SearchStrategy[Any] = st.one_of(
            st.sampled_from(hostile.EDGE_STRINGS),
            st.text(max_size=30),
            st.text(alphabet=string.ascii_letters + string.digits + "._-", max_size=20),
        )
        if raw:
            generic = weighted((3, generic), (1, st.sampled_from(hostile.RAW_STRINGS).map(Raw)))
        if name == "namespace":
            return st.one_of(generic, _VALID_NAMES["namespace"]).filter(
                lambda value: value not in known.forbidden_namespaces
            )
        if name == "filter":
            return weighted((3, hostile.filters()), (1, generic))
        if name == "order_by":
            return weighted((3, hostile.order_bys()), (1, generic))
        if name == "query":
            return weighted((2, hostile.search_queries(values)), (1, generic))
        if name in ("page_token", "next_page_token"):
            return st.one_of(hostile.invented_token(), generic)
        branches: list[st.SearchStrategy[Any]] = [generic]
        if "cursor" in name or name == "lease_token":
            if values:
                branches.append(hostile.forged_tokens(tuple(values)))
            branches.append(hostile.invented_token())
        elif "sha256" in name:
            branches.append(hostile.hex_digests())
        kind = _NAME_KINDS.get(name, name)
        if kind in _VALID_NAMES:
            branches.append(_VALID_NAMES[kind])
        return st.one_of(*branches)


def damage(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` as is, cut short, with bytes flipped, or with random bytes spliced in."""
    if not data:
        return draw(st.binary(max_size=16))
    edit = draw(_EDITS)
    at = draw(_FRACTIONS) * len(data) // 1000
    if edit == 0:
        return data
    if edit == 1:
        return data[:at]
    if edit == 2:
        out = bytearray(data)
        for fraction, flip in draw(_FLIPS):
            out[fraction * len(data) // 1000] ^= flip
        return bytes(out)
    if edit == 3:
        return data[:at] + draw(_SPLICES) + data[at:]
    return data[:at] + data[at:] * 2


_EDITS = st.integers(0, 4)
_FRACTIONS = st.integers(0, 999)
_FLIPS = st.lists(st.tuples(_FRACTIONS, st.integers(1, 255)), min_size=1, max_size=8)
_SPLICES = st.binary(min_size=1, max_size=64)


@st.composite
def damaged(draw: st.DrawFn, blobs: tuple[bytes, ...]) -> bytes:
    """One of `blobs`, damaged (see `damage`)."""
    return damage(draw, draw(st.sampled_from(blobs)))


# --- messages ---------------------------------------------------------------------------


class Builder:
    """Fills one request message by its descriptor; collects the byte swaps that put
    in what the protobuf runtime refuses to hold (see `encoding.py`)."""

    def __init__(
        self, draw: st.DrawFn, pools: Pools, service: str, stream_position: int | None = None
    ) -> None:
        self.draw = draw
        self.pools = pools
        self.service = service
        self.stream_position = stream_position
        self.percent = draw(MODES)
        self.raw = self.percent > 0 and draw(RAW_MESSAGE)
        self.swaps: list[tuple[bytes, bytes]] = []

    def hostile(self) -> bool:
        """Whether the next field gets a hostile value (by the message's mode)."""
        if self.percent in (0, 100):
            return self.percent == 100
        return self.draw(_PERCENT) < self.percent

    def fill(self, message: Message, depth: int = 0, hostile_field: bool | None = None) -> None:
        descriptor = message.DESCRIPTOR
        special = _SPECIAL.get(descriptor.full_name)
        if special is not None:
            special(self, message, self.hostile() if hostile_field is None else hostile_field)
            return
        where = Where(self.service, descriptor.name)
        chosen: set[str] = set()
        for oneof in descriptor.oneofs:
            if len(oneof.fields) == 1:  # proto3 `optional`: a field like any other
                if self.draw(_PERCENT) < _set_percent(oneof.fields[0]):
                    chosen.add(oneof.fields[0].name)
                continue
            if depth == 0 and self.stream_position is not None and self.percent == 0:
                # A plain stream opens with the first member (the header), then the rest.
                picked = 1 if self.stream_position == 0 else self.draw(_rest(len(oneof.fields)))
            else:
                picked = self.draw(_oneof_choice(len(oneof.fields), self.percent == 0))
            if picked:
                chosen.add(oneof.fields[picked - 1].name)
        for fd in descriptor.fields:
            if fd.containing_oneof is not None:
                if fd.name in chosen:
                    self.set_field(message, fd, depth, where, self.hostile())
                continue
            # One roll decides whether the field is set and, if so, whether hostile.
            roll, limit = self.draw(_PERCENT), _set_percent(fd)
            if fd.name == "namespace" or roll < limit:
                self.set_field(message, fd, depth, where, roll * 100 // limit < self.percent)

    def set_field(
        self, message: Message, fd: FieldDescriptor, depth: int, where: Where, hostile_field: bool
    ) -> None:
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            self.fill_map(getattr(message, fd.name), fd, depth, where)
        elif fd.is_repeated:
            target = getattr(message, fd.name)
            for _ in range(self.draw(self.pools.repeat(fd, hostile_field))):
                if fd.message_type is None:
                    target.append(self.scalar(fd, where, self.hostile()))
                elif depth < MAX_DEPTH:
                    self.fill(target.add(), depth + 1)
        elif fd.message_type is not None:
            if depth < MAX_DEPTH:
                sub = getattr(message, fd.name)
                sub.SetInParent()
                self.fill(sub, depth + 1, hostile_field)
        else:
            setattr(message, fd.name, self.scalar(fd, where, hostile_field))

    def fill_map(self, target: Any, fd: FieldDescriptor, depth: int, where: Where) -> None:
        key_fd = fd.message_type.fields_by_name["key"]
        value_fd = fd.message_type.fields_by_name["value"]
        for _ in range(self.draw(_FEW)):
            key = self.scalar(key_fd, where, self.hostile())
            if key in target:
                # A key drawn again would overwrite its value, and with it any
                # placeholder that value holds (its swap would then find nothing).
                continue
            if value_fd.message_type is not None:
                if depth < MAX_DEPTH:
                    self.fill(target[key], depth + 1)
            else:
                target[key] = self.scalar(value_fd, where, self.hostile())

    def scalar(self, fd: FieldDescriptor, where: Where, hostile_field: bool) -> Any:
        value = self.draw(self.pools.scalar(fd, where, hostile_field, self.raw))
        if isinstance(value, Raw):
            return self.raw_string(value.data)
        return value

    def raw_string(self, data: bytes) -> str:
        data = data.rjust(encoding.PLACEHOLDER_MIN, b"a")
        text = encoding.placeholder(len(data))
        self.swaps.append((text.encode(), data))
        return text

    def key(self, key: Any) -> str:
        return self.raw_string(key.data) if isinstance(key, Raw) else key

    def put_value(self, value: Message, item: Any) -> None:
        """Set a google.protobuf.Value from a JSON-ish tree (with UNSET, Raw and Big)."""
        if item is UNSET:
            return
        if item is None:
            value.null_value = 0
        elif isinstance(item, bool):
            value.bool_value = item
        elif isinstance(item, float):
            value.number_value = item
        elif isinstance(item, str):
            value.string_value = item
        elif isinstance(item, Raw):
            value.string_value = self.raw_string(item.data)
        elif isinstance(item, list):
            value.list_value.SetInParent()
            for element in item:
                self.put_value(value.list_value.values.add(), element)
        elif isinstance(item, dict):
            value.struct_value.SetInParent()
            for key, element in item.items():
                self.put_value(value.struct_value.fields[self.key(key)], element)
        elif isinstance(item, Big):
            encoded = _big_value(item)
            length = encoding.value_placeholder_length(encoded)
            assert length is not None
            text = encoding.placeholder(length)
            value.string_value = text
            self.swaps.append((b"\x1a" + encoding.varint(length) + text.encode(), encoded))
        else:
            raise AssertionError(item)

    def struct(self, message: Message, hostile_field: bool) -> None:
        contents = (RAW_STRUCTS if self.raw else STRUCTS) if hostile_field else PLAIN_STRUCTS
        for key, item in self.draw(contents).items():
            self.put_value(message.fields[self.key(key)], item)

    def value(self, message: Message, hostile_field: bool) -> None:
        values = (RAW_JSON if self.raw else JSON) if hostile_field else PLAIN_JSON
        self.put_value(message, self.draw(values))

    def list_value(self, message: Message, hostile_field: bool) -> None:
        for _ in range(self.draw(_FEW)):
            self.value(message.values.add(), hostile_field)

    def timestamp(self, message: Message, hostile_field: bool) -> None:
        parts = hostile.timestamp_parts() if hostile_field else PLAIN_TIMES
        message.seconds, message.nanos = self.draw(parts)

    def duration(self, message: Message, hostile_field: bool) -> None:
        parts = hostile.duration_parts() if hostile_field else PLAIN_DURATIONS
        message.seconds, message.nanos = self.draw(parts)

    def field_mask(self, message: Message, hostile_field: bool) -> None:
        paths = HOSTILE_MASKS if hostile_field else PLAIN_MASKS
        message.paths.extend(self.draw(paths))

    def any(self, message: Message, hostile_field: bool) -> None:
        message.type_url = self.draw(_TYPE_URLS)
        message.value = self.draw(_ANY_VALUES)


_TYPE_URLS = st.sampled_from(("", "type.googleapis.com/google.protobuf.Struct", "x/y"))
_ANY_VALUES = st.binary(max_size=32)

_SPECIAL: dict[str, Callable[[Builder, Message, bool], None]] = {
    "google.protobuf.Struct": Builder.struct,
    "google.protobuf.Value": Builder.value,
    "google.protobuf.ListValue": Builder.list_value,
    "google.protobuf.Timestamp": Builder.timestamp,
    "google.protobuf.Duration": Builder.duration,
    "google.protobuf.FieldMask": Builder.field_mask,
    "google.protobuf.Any": Builder.any,
}
