"""PostgreSQL's half of the shared filter/order compiler (see storage/sqlquery.py).

Equality on a data path compiles to jsonb containment (`data @> '{"k": v}'`), which
the GIN jsonb_path_ops index on `data` serves for every key, so equality filters are
indexed without declaring anything. Paths with a declared btree index compile to a
plain equality that the btree (which also yields the order) can serve. Ranges
compare jsonb with jsonb behind a type guard (jsonb comparison never raises, unlike
a cast); string ranges use the "C" collation so they agree with SQLite's binary order.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from strata_server.core.filters import TIME_FIELDS, Field, Scalar
from strata_server.storage.sqlquery import bad_token

_JSON_TYPE = {str: "string", int: "number", float: "number", bool: "boolean"}


def _expr(path: tuple[str, ...]) -> str:
    # Keys were checked by sqlquery.check_key: only [A-Za-z0-9_], safe inside quotes.
    return "data" + "".join(f"->'{key}'" for key in path)


def _nest(path: tuple[str, ...], value: Scalar) -> str:
    nested: Any = value
    for key in reversed(path):
        nested = {key: nested}
    return json.dumps(nested)


class PostgresDialect:
    """Filters and orderings over a jsonb data column.

    `indexed` names the data paths with a declared btree expression index
    (storage/postgres/indexes.py); equality on those compiles to match it.
    """

    placeholder = "%s"
    true = "TRUE"
    false = "FALSE"

    def __init__(self, indexed: frozenset[tuple[str, ...]] = frozenset()) -> None:
        self.indexed = indexed

    def time_param(self, value: datetime) -> Any:
        return value

    def time_value(self, value: Any) -> datetime:
        return value  # type: ignore[no-any-return]  # timestamptz loads as datetime

    def json_value(self, value: Any) -> Any:
        return value  # jsonb loads decoded

    def array_value(self, value: Any) -> list[Any]:
        return [] if value is None else list(value)

    def listed_in(self, column: str, placeholder: str) -> str:
        return f"{placeholder} = ANY({column})"

    def sort_expr(self, path: tuple[str, ...]) -> str:
        # A missing key sorts as JSON null, the lowest jsonb value, which matches
        # SQLite's NULLS FIRST ascending / NULLS LAST descending.
        return f"COALESCE({_expr(path)}, 'null'::jsonb)"

    def data_nullable(self) -> bool:
        return False

    def key_param(self, field: Field, value: Any) -> Any:
        if field.name == "data":
            return Jsonb(value)  # any JSON value is comparable with jsonb
        if field.name in TIME_FIELDS and value is not None and not isinstance(value, datetime):
            raise bad_token()
        return value

    def compare_data(self, path: tuple[str, ...], op: str, value: Scalar) -> tuple[str, list[Any]]:
        expr = _expr(path)
        if value is None:
            if op == "=":
                return f"COALESCE({expr} = 'null'::jsonb, TRUE)", []
            return f"COALESCE({expr} <> 'null'::jsonb, FALSE)", []
        if op == "=":
            if path in self.indexed:
                # Never NULL (NULL AND FALSE is FALSE), and its first conjunct
                # matches a btree index on the path expression.
                return f"({expr} = %s::jsonb AND {expr} IS NOT NULL)", [json.dumps(value)]
            # Containment is served by the GIN index on data for every key.
            return "(data @> %s::jsonb)", [_nest(path, value)]
        kind = _JSON_TYPE[type(value)]
        if op == "!=":
            return (
                f"COALESCE(jsonb_typeof({expr}) = '{kind}' AND {expr} <> %s::jsonb, FALSE)",
                [json.dumps(value)],
            )
        if isinstance(value, str):
            return (
                f"COALESCE(jsonb_typeof({expr}) = 'string' "
                f"AND ({expr} #>> '{{}}') COLLATE \"C\" {op} %s, FALSE)",
                [value],
            )
        return (
            f"COALESCE(jsonb_typeof({expr}) = 'number' AND {expr} {op} %s::jsonb, FALSE)",
            [json.dumps(value)],
        )

    def present_data(self, path: tuple[str, ...]) -> str:
        return f"({_expr(path)} IS NOT NULL)"


POSTGRES = PostgresDialect()
"""The dialect for statements that filter no records (no declared indexes to match)."""
