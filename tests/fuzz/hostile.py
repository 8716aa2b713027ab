"""Pools of hostile values, one per kind of field, as Hypothesis strategies.

Each pool mixes three things: values at or past an edge (lengths, ranges, encodings),
values built to get past validation so the deeper layers see hostile input too
(valid names, parseable filters, real tokens with forged contents), and plain random
values. `Raw` stands for a string field's bytes that are not UTF-8 at all, which the
protobuf runtime cannot hold; `requests.py` writes those in by hand.
"""

from __future__ import annotations

import base64
import functools
import json
import string
import time
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
UINT32 = (0, 2**32 - 1)
UINT64 = (0, 2**64 - 1)


def weighted(*options: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of `options`, each drawn with its weight (st.one_of weighs its branches
    alike, so a branch is listed `weight` times)."""
    return st.one_of([option for weight, option in options for _ in range(weight)])


@dataclass(frozen=True)
class Raw:
    """A string field's raw bytes, not valid UTF-8 (a lone surrogate, an overlong
    encoding, a truncated sequence)."""

    data: bytes


EDGE_STRINGS: tuple[str, ...] = (
    "",
    " ",
    "a",
    "A",
    "0",
    "-",
    "_",
    "\x00",
    "a\x00b",
    "\x00" * 64,
    "\t\n\r",
    "line\nbreak",
    "\x1b[2J\x1b[31m",
    "\x7f",
    "\x85",
    "\u2028\u2029",
    "\ufeff",
    "\ufffe\uffff",
    "\U0010ffff",
    "\U0001f600",
    "e\u0301",
    "\u00e9",
    "\u202eevil",
    "a\u200bb",
    "\u200d",
    "\ufb00",
    "\u0130",
    "\u00df",
    "\u01c5",
    "\U0001d518\U0001d52b",
    "\uff21\uff22",
    "../../etc/passwd",
    "..",
    ".",
    "/",
    "//",
    "/etc/passwd",
    "a/../../b",
    "..\\..\\windows\\win.ini",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "file:///etc/passwd",
    "blobs/sha256/../../../x",
    "CON",
    "NUL",
    "'",
    '"',
    "`",
    "\\",
    "\\\\",
    "'; DROP TABLE records; --",
    "' OR '1'='1",
    '" OR 1=1 --',
    "%",
    "%_%",
    "*",
    "?",
    "$1",
    ":name",
    "@x",
    "{}",
    "[]",
    "null",
    "true",
    "1e309",
    "NaN",
    "-0",
    "9" * 400,
    "0x10",
    "%s%s%n",
    "{0}{1}",
    "${jndi:ldap://x/a}",
    "{{7*7}}",
    "a" * 63,
    "a" * 64,
    "a" * 65,
    "a" * 128,
    "a" * 129,
    "a" * 256,
    "a" * 257,
    "a" * 1024,
    "a" * 1025,
    "a" * 4096,
    "a" * 4097,
    "x" * 70_000,
    "\U0001f600" * 1000,
)

RAW_STRINGS: tuple[bytes, ...] = (
    b"\xed\xa0\x80",  # U+D800, a lone high surrogate
    b"\xed\xbf\xbf",  # U+DFFF, a lone low surrogate
    b"a\xed\xa0\x80b",
    b"\xed\xa0\xbd\xed\xb8\x80",  # a surrogate pair, CESU-8 style
    b"\xc0\xaf",  # overlong '/'
    b"\xc0\x80",  # overlong NUL
    b"..\xc0\xaf..\xc0\xafetc\xc0\xafpasswd",
    b"\xff",
    b"\xfe\xff",
    b"\x80",
    b"\xe2\x82",  # truncated
    b"\xf4\x90\x80\x80",  # past U+10FFFF
    b"\xf8\x88\x80\x80\x80",
    b"needle\xff",
)

SEARCH_WORDS: tuple[str, ...] = (
    '"unterminated',
    "NEAR(a b",
    "NEAR(needle needle, -1)",
    "a AND",
    "AND",
    "OR",
    "NOT",
    "NOT needle",
    "needle*",
    "*",
    "^needle",
    "text:needle",
    "data:x",
    "{a b}",
    "a + b",
    "-needle",
    "(((",
    ")",
    '""',
    "'",
    "needle & ! |",
    "a:*",
    "!needle",
    "<->",
    "needle:*",
    "a\x00",
    "\x00",
    "\\",
)

FILTER_FIELDS = (
    "id",
    "version",
    "create_time",
    "update_time",
    "expire_time",
    "data.status",
    "data.n",
    "data.text",
    "data.a.b.c",
    "data.0",
    "data._",
    "data." + "k" * 128,
    "data." + "k" * 129,
    "data." + ".".join("k" * 16),
    "data." + ".".join("k" * 17),
    "data",
    "data.",
    "collection",
    "namespace",
    "unknown",
    "NOT",
    "AND",
)
FILTER_OPS = ("=", "!=", "<", "<=", ">", ">=", ":", "==", "=~", "<>")
TIMES = (
    "2024-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00-01:00",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59.999999+00:00",
    "2024-02-30T00:00:00Z",
    "2024-01-01T00:00:00",
    "2024-01-01",
    "1970-01-01T00:00:00+23:59",
    "+10000-01-01T00:00:00Z",
)
FILTER_VALUES = (
    "0",
    "1",
    "-1",
    "1.5",
    "-0.0",
    "1e308",
    "1e309",
    "-1e309",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "1" + "0" * 400,
    "5e-324",
    "true",
    "false",
    "null",
    "open",
    "*",
    '"open"',
    "'needle 1'",
    '"\\n\\t"',
    '"\\x"',
    '"\\u0000"',
    '"\x00"',
    '"' + "a" * 5000 + '"',
    '"unterminated',
    "''",
    *(f'"{time_}"' for time_ in TIMES),
)


def _join(parts: list[str]) -> str:
    return " ".join(parts)


_DATA_KEYS = st.text(string.ascii_letters + string.digits + "_", min_size=1, max_size=8).map(
    lambda key: f"data.{key}"
)


@st.composite
def _restriction(draw: st.DrawFn) -> str:
    field = draw(st.sampled_from(FILTER_FIELDS) | _DATA_KEYS)
    op = draw(st.sampled_from(FILTER_OPS))
    if op == ":":
        return f"{field}:*"
    value = draw(st.sampled_from(FILTER_VALUES) | st.integers(*INT64).map(str))
    return f"{field} {op} {value}"


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(("AND", "OR")), children).map(lambda t: _join(list(t))),
        children.map(lambda c: f"NOT {c}"),
        children.map(lambda c: f"-{c}"),
        children.map(lambda c: f"({c})"),
    )


@functools.cache
def filters() -> st.SearchStrategy[str]:
    """AIP-160 filters: parseable ones with hostile literals, nesting past the
    limits, and text that is not a filter at all."""
    nested = st.sampled_from((31, 32, 33, 100, 2000)).map(
        lambda depth: "(" * depth + "version = 1" + ")" * depth
    )
    long_chain = st.sampled_from((2, 100, 400)).map(
        lambda n: " OR ".join(f"data.n = {i}" for i in range(n))
    )
    return st.one_of(
        st.recursive(_restriction(), _combine, max_leaves=6),
        nested,
        long_chain,
        st.sampled_from(EDGE_STRINGS),
        st.text(alphabet=string.printable, max_size=40),
        st.text(max_size=20),
    )


@functools.cache
def order_bys() -> st.SearchStrategy[str]:
    """AIP-132 order_by: field lists with directions, repeats and junk."""
    key = st.tuples(
        st.sampled_from(FILTER_FIELDS),
        st.sampled_from(("", " asc", " desc", " DESC", " sideways", " asc desc")),
    ).map("".join)
    return st.one_of(
        st.lists(key, min_size=1, max_size=4).map(", ".join),
        st.sampled_from(EDGE_STRINGS),
        st.sampled_from((",", "id,", ",id", "id id", "data.a,data.a", "id desc, id")),
        st.text(alphabet=string.printable, max_size=30),
    )


def search_queries(known: list[str]) -> st.SearchStrategy[str]:
    """Full-text queries: FTS5 and tsquery syntax, NULs, and words that match."""
    return st.one_of(
        st.sampled_from(SEARCH_WORDS),
        st.sampled_from(known or ["needle"]),
        st.sampled_from(EDGE_STRINGS),
        st.text(max_size=30),
    )


@functools.cache
def hex_digests() -> st.SearchStrategy[str]:
    """sha256 names: real-looking ones, wrong lengths, wrong cases, traversal."""
    return st.one_of(
        st.binary(min_size=32, max_size=32).map(bytes.hex),
        st.binary(min_size=32, max_size=32).map(lambda b: b.hex().upper()),
        st.text(alphabet="0123456789abcdef", min_size=0, max_size=70),
        st.sampled_from(("../" * 8 + "etc/passwd", "ab/cd/../../..", "a" * 64 + "/..")),
    )


# --- page tokens and cursors ----------------------------------------------------------

_FORGED_VALUES: tuple[Any, ...] = (
    {"$t": "0001-01-01T00:00:00"},
    {"$t": "0001-01-01T00:00:00+00:00"},
    {"$t": "0001-01-01T00:00:00+14:00"},
    {"$t": "9999-12-31T23:59:59-14:00"},
    {"$t": "not a time"},
    {"$t": 5},
    {"$t": None},
    {"$v": 2**80},
    {"$v": -(2**80)},
    {"$v": 2**63},
    {"$v": 1e308},
    {"$v": "\ud800"},
    {"$v": "a\x00b"},
    {"$v": "x" * 10_000},
    {"$v": None},
    {"$v": True},
    {"$v": []},
    {"$v": {"a": 1}},
    {},
    [],
    "plain",
    7,
    None,
)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _forged_body(draw: st.DrawFn, body: Any) -> Any:
    """A token body (decoded JSON) with hostile contents in place of its own."""
    if not isinstance(body, dict):
        body = {"v": 1, "q": "0" * 16}
    body = dict(body)
    choice = draw(st.integers(0, 5))
    if choice == 0 and isinstance(body.get("k"), list):
        keys = list(body["k"])
        if keys:
            keys[draw(st.integers(0, len(keys) - 1))] = draw(st.sampled_from(_FORGED_VALUES))
        body["k"] = keys
    elif choice == 1:
        body["k"] = draw(st.lists(st.sampled_from(_FORGED_VALUES), max_size=4))
    elif choice == 2:
        body["o"] = draw(st.sampled_from((-1, 0, 1, 99_999, 100_000, 100_001, 2**80, 1.5, "1")))
    elif choice == 3:
        body["v"] = draw(st.sampled_from((0, 2, -1, "1", None, 1.0, True)))
    elif choice == 4:
        body[draw(st.sampled_from(("q", "k", "o", "v")))] = draw(st.sampled_from(_FORGED_VALUES))
    else:
        body.pop(draw(st.sampled_from(("q", "k", "o", "v"))), None)
    return body


@st.composite
def forged_tokens(draw: st.DrawFn, reals: tuple[str, ...]) -> str:
    """Tokens forged from real ones (see `forge`)."""
    return forge(draw, draw(st.sampled_from(reals)))


def forge(draw: st.DrawFn, real: str) -> str:
    """A token forged from a real one: its JSON body (wherever a base64 segment
    holds one) rewritten with hostile values, or its text mangled."""
    segments = real.split(".")
    for index, segment in enumerate(segments):
        try:
            body = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
        except ValueError:
            continue
        if draw(_COIN):
            forged = _forged_body(draw, body)
            text = json.dumps(forged, separators=(",", ":"), default=str)
            segments[index] = _b64(text.encode("utf-8", "surrogatepass"))
            return ".".join(segments)
        break
    return mangle(draw, real)


_COIN = st.booleans()
_EDITS = st.integers(0, 4)
_FRACTIONS = st.integers(0, 999)
_CHARACTERS = st.sampled_from("A_-=./+\x00~")
_SUFFIXES = st.sampled_from(("=", "==", "===", ".", "\n", "%00"))
_EDGES = st.sampled_from(EDGE_STRINGS)


def mangle(draw: st.DrawFn, text: str) -> str:
    """`text` with one edit: a character flipped, cut, doubled or padded."""
    if not text:
        return draw(_EDGES)
    edit = draw(_EDITS)
    at = draw(_FRACTIONS) * len(text) // 1000
    if edit == 0:
        return text[:at] + draw(_CHARACTERS) + text[at + 1 :]
    if edit == 1:
        return text[:at]
    if edit == 2:
        return text + text
    if edit == 3:
        return text + draw(_SUFFIXES)
    return text[::-1]


@st.composite
def invented_token(draw: st.DrawFn) -> str:
    """A token made from nothing: base64 of hostile JSON, or of no JSON at all."""
    body = _forged_body(draw, {"v": 1, "q": draw(st.text("0123456789abcdef", max_size=16))})
    raw = json.dumps(body, separators=(",", ":"), default=str).encode("utf-8", "surrogatepass")
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return _b64(raw)
    if choice == 1:
        return _b64(draw(st.binary(max_size=40)))
    if choice == 2:
        return _b64(raw) + "." + _b64(draw(st.binary(min_size=32, max_size=32)))
    return draw(st.sampled_from(EDGE_STRINGS))


# --- times and durations --------------------------------------------------------------

TIMESTAMP_SECONDS = (
    0,
    1,
    -1,
    -62_135_596_800,  # 0001-01-01, the smallest Timestamp
    -62_135_596_801,
    253_402_300_799,  # 9999-12-31T23:59:59, the largest
    253_402_300_800,
    2**31 - 1,
    -(2**31),
    2**32,
    2**62,
    -(2**62),
    2**63 - 1,
    -(2**63),
)
DURATION_SECONDS = (
    0,
    1,
    -1,
    30,
    3_600,
    86_400 * 366,
    86_400 * 365 * 100,
    315_576_000_000,  # 10,000 years, the largest Duration
    315_576_000_001,
    -315_576_000_001,
    2**31,
    2**62,
    -(2**62),
    2**63 - 1,
    -(2**63),
)
NANOS = (0, 1, -1, 999_999_999, 1_000_000_000, -999_999_999, -1_000_000_000, *INT32)


@functools.cache
def timestamp_parts() -> st.SearchStrategy[tuple[int, int]]:
    """(seconds, nanos) of a Timestamp: near now, at the edges, past them."""
    now = int(time.time())
    near = st.integers(-86_400 * 30, 86_400 * 30).map(lambda offset: now + offset)
    return st.tuples(
        st.one_of(near, st.sampled_from(TIMESTAMP_SECONDS), st.integers(*INT64)),
        st.one_of(st.just(0), st.sampled_from(NANOS), st.integers(*INT32)),
    )


@functools.cache
def duration_parts() -> st.SearchStrategy[tuple[int, int]]:
    """(seconds, nanos) of a Duration: short, at the edges, past them, mixed signs."""
    return st.tuples(
        st.one_of(st.integers(0, 5), st.sampled_from(DURATION_SECONDS), st.integers(*INT64)),
        st.one_of(st.just(0), st.sampled_from(NANOS), st.integers(*INT32)),
    )


# --- numbers ----------------------------------------------------------------------------


@functools.cache
def integers(bounds: tuple[int, int]) -> st.SearchStrategy[int]:
    """Integers of a field's range: small, at the edges of every width, random."""
    low, high = bounds
    edges = [
        v
        for v in (0, 1, -1, 2, 7, 50, 100, 1000, 1001, 65_536, *INT32, *INT64, *UINT32, *UINT64)
        if low <= v <= high
    ]
    edges += [low, high]
    return st.one_of(st.integers(0, 10), st.sampled_from(edges), st.integers(low, high))


@functools.cache
def doubles() -> st.SearchStrategy[float]:
    """Doubles, NaN and the infinities included."""
    return st.one_of(
        st.sampled_from(
            (0.0, -0.0, 1.0, float("nan"), float("inf"), float("-inf"), 1e308, 5e-324, 2.0**64)
        ),
        st.floats(allow_nan=True, allow_infinity=True),
    )
