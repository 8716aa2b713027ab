"""Compiles parsed filters and orderings to parameterized SQL for either dialect.

One compiler, two `Dialect`s (storage/sqlite/dialect.py, storage/postgres/dialect.py),
so both backends give the same answers. Semantics, identical in both:

- A comparison on a data path matches only values of the literal's JSON type:
  `data.n > 3` never matches a string or a missing key.
- `= null` matches JSON null or a missing key; `!= null` matches any present
  non-null value; `:*` matches any present key, even a null one.
- Every leaf is wrapped so it is never SQL NULL, hence `NOT x` is exactly the
  complement of `x` (missing keys included).
- Orderings sort SQL NULL lowest: first ascending, last descending (both dialects
  are told so explicitly). Keyset pagination uses the same rule, so page
  boundaries hold under concurrent inserts.

Values always travel as parameters. Data keys are written into the SQL text (so
expression indexes can match), which is safe because the parser admits only
`[A-Za-z0-9_]` keys; `_key` re-checks that here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from strata_server.core.errors import InvalidArgument
from strata_server.core.filters import (
    DATA_KEY,
    NULLABLE_FIELDS,
    TIME_FIELDS,
    And,
    Compare,
    Field,
    Filter,
    Not,
    Or,
    OrderKey,
    Present,
    Scalar,
)
from strata_server.core.models import ListQuery
from strata_server.core.values import frozen


def bad_token() -> InvalidArgument:
    """The error for a page token whose values could not have come from this server."""
    return InvalidArgument.field("page_token", "is not a token this server issued")


def _key_value(dialect: Dialect, field: Field, value: Any) -> Any:
    if field.name == "id" and not isinstance(value, str):
        raise bad_token()
    if field.name == "version" and type(value) is not int:
        raise bad_token()
    if field.name == "owner" and value is not None and not isinstance(value, str):
        raise bad_token()
    return dialect.key_param(field, value)


def check_key(key: str) -> str:
    """Refuse a data key that could break out of the SQL string it is written into."""
    if not DATA_KEY.fullmatch(key):
        raise ValueError(f"unsafe data key {key!r}")
    return key


class Dialect(Protocol):
    """What differs between SQLite and PostgreSQL for filters and orderings."""

    placeholder: str
    true: str
    false: str

    def time_param(self, value: datetime) -> Any:
        """The parameter for a time column."""
        ...

    def time_value(self, value: Any) -> datetime:
        """A time column's value as read back from a row."""
        ...

    def json_value(self, value: Any) -> Any:
        """A JSON column's value as read back from a row, decoded."""
        ...

    def array_value(self, value: Any) -> list[Any]:
        """A list column's value as read back from a row (NULL: empty): a PostgreSQL
        array, a JSON array on SQLite."""
        ...

    def listed_in(self, column: str, placeholder: str) -> str:
        """SQL that is true when the list `column` holds the value of `placeholder`."""
        ...

    def sort_expr(self, path: tuple[str, ...]) -> str:
        """Expression to order by a data path; must take SQL NULL only when missing
        if `data_nullable`, else never."""
        ...

    def data_nullable(self) -> bool:
        """Whether sort_expr yields SQL NULL (for a missing key)."""
        ...

    def key_param(self, field: Field, value: Any) -> Any:
        """Turn a sort-key value read back from a row into a parameter comparable
        with sort_expr/column for that field; InvalidArgument (`bad_token()`) when the
        value cannot have come from a row (page tokens arrive from callers)."""
        ...

    def compare_data(self, path: tuple[str, ...], op: str, value: Scalar) -> tuple[str, list[Any]]:
        """Never-NULL SQL for `data.<path> <op> <value>`, with its parameters."""
        ...

    def present_data(self, path: tuple[str, ...]) -> str:
        """Never-NULL SQL that is true when the data path exists."""
        ...


@frozen
class ListSql:
    """The pieces of a ListRecords query; see docs in STORAGE-CONTRACT.md."""

    where: str
    params: list[Any]
    order_by: str
    key_columns: str
    key_count: int


class _Compiler:
    def __init__(self, dialect: Dialect) -> None:
        self.d = dialect
        self.params: list[Any] = []

    def param(self, value: Any) -> str:
        self.params.append(value)
        return self.d.placeholder

    def column_param(self, field: Field, value: Any) -> Any:
        return self.d.time_param(value) if field.name in TIME_FIELDS else value

    def node(self, node: Filter) -> str:
        if isinstance(node, And):
            return "(" + " AND ".join(self.node(item) for item in node.items) + ")"
        if isinstance(node, Or):
            return "(" + " OR ".join(self.node(item) for item in node.items) + ")"
        if isinstance(node, Not):
            return f"(NOT {self.node(node.item)})"
        if isinstance(node, Present):
            if node.field.name == "data":
                return self.d.present_data(tuple(map(check_key, node.field.path)))
            # Top-level fields always exist, except an unset expire_time or owner.
            name = node.field.name
            return f"({name} IS NOT NULL)" if name in NULLABLE_FIELDS else self.d.true
        return self.compare(node)

    def compare(self, node: Compare) -> str:
        field = node.field
        if field.name == "data":
            sql, params = self.d.compare_data(
                tuple(map(check_key, field.path)), node.op, node.value
            )
            self.params.extend(params)
            return sql
        column = field.name  # one of core.filters.TOP_FIELDS, never caller text
        if node.value is None:
            return f"({column} IS {'NOT ' if node.op == '!=' else ''}NULL)"
        op = "<>" if node.op == "!=" else node.op
        placeholder = self.param(self.column_param(field, node.value))
        if column == "owner" and op == "=":
            # Never NULL (NULL AND FALSE is FALSE), and a plain `owner = ?` the
            # partial index on owned records (migration 0014) can serve.
            return f"({column} = {placeholder} AND {column} IS NOT NULL)"
        return f"COALESCE({column} {op} {placeholder}, {self.d.false})"

    def sort_expr(self, field: Field) -> str:
        if field.name == "data":
            return self.d.sort_expr(tuple(map(check_key, field.path)))
        return field.name

    def nullable(self, field: Field) -> bool:
        return self.d.data_nullable() if field.name == "data" else field.name in NULLABLE_FIELDS

    def keyset(self, order: Sequence[OrderKey], after: Sequence[Any]) -> str:
        """Rows strictly after `after` in `order`: OR over i of (keys before i equal
        AND key i after), with SQL NULL sorting lowest."""
        branches: list[str] = []
        for i, key in enumerate(order):
            terms = [self.equal(order[j], after[j]) for j in range(i)]
            terms.append(self.beyond(key, after[i]))
            branches.append("(" + " AND ".join(terms) + ")")
        return "(" + " OR ".join(branches) + ")"

    def is_null(self, key: OrderKey, value: Any) -> bool:
        return value is None and self.nullable(key.field)

    def equal(self, key: OrderKey, value: Any) -> str:
        expr = self.sort_expr(key.field)
        if self.is_null(key, value):
            return f"{expr} IS NULL"
        return f"{expr} = {self.param(_key_value(self.d, key.field, value))}"

    def beyond(self, key: OrderKey, value: Any) -> str:
        expr = self.sort_expr(key.field)
        null = self.is_null(key, value)
        if not key.descending:
            if null:
                return f"{expr} IS NOT NULL"
            return f"{expr} > {self.param(_key_value(self.d, key.field, value))}"
        if null:
            return self.d.false
        beyond = f"{expr} < {self.param(_key_value(self.d, key.field, value))}"
        return f"({beyond} OR {expr} IS NULL)" if self.nullable(key.field) else beyond


def compile_where(dialect: Dialect, filter: Filter | None) -> tuple[str, list[Any]]:
    """Boolean SQL (never NULL) for a parsed filter, with its parameters."""
    if filter is None:
        return dialect.true, []
    compiler = _Compiler(dialect)
    return compiler.node(filter), compiler.params


def compile_list(dialect: Dialect, query: ListQuery) -> ListSql:
    """Filter, keyset predicate, ORDER BY and sort-key columns for one page of a list."""
    compiler = _Compiler(dialect)
    parts = [compiler.node(query.filter)] if query.filter is not None else []
    if query.after is not None:
        parts.append(compiler.keyset(query.order, query.after))
    order_terms = []
    for key in query.order:
        term = f"{compiler.sort_expr(key.field)} {'DESC' if key.descending else 'ASC'}"
        # Only nullable keys say where NULLs go: a NULLS clause on a NOT NULL column
        # stops PostgreSQL from reading the order off a btree index.
        if compiler.nullable(key.field):
            term += " NULLS LAST" if key.descending else " NULLS FIRST"
        order_terms.append(term)
    return ListSql(
        where=" AND ".join(parts) if parts else dialect.true,
        params=compiler.params,
        order_by=", ".join(order_terms),
        key_columns=", ".join(compiler.sort_expr(key.field) for key in query.order),
        key_count=len(query.order),
    )
