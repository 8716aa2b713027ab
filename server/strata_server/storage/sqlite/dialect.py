"""SQLite's half of the shared filter/order compiler (see storage/sqlquery.py).

Data is JSON text read with json_extract/json_type; times are integer microseconds
since the Unix epoch, which sort and compare like the instants they stand for.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from strata_server.core.filters import TIME_FIELDS, Field, Scalar
from strata_server.storage.sqlquery import bad_token

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def to_micros(value: datetime) -> int:
    """A UTC-aware datetime as integer microseconds since the epoch."""
    return (value - EPOCH) // _MICRO


def from_micros(value: int) -> datetime:
    """Inverse of to_micros."""
    return EPOCH + timedelta(microseconds=value)


def _path(path: tuple[str, ...]) -> str:
    # Keys were checked by sqlquery.check_key: only [A-Za-z0-9_], safe inside quotes.
    return "'$" + "".join(f'."{key}"' for key in path) + "'"


class SqliteDialect:
    """Filters and orderings over json_extract of a TEXT data column."""

    placeholder = "?"
    true = "1"
    false = "0"

    def time_param(self, value: datetime) -> Any:
        return to_micros(value)

    def time_value(self, value: Any) -> datetime:
        return from_micros(value)

    def json_value(self, value: Any) -> Any:
        return json.loads(value)

    def array_value(self, value: Any) -> list[Any]:
        return [] if value is None else list(json.loads(value))

    def listed_in(self, column: str, placeholder: str) -> str:
        return f"EXISTS (SELECT 1 FROM json_each({column}) WHERE value = {placeholder})"

    def sort_expr(self, path: tuple[str, ...]) -> str:
        return f"json_extract(data, {_path(path)})"

    def data_nullable(self) -> bool:
        return True

    def key_param(self, field: Field, value: Any) -> Any:
        # Rows give integers for times and scalars (objects come back as JSON text).
        if field.name in TIME_FIELDS:
            if value is not None and type(value) is not int:
                raise bad_token()
        elif isinstance(value, dict | list):
            raise bad_token()
        return value

    def compare_data(self, path: tuple[str, ...], op: str, value: Scalar) -> tuple[str, list[Any]]:
        p = _path(path)
        kind = f"json_type(data, {p})"
        if value is None:
            if op == "=":
                return f"COALESCE({kind} = 'null', 1)", []
            return f"COALESCE({kind} <> 'null', 0)", []
        if isinstance(value, bool):
            wanted = value if op == "=" else not value
            return f"COALESCE({kind} = '{'true' if wanted else 'false'}', 0)", []
        sql_op = "<>" if op == "!=" else op
        types = "('text')" if isinstance(value, str) else "('integer', 'real')"
        if op == "=":
            # Never NULL (a missing key makes the second conjunct FALSE), and its
            # first conjunct matches a declared index on the path (core/index_paths.py),
            # whose `IS NOT NULL` condition it implies.
            return (
                f"(json_extract(data, {p}) = ? AND {kind} IS NOT NULL AND {kind} IN {types})",
                [value],
            )
        return (
            f"COALESCE({kind} IN {types} AND json_extract(data, {p}) {sql_op} ?, 0)",
            [value],
        )

    def present_data(self, path: tuple[str, ...]) -> str:
        return f"(json_type(data, {_path(path)}) IS NOT NULL)"


SQLITE = SqliteDialect()
