"""ListAuditEntries for either engine: one statement, newest first by seq.

Only the filters a query sets go into the statement, so each engine plans it for
the filters it has; values always travel as parameters. A purge batch's row
(migration 0024) lists the entity ids it removed and is filed under their
collection's prefix: filtering by an entity id also finds the batch rows that list
it, through the entity index on that prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from strata_server.core.models import AuditQuery, LoggedAudit, Page
from strata_server.storage.sqlquery import Dialect

COLUMNS = (
    "seq, time, actor, action, entity, entity_id, version, changed_fields, request_id,"
    " entity_ids, entity_versions"
)
"""An audit entry's columns, in the order `audit_from_row` reads them."""


def batch_prefix(entity_id: str) -> str | None:
    """The `entity_id` of the batch rows that may list `entity_id`: its collection's
    prefix (a collection holds no '/'); None when it names no record."""
    collection, slash, rest = entity_id.partition("/")
    return f"{collection}/" if slash and rest else None


def list_audit(dialect: Dialect, namespace: str, query: AuditQuery) -> tuple[str, list[Any]]:
    """The statement of one page of `query` (one row more, to know whether more
    follow) and its parameters."""
    p = dialect.placeholder
    start = dialect.time_param(query.start_time) if query.start_time else None
    end = dialect.time_param(query.end_time) if query.end_time else None
    conditions = [f"namespace = {p}"]
    params: list[Any] = [namespace]
    if query.entity_id is not None:
        prefix = batch_prefix(query.entity_id)
        if prefix is None:
            conditions.append(f"entity_id = {p}")
            params.append(query.entity_id)
        else:
            listed = dialect.listed_in("entity_ids", p)
            conditions.append(f"(entity_id = {p} OR (entity_id = {p} AND {listed}))")
            params += [query.entity_id, prefix, query.entity_id]
    for condition, value in (
        (f"entity = {p}", query.entity),
        (f"actor = {p}", query.actor),
        (f"action = {p}", query.action),
        (f"time >= {p}", start),
        (f"time < {p}", end),
        (f"seq < {p}", query.before_seq),
    ):
        if value is not None:
            conditions.append(condition)
            params.append(value)
    where = " AND ".join(conditions)
    return f"SELECT {COLUMNS} FROM audit_log WHERE {where} ORDER BY seq DESC LIMIT {p}", [
        *params,
        query.limit + 1,
    ]


def audit_from_row(dialect: Dialect, row: Sequence[Any]) -> LoggedAudit:
    """An audit entry from its COLUMNS (exports read them so too)."""
    return LoggedAudit(
        seq=row[0],
        time=dialect.time_value(row[1]),
        actor=row[2],
        action=row[3],
        entity=row[4],
        entity_id=row[5],
        version=row[6],
        changed_fields=tuple(dialect.json_value(row[7])),
        request_id=row[8],
        entity_ids=tuple(dialect.array_value(row[9])),
        entity_versions=tuple(dialect.array_value(row[10])),
    )


def audit_page(dialect: Dialect, rows: Sequence[Sequence[Any]], limit: int) -> Page[LoggedAudit]:
    """The page of `list_audit`'s rows; `last_key` (seq,) when more may follow."""
    entries = [audit_from_row(dialect, row) for row in rows[:limit]]
    more = len(rows) > limit and entries
    return Page(entries, (entries[-1].seq,) if more else None)
