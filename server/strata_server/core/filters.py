"""AIP-160 filters and AIP-132 `order_by` for records, parsed once into a small AST.

A hand-written recursive-descent parser: the grammar is a dozen rules, the error
messages must carry the exact position of the offending token, and it adds no
dependency on a parsing library's error format. Each storage adapter compiles the
AST to parameterized SQL for its dialect (`strata_server.storage.sqlquery`).

Precedence follows AIP-160: `NOT` binds tightest, then `OR`, then `AND`, so
`a = 1 AND b = 2 OR c = 3` means `a = 1 AND (b = 2 OR c = 3)`.
"""

from __future__ import annotations

import functools
import math
import re
from datetime import datetime

from strata_server.core.errors import InvalidArgument
from strata_server.core.values import frozen

MAX_FILTER_LENGTH = 4096
MAX_DEPTH = 32
MAX_PATH_KEYS = 16
MAX_INTEGER = 2**63 - 1
MAX_KEY_LENGTH = 128
DATA_KEY = re.compile(rf"[A-Za-z0-9_]{{1,{MAX_KEY_LENGTH}}}")
"""The data keys a filter or order_by may name; the SQL compiler relies on this."""

TIME_FIELDS = frozenset({"create_time", "update_time", "expire_time"})
TOP_FIELDS = frozenset({"id", "version", "owner"}) | TIME_FIELDS
NULLABLE_FIELDS = frozenset({"expire_time", "owner"})
"""Top-level fields a record may lack: no expiry, no owner (stored as SQL NULL)."""

Scalar = str | int | float | bool | None | datetime
"""A literal in a filter, or a value a sort key takes."""


@frozen
class Field:
    """A filterable or sortable field: a top-level record field, or a path into data.

    `name` is "data" (with `path` the keys below it) or one of TOP_FIELDS (with an
    empty path).
    """

    name: str
    path: tuple[str, ...] = ()

    def __str__(self) -> str:
        return ".".join((self.name, *self.path))


@frozen
class Compare:
    """`field op value`; op is one of = != < <= > >=."""

    field: Field
    op: str
    value: Scalar


@frozen
class Present:
    """`field:*` — the field exists (for data paths: the key is there, even if null)."""

    field: Field


@frozen
class And:
    """All of `items` hold."""

    items: tuple[Filter, ...]


@frozen
class Or:
    """At least one of `items` holds."""

    items: tuple[Filter, ...]


@frozen
class Not:
    """`item` does not hold."""

    item: Filter


Filter = Compare | Present | And | Or | Not
"""A parsed filter expression."""


@frozen
class OrderKey:
    """One key of an ordering."""

    field: Field
    descending: bool = False


ID_ORDER = OrderKey(Field("id"))

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<number>-?(?:\d+\.\d*|\d+)(?:[eE][+-]?\d+)?(?![A-Za-z_]))
  | (?P<op><=|>=|!=|=|<|>|:|\(|\)|\.|\*|-|,)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE,
)
_KEYWORDS = frozenset({"AND", "OR", "NOT"})
_COMPARATORS = frozenset({"=", "!=", "<", "<=", ">", ">="})
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}


@frozen
class _Token:
    kind: str  # string | number | op | word | end
    text: str
    pos: int


def _fail(message: str, pos: int, field: str = "filter") -> InvalidArgument:
    return InvalidArgument.field(field, f"{message} at position {pos}", position=str(pos))


def _tokenize(text: str, field: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise _fail(f"unexpected character {text[pos]!r}", pos, field)
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(_Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _unquote(token: _Token) -> str:
    body = token.text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\":
            escaped = body[i + 1]
            if escaped not in _ESCAPES:
                raise _fail(f"unknown escape \\{escaped}", token.pos + i + 1)
            out.append(_ESCAPES[escaped])
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


class _Parser:
    def __init__(self, text: str, field: str) -> None:
        self.tokens = _tokenize(text, field)
        self.index = 0
        self.depth = 0
        self.field = field

    @property
    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at_keyword(self, word: str) -> bool:
        return self.peek.kind == "word" and self.peek.text == word

    def expect_end(self) -> None:
        token = self.peek
        if token.kind != "end":
            raise _fail(f"expected AND, OR or end of filter, found {token.text!r}", token.pos)

    # expression := sequence { AND sequence }
    def expression(self) -> Filter:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _fail(f"filter nests deeper than {MAX_DEPTH} levels", self.peek.pos)
        items = [self.factor()]
        while self.at_keyword("AND"):
            self.take()
            items.append(self.factor())
        self.depth -= 1
        return items[0] if len(items) == 1 else And(tuple(items))

    # factor := term { OR term }
    def factor(self) -> Filter:
        items = [self.term()]
        while self.at_keyword("OR"):
            self.take()
            items.append(self.term())
        return items[0] if len(items) == 1 else Or(tuple(items))

    # term := [NOT | -] simple
    def term(self) -> Filter:
        if self.at_keyword("NOT") or (self.peek.kind == "op" and self.peek.text == "-"):
            self.take()
            return Not(self.simple())
        return self.simple()

    # simple := ( expression ) | restriction
    def simple(self) -> Filter:
        token = self.peek
        if token.kind == "op" and token.text == "(":
            self.take()
            inner = self.expression()
            closing = self.take()
            if closing.kind != "op" or closing.text != ")":
                raise _fail(f"expected ')', found {closing.text or 'end of filter'!r}", closing.pos)
            return inner
        return self.restriction()

    # restriction := field comparator value | field : *
    def restriction(self) -> Filter:
        start = self.peek
        field = parse_field(self, "filter")
        op = self.take()
        if op.kind == "op" and op.text == ":":
            star = self.take()
            if star.kind != "op" or star.text != "*":
                raise _fail("only presence (':*') is supported after ':'", star.pos)
            return Present(field)
        if op.kind != "op" or op.text not in _COMPARATORS:
            found = op.text or "end of filter"
            raise _fail(f"expected a comparison operator after {field}, found {found!r}", op.pos)
        value_token = self.take()
        value = self.literal(value_token)
        return Compare(field, op.text, _coerce(field, op.text, value, value_token.pos, start.pos))

    def literal(self, token: _Token) -> Scalar:
        if token.kind == "string":
            return _unquote(token)
        if token.kind == "number":
            number = int(token.text) if re.fullmatch(r"-?\d+", token.text) else float(token.text)
            if not math.isfinite(number) or abs(number) > MAX_INTEGER:
                raise _fail(f"number {token.text} is out of range", token.pos)
            return number
        if token.kind == "word":
            if token.text in _KEYWORDS:
                raise _fail(f"expected a value, found keyword {token.text}", token.pos)
            return {"true": True, "false": False, "null": None}.get(token.text, token.text)
        raise _fail(f"expected a value, found {token.text or 'end of filter'!r}", token.pos)


def parse_field(parser: _Parser, what: str) -> Field:
    """Read a dotted field name from the parser's tokens and check it names a field."""
    first = parser.take()
    if first.kind != "word" or first.text in _KEYWORDS:
        raise _fail(f"expected a field name, found {first.text or 'end'!r}", first.pos, what)
    keys = [first.text]
    while parser.peek.kind == "op" and parser.peek.text == ".":
        parser.take()
        key = parser.take()
        if key.kind not in ("word", "number") or not DATA_KEY.fullmatch(key.text):
            raise _fail(
                f"expected a key after '.' (1-{MAX_KEY_LENGTH} letters, digits or '_'), "
                f"found {key.text or 'end'!r}",
                key.pos,
                what,
            )
        keys.append(key.text)
    name, path = keys[0], tuple(keys[1:])
    if name == "data":
        if not path:
            raise _fail("name a key inside data, e.g. data.status", first.pos, what)
        if len(path) > MAX_PATH_KEYS:
            raise _fail(f"data paths have at most {MAX_PATH_KEYS} keys", first.pos, what)
        return Field("data", path)
    if name in TOP_FIELDS and not path:
        return Field(name)
    known = ", ".join(sorted(TOP_FIELDS | {"data.<key>"}))
    raise _fail(f"unknown field {'.'.join(keys)!r} (known: {known})", first.pos, what)


def _coerce(field: Field, op: str, value: Scalar, pos: int, field_pos: int) -> Scalar:
    if field.name in TIME_FIELDS:
        if value is None and op in ("=", "!="):
            return None
        if not isinstance(value, str):
            raise _fail(f"{field} compares with an RFC 3339 time string", pos)
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _fail(f"{value!r} is not an RFC 3339 time", pos) from None
        if parsed.tzinfo is None:
            raise _fail(f"{value!r} needs a time zone offset, e.g. Z", pos)
        return parsed
    if field.name == "version" and (not isinstance(value, int) or isinstance(value, bool)):
        raise _fail("version compares with an integer", pos)
    if field.name == "id" and not isinstance(value, str):
        raise _fail("id compares with a string", pos)
    if field.name == "owner":
        if value is not None and not isinstance(value, str):
            raise _fail('owner compares with a string (or "" / null for no owner)', pos)
        if value == "" and op in ("=", "!="):
            return None  # an unowned record stores no owner: `owner = ""` is `owner = null`
    if value is None and op not in ("=", "!="):
        raise _fail(f"null can only be compared with = or != (field at {field_pos})", pos)
    if isinstance(value, bool) and op not in ("=", "!="):
        raise _fail("booleans can only be compared with = or !=", pos)
    return value


PARSED_TEXTS = 1024
"""How many distinct filter (and order_by) texts keep their parse. Callers repeat a
few texts with each page and each poll; the parse is a pure function of the text
and its result immutable, so a repeat skips the parser."""


@functools.lru_cache(maxsize=PARSED_TEXTS)
def parse_filter(text: str) -> Filter | None:
    """Parse an AIP-160 filter; an empty or blank string means no filter.

    Raises InvalidArgument naming the position of the first offending token.
    """
    if not text.strip():
        return None
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidArgument.field("filter", f"longer than {MAX_FILTER_LENGTH} characters")
    parser = _Parser(text, "filter")
    result = parser.expression()
    parser.expect_end()
    return result


@functools.lru_cache(maxsize=PARSED_TEXTS)
def parse_order_by(text: str) -> tuple[OrderKey, ...]:
    """Parse `field [asc|desc], ...`; the result always ends with `id` as tie-breaker."""
    keys: list[OrderKey] = []
    if text.strip():
        if len(text) > MAX_FILTER_LENGTH:
            raise InvalidArgument.field("order_by", f"longer than {MAX_FILTER_LENGTH} characters")
        parser = _Parser(text, "order_by")
        while True:
            field = parse_field(parser, "order_by")
            descending = False
            if parser.peek.kind == "word" and parser.peek.text.lower() in ("asc", "desc"):
                descending = parser.take().text.lower() == "desc"
            if any(key.field == field for key in keys):
                raise _fail(f"{field} is named twice", parser.peek.pos, "order_by")
            keys.append(OrderKey(field, descending))
            token = parser.take()
            if token.kind == "end":
                break
            if token.kind != "op" or token.text != ",":
                raise _fail(f"expected ',' or end, found {token.text!r}", token.pos, "order_by")
    if not any(key.field == ID_ORDER.field for key in keys):
        keys.append(ID_ORDER)
    return tuple(keys)
