"""Declared secondary indexes on SQLite (AdminService.CreateIndex / ListIndexes /
DropIndex): a row in record_indexes per declaration, and one partial expression
index per data path, `(namespace, collection, json_extract(data, path), id) WHERE
json_extract(data, path) IS NOT NULL`. The equality filter SqliteDialect compiles
implies that condition, so SQLite's planner uses the index for it.

SQLite builds an index in one statement holding the one writer, so writes wait
for the build; progress is the record count before and after.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

from strata_server.core.errors import NotFound
from strata_server.core.index_paths import RecordIndex, field_name, index_name
from strata_server.core.models import Actor, Progress
from strata_server.storage.sqlite.connection import Connections, Transaction
from strata_server.storage.sqlite.dialect import from_micros, to_micros

PHASE = "building index"


def _extract(path: tuple[str, ...]) -> str:
    # Keys were checked by core.index_paths.parse_field: only [A-Za-z0-9_]. The text
    # must be the one SqliteDialect.compare_data writes, for the planner to match.
    return "json_extract(data, '$" + "".join(f'."{key}"' for key in path) + "')"


def create_sql(path: tuple[str, ...]) -> str:
    """The CREATE INDEX of the index serving `path` (a no-op when it exists)."""
    expr = _extract(path)
    return (
        f'CREATE INDEX IF NOT EXISTS "{index_name(path)}" '
        f"ON records (namespace, collection, {expr}, id) WHERE {expr} IS NOT NULL"
    )


LIST = """
SELECT d.collection, d.path, d.index_name, d.create_time,
       EXISTS (SELECT 1 FROM sqlite_master AS m WHERE m.type = 'index' AND m.name = d.index_name)
FROM record_indexes AS d
WHERE d.namespace = :namespace AND (:collection IS NULL OR d.collection = :collection)
ORDER BY d.collection, d.path
"""

AUDIT = """
INSERT INTO audit_log
    (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
VALUES (?, ?, ?, ?, 'index', ?, 0, '[]', NULL)
"""


async def _audit(
    tx: Transaction, namespace: str, action: str, entity_id: str, actor: Actor
) -> None:
    await tx.execute(
        AUDIT, (namespace, to_micros(datetime.now(UTC)), actor.name, action, entity_id)
    )


class SqliteIndexes:
    """`IndexAdmin` over SQLite: a build holds the writer, so it is done when
    CreateIndex returns."""

    def __init__(self, db: Connections) -> None:
        self._db = db

    async def create_index(
        self, namespace: str, collection: str, path: tuple[str, ...], *, actor: Actor
    ) -> AsyncIterator[Progress | RecordIndex]:
        """Declare and build; yields progress, then the index."""
        [(total,)] = await self._db.fetchall(
            "SELECT count(*) FROM records WHERE namespace = ? AND collection = ?",
            (namespace, collection),
        )
        yield Progress(PHASE, 0, total, "records")
        dotted = ".".join(path)
        now = to_micros(datetime.now(UTC))
        async with self._db.transaction() as tx:
            await tx.execute(create_sql(path))
            found = await tx.fetchall(
                "SELECT create_time FROM record_indexes "
                "WHERE namespace = ? AND collection = ? AND path = ?",
                (namespace, collection, dotted),
            )
            if not found:
                await tx.execute(
                    "INSERT INTO record_indexes"
                    " (namespace, collection, path, index_name, create_time)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (namespace, collection, dotted, index_name(path), now),
                )
                entity_id = f"{collection}/{field_name(path)}"
                await _audit(tx, namespace, "create_index", entity_id, actor)
            created = found[0][0] if found else now
        yield Progress(PHASE, total, total, "records")
        yield RecordIndex(collection, path, index_name(path), True, from_micros(created))

    async def list_indexes(self, namespace: str, collection: str | None) -> list[RecordIndex]:
        """The declarations of a namespace (or one collection), with whether the index
        serving each exists."""
        rows = await self._db.fetchall(LIST, {"namespace": namespace, "collection": collection})
        return [
            RecordIndex(row[0], tuple(row[1].split(".")), row[2], bool(row[4]), from_micros(row[3]))
            for row in rows
        ]

    async def drop_index(
        self, namespace: str, collection: str, path: tuple[str, ...], *, actor: Actor
    ) -> None:
        """Remove the declaration, and the index once no declaration needs it."""
        dotted = ".".join(path)
        async with self._db.transaction() as tx:
            found = await tx.fetchall(
                "DELETE FROM record_indexes WHERE namespace = ? AND collection = ? AND path = ? "
                "RETURNING index_name",
                (namespace, collection, dotted),
            )
            if not found:
                raise NotFound(
                    f"no index on {field_name(path)} is declared for collection {collection!r}"
                )
            [(others,)] = await tx.fetchall(
                "SELECT count(*) FROM record_indexes WHERE path = ?", (dotted,)
            )
            if not others:
                await tx.execute(f'DROP INDEX IF EXISTS "{index_name(path)}"')
            await _audit(tx, namespace, "drop_index", f"{collection}/{field_name(path)}", actor)
