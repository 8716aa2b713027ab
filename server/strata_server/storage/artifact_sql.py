"""Artifact rows for either engine: the columns, a row read back, a listing's
statement, and the walk over every artifact (the integrity check's)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from strata_server.core.artifact_rules import Artifact, Compression
from strata_server.core.models import Page
from strata_server.storage.sqlquery import Dialect

COLUMNS = (
    "namespace, id, owner, kind, name, content_type, sha256, size, stored_size, "
    "compression, labels, create_time"
)
"""An artifact's columns, in the order `artifact_from_row` reads them."""

PAGE = 500
"""Artifacts per query of `every_artifact`."""


def artifact_from_row(dialect: Dialect, row: Sequence[Any]) -> Artifact:
    """An Artifact from a row selected with COLUMNS."""
    return Artifact(
        namespace=row[0],
        id=row[1],
        owner=row[2],
        kind=row[3],
        name=row[4],
        content_type=row[5],
        sha256=row[6],
        size=row[7],
        stored_size=row[8],
        compression=Compression(row[9]),
        labels=dict(dialect.json_value(row[10])),
        create_time=dialect.time_value(row[11]),
    )


def list_artifacts(
    dialect: Dialect,
    namespace: str,
    owner: str | None,
    kind: str | None,
    limit: int,
    after: str | None,
) -> tuple[str, list[Any]]:
    """The statement of one page in id order (one row more, to know whether more
    follow) and its parameters. Built from fixed fragments only; every value is a
    parameter."""
    p = dialect.placeholder
    where = [f"namespace = {p}"]
    params: list[Any] = [namespace]
    for condition, value in ((f"owner = {p}", owner), (f"kind = {p}", kind), (f"id > {p}", after)):
        if value is not None:
            where.append(condition)
            params.append(value)
    sql = f"SELECT {COLUMNS} FROM artifacts WHERE {' AND '.join(where)} ORDER BY id LIMIT {p}"
    return sql, [*params, limit + 1]


def artifact_page(dialect: Dialect, rows: Sequence[Sequence[Any]], limit: int) -> Page[Artifact]:
    """The page of `list_artifacts`' rows; `last_key` (id,) when more may follow."""
    items = [artifact_from_row(dialect, row) for row in rows[:limit]]
    return Page(items, (items[-1].id,) if len(rows) > limit and items else None)


def all_page(dialect: Dialect) -> str:
    """The next PAGE artifacts of every namespace after (namespace, id)."""
    p = dialect.placeholder
    return (
        f"SELECT {COLUMNS} FROM artifacts WHERE (namespace, id) > ({p}, {p})"
        f" ORDER BY namespace, id LIMIT {p}"
    )


async def every_artifact(
    page: Callable[[tuple[str, str]], Awaitable[Sequence[Sequence[Any]]]], dialect: Dialect
) -> AsyncIterator[Artifact]:
    """Every artifact of every namespace, reading `page(after)` (rows of `all_page`)
    one query at a time."""
    after = ("", "")
    while True:
        rows = await page(after)
        for row in rows:
            yield artifact_from_row(dialect, row)
        if len(rows) < PAGE:
            return
        after = (rows[-1][0], rows[-1][1])
