"""CheckIntegrity's parent check, for either engine: the statements that find the
transcripts and artifacts whose parent record does not exist (never did, or was
deleted by expiry, retention or a delete that raced the child's create), clear
one such parent (core/parent_refs.py says why clearing, not deleting), and audit
that; and the walk over them (`check_parents`). Plain SQL that SQLite and
PostgreSQL read alike, but for how a named parameter is written."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from strata_server.core.integrity_findings import Finding
from strata_server.core.models import Progress
from strata_server.core.parent_refs import DANGLING, ChildRef, ParentRef
from strata_server.core.values import frozen

CHECK = "parents"
"""The check's name in findings and counts."""

ACTOR = "integrity"
"""The audit actor of a repair."""

_TABLES = {"transcript": "transcripts", "artifact": "artifacts"}
_VERSIONS = {"transcript": "next_seq - 1", "artifact": "1"}
"""A repair's audit version: as the child's other audit entries count it."""


@frozen
class ParentChecks:
    """One engine's statements; each takes `namespace` (None: every namespace) and
    `now` (in the engine's time type), a repair also `id`, `parent_collection` and
    `parent_id`, the audit also `entity` and `version`."""

    count: str
    """How many children (rows that name a parent) the check looks at."""
    dangling: str
    """kind, namespace, id, parent collection and id of every child whose parent
    record does not exist (or has expired)."""
    clear: dict[str, str]
    """By kind: clear one child's parent if it still names a missing record;
    returns the audit version when it did."""
    audit: str


def parent_checks(param: Callable[[str], str], optional: str) -> ParentChecks:
    """The statements with `param(name)` for a named placeholder and `optional`
    appended to the namespace where it may be NULL (PostgreSQL's cast)."""
    namespace, now = param("namespace"), param("now")
    scope = f"({namespace}{optional} IS NULL OR c.namespace = {namespace})"
    missing = (
        "NOT EXISTS (SELECT 1 FROM records AS r WHERE r.namespace = c.namespace"
        " AND r.collection = c.parent_collection AND r.id = c.parent_id"
        f" AND (r.expire_time IS NULL OR r.expire_time > {now}))"
    )
    count = " + ".join(
        f"(SELECT count(*) FROM {table} AS c WHERE c.parent_id IS NOT NULL AND {scope})"
        for table in _TABLES.values()
    )
    dangling = "\nUNION ALL\n".join(
        f"SELECT '{kind}', c.namespace, c.id, c.parent_collection, c.parent_id"
        f" FROM {table} AS c WHERE c.parent_id IS NOT NULL AND {scope} AND {missing}"
        for kind, table in _TABLES.items()
    )
    clear = {
        kind: (
            f"UPDATE {table} AS c SET parent_collection = NULL, parent_id = NULL"
            f" WHERE c.namespace = {namespace} AND c.id = {param('id')}"
            f" AND c.parent_collection = {param('parent_collection')}"
            f" AND c.parent_id = {param('parent_id')} AND {missing}"
            f" RETURNING {_VERSIONS[kind]}"
        )
        for kind, table in _TABLES.items()
    }
    audit = (
        "INSERT INTO audit_log"
        " (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)"
        f" VALUES ({namespace}, {now}, '{ACTOR}', 'update', {param('entity')}, {param('id')},"
        f" {param('version')}, '[\"parent\"]', NULL)"
    )
    return ParentChecks(
        count=f"SELECT {count}",
        dangling=f"{dangling}\nORDER BY 2, 1, 3",
        clear=clear,
        audit=audit,
    )


def clear_params(namespace: str, now: Any, child: ChildRef) -> dict[str, Any]:
    """The parameters of `ParentChecks.clear` and, with `version` added, of its
    audit: both engines bind the same names, so they are built here once."""
    return {
        "namespace": namespace,
        "now": now,
        "id": child.id,
        "parent_collection": child.parent.collection,
        "parent_id": child.parent.id,
        "entity": child.kind,
    }


async def check_parents(
    rows: Callable[[str], Awaitable[Sequence[Sequence[Any]]]],
    checks: ParentChecks,
    clear: Callable[[str, ChildRef], Awaitable[bool]] | None,
) -> AsyncIterator[Progress | Finding | tuple[str, int]]:
    """The parent check: `rows(statement)` runs a statement of `checks` for the
    namespace asked for; `clear(namespace, child)`, when given, clears one child's
    parent (False when it no longer named a missing record: not repaired)."""
    [(total,)] = await rows(checks.count)
    yield Progress(CHECK, 0, total, "children")
    for kind, ns, id, collection, parent_id in await rows(checks.dangling):
        child = ChildRef(kind, id, ParentRef(collection, parent_id))
        repaired = clear is not None and await clear(ns, child)
        problem = DANGLING.format(parent=child.parent)
        yield Finding(CHECK, ns, kind, id, problem, True, repaired)
    yield Progress(CHECK, total, total, "children")
    yield (CHECK, total)
