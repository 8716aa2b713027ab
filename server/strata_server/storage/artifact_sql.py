"""Artifact rows for either engine: the columns, a row written and read back, its
audit entry, a listing's statement, and the walk over every artifact (the
integrity check's). The engines differ in how they lock and run these, not in
what an artifact's row and audit entry hold."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from strata_server.core.artifact_rules import Artifact, ArtifactListQuery, Compression
from strata_server.core.errors import FailedPrecondition, NotFound
from strata_server.core.jsontypes import dumps
from strata_server.core.models import Actor, Page
from strata_server.core.parent_refs import ParentRef
from strata_server.storage.sqlquery import Dialect

ENTITY = "artifact"
"""The audit log's entity of an artifact."""

CREATED_FIELDS = dumps(["owner", "kind", "name", "content_type", "sha256", "size", "labels"])
"""changed_fields of a create's audit entry (JSON text)."""
TIER_FIELDS = dumps(["tier"])
"""changed_fields of an archive's or a restore's audit entry."""

COLUMNS = (
    "namespace, id, owner, kind, name, content_type, sha256, size, stored_size, "
    "compression, labels, create_time, parent_collection, parent_id, archive_time"
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
        parent=ParentRef(row[12], row[13]) if row[13] is not None else None,
        archive_time=dialect.time_value(row[14]) if row[14] is not None else None,
    )


def artifact_values(dialect: Dialect, artifact: Artifact) -> tuple[Any, ...]:
    """An artifact's values in COLUMNS order, as `dialect` stores them; labels as
    JSON text (PostgreSQL's INSERT casts it to jsonb)."""
    return (
        artifact.namespace,
        artifact.id,
        artifact.owner,
        artifact.kind,
        artifact.name,
        artifact.content_type,
        artifact.sha256,
        artifact.size,
        artifact.stored_size,
        artifact.compression.value,
        dumps(dict(artifact.labels)),
        dialect.time_param(artifact.create_time),
        artifact.parent.collection if artifact.parent is not None else None,
        artifact.parent.id if artifact.parent is not None else None,
        dialect.time_param(artifact.archive_time) if artifact.archive_time is not None else None,
    )


def audit_values(
    dialect: Dialect,
    artifact: Artifact,
    action: str,
    at: datetime,
    actor: Actor,
    request_id: str | None = None,
) -> tuple[Any, ...]:
    """The audit entry of a create, delete, archive or restore of `artifact` at `at`,
    in the audit log's column order (version 1: an artifact's content is never
    rewritten; only its tier changes)."""
    changed = {"create": CREATED_FIELDS, "archive": TIER_FIELDS, "restore": TIER_FIELDS}.get(
        action, "[]"
    )
    at_param = dialect.time_param(at)
    return (
        artifact.namespace,
        at_param,
        actor.name,
        action,
        ENTITY,
        artifact.id,
        1,
        changed,
        request_id,
    )


def found(dialect: Dialect, row: Sequence[Any] | None, id: str) -> Artifact:
    """The artifact a lookup by id read, or NotFound when it read no row."""
    if row is None:
        raise NotFound(f"artifact {id!r} does not exist")
    return artifact_from_row(dialect, row)


def blob_not_found(sha256: str) -> FailedPrecondition:
    """An upload without bytes named content no artifact of its namespace holds."""
    return FailedPrecondition(
        f"no content with sha256 {sha256} is stored in this namespace; send the content",
        reason="BLOB_NOT_FOUND",
    )


def list_artifacts(
    dialect: Dialect, namespace: str, query: ArtifactListQuery
) -> tuple[str, list[Any]]:
    """The statement of one page in id order (one row more, to know whether more
    follow) and its parameters. Built from fixed fragments only; every value is a
    parameter."""
    p = dialect.placeholder
    parent = query.parent
    where = [f"namespace = {p}"]
    params: list[Any] = [namespace]
    conditions = (
        (f"owner = {p}", query.owner),
        (f"kind = {p}", query.kind),
        (f"parent_collection = {p}", parent.collection if parent is not None else None),
        (f"parent_id = {p}", parent.id if parent is not None else None),
        (f"id > {p}", query.after),
    )
    for condition, value in conditions:
        if value is not None:
            where.append(condition)
            params.append(value)
    sql = f"SELECT {COLUMNS} FROM artifacts WHERE {' AND '.join(where)} ORDER BY id LIMIT {p}"
    return sql, [*params, query.limit + 1]


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


def archivable(
    dialect: Dialect, namespace: str, kind: str | None, before: datetime, *, count: bool
) -> tuple[str, list[Any]]:
    """The hot artifacts of `namespace` (of `kind`, when given) created before
    `before`, oldest first (with `count`: how many; else one more parameter, the
    limit, follows)."""
    p = dialect.placeholder
    where = f"namespace = {p} AND archive_time IS NULL AND create_time < {p}"
    params: list[Any] = [namespace, dialect.time_param(before)]
    if kind is not None:
        where += f" AND kind = {p}"
        params.append(kind)
    if count:
        return f"SELECT count(*) FROM artifacts WHERE {where}", params
    return f"SELECT {COLUMNS} FROM artifacts WHERE {where} ORDER BY id LIMIT {p}", params


def hot_elsewhere(dialect: Dialect) -> str:
    """Whether a hot artifact other than (namespace, id) names the blob (parameters:
    sha256, namespace, id): then the blob stays in the standard class."""
    p = dialect.placeholder
    return (
        f"SELECT EXISTS (SELECT 1 FROM artifacts WHERE sha256 = {p} AND archive_time IS NULL"
        f" AND NOT (namespace = {p} AND id = {p}))"
    )


def set_tier(dialect: Dialect) -> str:
    """Set an artifact's archive_time (parameters: it, namespace, id), returning the row."""
    p = dialect.placeholder
    return (
        f"UPDATE artifacts SET archive_time = {p} WHERE namespace = {p} AND id = {p}"
        f" RETURNING {COLUMNS}"
    )
