"""The AIP-160 filter and AIP-132 order_by parser (core.filters), without storage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from strata_server.core.errors import InvalidArgument
from strata_server.core.filters import (
    ID_ORDER,
    MAX_FILTER_LENGTH,
    And,
    Compare,
    Field,
    Not,
    Or,
    OrderKey,
    Present,
    parse_filter,
    parse_order_by,
)
from strata_server.core.models import ListQuery
from strata_server.storage.postgres.dialect import POSTGRES
from strata_server.storage.sqlite.dialect import SQLITE
from strata_server.storage.sqlquery import compile_list, compile_where


def eq(name: str, value: object) -> Compare:
    """`data.<name> = value`."""
    return Compare(Field("data", tuple(name.split("."))), "=", value)


A, B, C, D = eq("a", 1), eq("b", 2), eq("c", 3), eq("d", 4)


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("data.a = 1", A),
        ("data.a = 1 AND data.b = 2", And((A, B))),
        ("data.a = 1 OR data.b = 2", Or((A, B))),
        # AIP-160: OR binds tighter than AND
        ("data.a = 1 AND data.b = 2 OR data.c = 3", And((A, Or((B, C))))),
        ("data.a = 1 OR data.b = 2 AND data.c = 3", And((Or((A, B)), C))),
        ("data.a = 1 OR data.b = 2 AND data.c = 3 OR data.d = 4", And((Or((A, B)), Or((C, D))))),
        ("(data.a = 1 AND data.b = 2) OR data.c = 3", Or((And((A, B)), C))),
        ("data.a = 1 AND data.b = 2 AND data.c = 3", And((A, B, C))),
        # NOT binds tightest
        ("NOT data.a = 1 OR data.b = 2", Or((Not(A), B))),
        ("NOT (data.a = 1 OR data.b = 2)", Not(Or((A, B)))),
        ("-data.a = 1", Not(A)),
        ("((data.a = 1))", A),
        ("data.a:*", Present(Field("data", ("a",)))),
        ("expire_time:*", Present(Field("expire_time"))),
        ("data.a.b.c = 1", eq("a.b.c", 1)),
        ("data.list.0 = 1", eq("list.0", 1)),
        ("  data.a   =   1  ", A),
    ],
)
def test_precedence_and_grouping(text, tree):
    assert parse_filter(text) == tree


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("1", 1),
        ("-7", -7),
        ("2.5", 2.5),
        ("1e3", 1000.0),
        ("-1.5E-1", -0.15),
        ("true", True),
        ("false", False),
        ("null", None),
        ('"text"', "text"),
        ("'single'", "single"),
        ('"with \\"escapes\\" \\n \\t \\\\"', 'with "escapes" \n \t \\'),
        ("bare", "bare"),
        ('""', ""),
    ],
)
def test_literals(literal, value):
    node = parse_filter(f"data.x = {literal}")
    assert isinstance(node, Compare)
    assert node.value == value
    assert type(node.value) is type(value)


@pytest.mark.parametrize("op", ["=", "!=", "<", "<=", ">", ">="])
def test_every_comparison_operator(op):
    assert parse_filter(f"data.n {op} 3") == Compare(Field("data", ("n",)), op, 3)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_an_empty_filter_is_no_filter(text):
    assert parse_filter(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('create_time > "2024-01-02T03:04:05Z"', datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (
            'update_time <= "2024-01-02T03:04:05.123456Z"',
            datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        ),
        ('expire_time < "2024-01-02T05:04:05+02:00"', datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ],
)
def test_times_are_coerced_to_aware_datetimes(text, expected):
    node = parse_filter(text)
    assert isinstance(node, Compare)
    assert isinstance(node.value, datetime)
    assert node.value.utcoffset() is not None
    assert node.value == expected


def test_a_time_keeps_its_offset_as_an_instant():
    node = parse_filter('create_time = "2024-01-02T03:04:05-05:30"')
    assert isinstance(node, Compare)
    offset = timezone(-timedelta(hours=5, minutes=30))
    assert node.value == datetime(2024, 1, 2, 3, 4, 5, tzinfo=offset)


def test_a_time_field_compares_with_null():
    assert parse_filter("expire_time = null") == Compare(Field("expire_time"), "=", None)


def test_id_and_version_are_top_level_fields():
    assert parse_filter('id = "r1"') == Compare(Field("id"), "=", "r1")
    assert parse_filter("version >= 2") == Compare(Field("version"), ">=", 2)


def position_of(error: InvalidArgument) -> int:
    return int(error.metadata["position"])


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("data.status = ", 14, "expected a value"),
        ('data.status "open"', 12, "comparison operator"),
        ("(data.a = 1", 11, "expected ')'"),
        ("data.a = 1 )", 11, "expected AND, OR or end"),
        ("data.a = 1 AND", 14, "field name"),
        ("data.a = 1 data.b = 2", 11, "expected AND, OR or end"),
        ("NOT", 3, "field name"),
        ("foo = 1", 0, "unknown field 'foo'"),
        ("id.x = 1", 0, "unknown field 'id.x'"),
        ("data = 1", 0, "name a key inside data"),
        ("data. = 1", 6, "expected a key after '.'"),
        ("data.a # 1", 7, "unexpected character '#'"),
        ("data.a = AND", 9, "keyword AND"),
        ("data.a:1", 7, "presence"),
        ('data.a = "open', 9, "unexpected character"),
        ('data.a = "x\\qy"', 11, "unknown escape"),
        ('create_time > "yesterday"', 14, "not an RFC 3339 time"),
        ('create_time > "2024-01-01T00:00:00"', 14, "time zone"),
        ("create_time > 5", 14, "RFC 3339 time string"),
        ("version = 1.5", 10, "integer"),
        ("version = true", 10, "integer"),
        ("id = 5", 5, "string"),
        ("data.a > true", 9, "booleans"),
        ("data.a <= null", 10, "null"),
        ("(" * 33 + "data.a = 1" + ")" * 33, 32, "deeper than 32"),
    ],
)
def test_errors_name_the_position_of_the_offending_token(text, position, words):
    with pytest.raises(InvalidArgument) as caught:
        parse_filter(text)
    error = caught.value
    assert position_of(error) == position
    assert words in error.message
    assert f"at position {position}" in error.message
    assert [violation.field for violation in error.violations] == ["filter"]


def test_nesting_up_to_the_limit_parses():
    assert parse_filter("(" * 31 + "data.a = 1" + ")" * 31) == A


def test_a_filter_over_the_length_limit_is_refused():
    text = "data.a = 1 OR " * (MAX_FILTER_LENGTH // 14) + "data.a = 2"
    assert len(text) > MAX_FILTER_LENGTH
    with pytest.raises(InvalidArgument) as caught:
        parse_filter(text)
    assert caught.value.violations[0].field == "filter"


def test_data_paths_have_at_most_16_keys():
    assert parse_filter("data." + ".".join(["k"] * 16) + " = 1") is not None
    with pytest.raises(InvalidArgument):
        parse_filter("data." + ".".join(["k"] * 17) + " = 1")


# --- order_by -----------------------------------------------------------------------


def data(*path: str) -> Field:
    return Field("data", path)


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("", (ID_ORDER,)),
        ("   ", (ID_ORDER,)),
        ("id", (ID_ORDER,)),
        ("id desc", (OrderKey(Field("id"), True),)),
        ("data.rank", (OrderKey(data("rank")), ID_ORDER)),
        ("data.rank asc", (OrderKey(data("rank")), ID_ORDER)),
        ("data.rank DESC", (OrderKey(data("rank"), True), ID_ORDER)),
        ("data.rank desc, id", (OrderKey(data("rank"), True), ID_ORDER)),
        ("data.rank desc, id desc", (OrderKey(data("rank"), True), OrderKey(Field("id"), True))),
        ("id, data.rank", (ID_ORDER, OrderKey(data("rank")))),
        (
            "create_time desc,data.a.b",
            (OrderKey(Field("create_time"), True), OrderKey(data("a", "b")), ID_ORDER),
        ),
        (
            "version, update_time, expire_time desc",
            (
                OrderKey(Field("version")),
                OrderKey(Field("update_time")),
                OrderKey(Field("expire_time"), True),
                ID_ORDER,
            ),
        ),
    ],
)
def test_order_by_always_ends_with_an_id_tie_breaker(text, keys):
    assert parse_order_by(text) == keys


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("foo", 0),
        ("data", 0),
        ("data.a sideways", 7),
        ("data.a desc desc", 12),
        ("id, id", 6),
        ("data.a, data.a desc", 19),
        ("version,", 8),
        ("create_time = 1", 12),
        ("data.a; drop", 6),
    ],
)
def test_order_by_errors_name_field_and_position(text, position):
    with pytest.raises(InvalidArgument) as caught:
        parse_order_by(text)
    assert position_of(caught.value) == position
    assert [violation.field for violation in caught.value.violations] == ["order_by"]


# --- the parser admits only what the SQL compiler can take --------------------------


@pytest.mark.parametrize(
    "key",
    ["0", "_x", "k" * 128, "k" * 129, "1.5", "-1", "1e5"],
    ids=["digit", "underscore", "128 chars", "129 chars", "fraction", "negative", "exponent"],
)
@pytest.mark.parametrize("dialect", [SQLITE, POSTGRES], ids=["sqlite", "postgres"])
def test_every_data_key_the_parser_admits_compiles(key, dialect):
    """A key either fails to parse (InvalidArgument, a caller error) or compiles."""
    try:
        filter = parse_filter(f"data.a.{key} = 1")
        order = parse_order_by(f"data.{key} desc")
    except InvalidArgument:
        return
    compile_where(dialect, filter)
    compile_list(dialect, ListQuery("c", filter, order, 10, (1, "x")))
