"""Which data paths have a declared btree expression index, read from the catalog.

Equality on such a path compiles to a btree-matchable predicate instead of GIN
containment (see dialect.py): a btree on `(namespace, collection, (data->'k'), id)`
also yields the order, so a page by a selective filter reads only its rows, where
GIN needs a sort too and took about eight times as long (bench/RESULTS.md,
"measured in passing"). Emitting both
predicates does not work: the planner multiplies their selectivities and picks
the bitmap plan. The catalog is re-read at most every REFRESH_SECONDS, so an index
created by an operator (or later by AdminService.CreateIndex) is used soon after.

Declared indexes (AdminService.CreateIndex / ListIndexes / DropIndex) are rows of
record_indexes; the database index serving a path (core/index_paths.py names it) is
partial, `WHERE (data->'k') IS NOT NULL`, which the equality predicate implies.
It is built with CREATE INDEX CONCURRENTLY on a connection of its own, so writes
go on meanwhile. Builds and drops of one index take a session advisory lock by
polling pg_try_advisory_lock: a session blocked in pg_advisory_lock would hold a
snapshot that CREATE INDEX CONCURRENTLY waits out, a deadlock. Holding the lock,
an index that exists but is not valid is the leftover of a failed build, and is
dropped and built again.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime

import psycopg
import structlog
from psycopg import sql

from strata_server.core.errors import NotFound
from strata_server.core.index_paths import RecordIndex, field_name, index_name
from strata_server.core.models import Actor, Progress
from strata_server.storage.postgres.dialect import PostgresDialect
from strata_server.storage.postgres.pool import Conn, Runner, borrowing, translate

log = structlog.get_logger("strata.postgres")

REFRESH_SECONDS = 5.0

PROGRESS_SECONDS = 0.5
"""How often CreateIndex reports a running build's progress."""

INDEX_EXPRESSIONS = """
SELECT pg_get_expr(i.indexprs, i.indrelid), pg_get_expr(i.indpred, i.indrelid)
FROM pg_index AS i
WHERE i.indrelid = 'records'::regclass AND i.indexprs IS NOT NULL
  AND i.indisvalid AND i.indisready
"""

_CHAIN = re.compile(r"data(?:\)? -> '[A-Za-z0-9_]+'::text)+")
_KEY = re.compile(r"'([A-Za-z0-9_]+)'::text")


_NOT_NULL = re.compile(r"[()]*(data(?:\)? -> '[A-Za-z0-9_]+'::text)+)[()]* IS NOT NULL[()]*")


def indexed_paths(indexes: list[tuple[str, str | None]]) -> frozenset[tuple[str, ...]]:
    """The data paths (`data->'a'->'b'` chains) that index expressions name, of the
    (expression, predicate) of indexes with no predicate or only `<path> IS NOT
    NULL` of a path they index (which an equality on that path implies)."""
    paths: set[tuple[str, ...]] = set()
    for expression, predicate in indexes:
        named = {tuple(_KEY.findall(chain.group())) for chain in _CHAIN.finditer(expression)}
        if predicate is not None:
            match = _NOT_NULL.fullmatch(predicate)
            if match is None or tuple(_KEY.findall(match.group(1))) not in named:
                continue
        paths |= named
    return frozenset(paths)


class IndexedPaths:
    """A cached PostgresDialect that knows the currently indexed data paths."""

    def __init__(self) -> None:
        self._dialect = PostgresDialect()
        self._read_at = float("-inf")

    async def dialect(self, conn: Conn) -> PostgresDialect:
        """The dialect for the indexes as of at most REFRESH_SECONDS ago."""
        if time.monotonic() - self._read_at > REFRESH_SECONDS:
            cursor = await conn.execute(INDEX_EXPRESSIONS, prepare=True)
            paths = indexed_paths([(row[0], row[1]) for row in await cursor.fetchall()])
            if paths != self._dialect.indexed:
                self._dialect = PostgresDialect(paths)
            self._read_at = time.monotonic()
        return self._dialect

    def invalidate(self) -> None:
        """Read the catalog again on next use (after this process built or dropped
        an index)."""
        self._read_at = float("-inf")


# --- Declared indexes ------------------------------------------------------------------

LOCK_POLL_SECONDS = 0.2
PHASE = "building index"

DECLARE = """
WITH declared AS (
    INSERT INTO record_indexes (namespace, collection, path, index_name, create_time)
    VALUES (%(namespace)s, %(collection)s, %(path)s, %(name)s, now())
    ON CONFLICT (namespace, collection, path) DO NOTHING
    RETURNING create_time
), audited AS (
    INSERT INTO audit_log
        (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
    SELECT %(namespace)s, create_time, %(actor)s, 'create_index', 'index', %(entity_id)s, 0,
           '[]'::jsonb, NULL
    FROM declared
)
SELECT create_time FROM declared
UNION ALL
SELECT create_time FROM record_indexes
WHERE namespace = %(namespace)s AND collection = %(collection)s AND path = %(path)s
"""
"""Declare (with its audit entry) unless declared; the declaration's create_time
either way (the UNION's second branch sees the row only when it existed before)."""

UNDECLARE = """
WITH gone AS (
    DELETE FROM record_indexes
    WHERE namespace = %(namespace)s AND collection = %(collection)s AND path = %(path)s
    RETURNING index_name
), audited AS (
    INSERT INTO audit_log
        (namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id)
    SELECT %(namespace)s, now(), %(actor)s, 'drop_index', 'index', %(entity_id)s, 0,
           '[]'::jsonb, NULL
    FROM gone
)
SELECT count(*) FROM gone
"""

LIST = """
SELECT d.collection, d.path, d.index_name, d.create_time,
       coalesce(i.indisvalid AND i.indisready, FALSE)
FROM record_indexes AS d
LEFT JOIN pg_index AS i ON i.indexrelid = to_regclass(quote_ident(d.index_name))
WHERE d.namespace = %s AND (%s::text IS NULL OR d.collection = %s)
ORDER BY d.collection, d.path
"""

STATE = (
    "SELECT indisvalid AND indisready FROM pg_index WHERE indexrelid = to_regclass(quote_ident(%s))"
)

PROGRESS = """
SELECT phase, blocks_done, blocks_total, tuples_done, tuples_total
FROM pg_stat_progress_create_index
WHERE index_relid = to_regclass(quote_ident(%s))
"""

DECLARED_ANYWHERE = "SELECT EXISTS (SELECT 1 FROM record_indexes WHERE path = %s)"


def _expression(path: tuple[str, ...]) -> sql.Composable:
    # Keys were checked by core.index_paths.parse_field: only [A-Za-z0-9_]. The text is
    # the one PostgresDialect writes for an indexed path.
    return sql.SQL("data" + "".join(f"->'{key}'" for key in path))


def _entity_id(collection: str, path: tuple[str, ...]) -> str:
    return f"{collection}/{field_name(path)}"


async def declare(
    conn: Conn, namespace: str, collection: str, path: tuple[str, ...], *, actor: Actor
) -> datetime:
    """Run inside a transaction; the declaration's create_time.

    A caller racing another's declaration of the same index waits on the other's
    uncommitted row; once that commits, ON CONFLICT inserts nothing and the UNION's
    second branch still reads the statement's snapshot, taken before that commit,
    so the statement returns no row. Run again, it reads a snapshot that holds the
    winner's row (READ COMMITTED takes one per statement)."""
    params = {
        "namespace": namespace,
        "collection": collection,
        "path": ".".join(path),
        "name": index_name(path),
        "actor": actor.name,
        "entity_id": _entity_id(collection, path),
    }
    for _ in range(2):
        cursor = await conn.execute(DECLARE, params)
        row = await cursor.fetchone()
        if row is not None:
            created: datetime = row[0]
            return created
    raise AssertionError("a declared index vanished while it was declared again")


async def undeclare(
    conn: Conn, namespace: str, collection: str, path: tuple[str, ...], *, actor: Actor
) -> None:
    """Remove a declaration with its audit entry; NotFound when there is none."""
    cursor = await conn.execute(
        UNDECLARE,
        {
            "namespace": namespace,
            "collection": collection,
            "path": ".".join(path),
            "actor": actor.name,
            "entity_id": _entity_id(collection, path),
        },
    )
    row = await cursor.fetchone()
    if row is None or row[0] == 0:
        raise NotFound(f"no index on {field_name(path)} is declared for collection {collection!r}")


async def ready(conn: Conn, path: tuple[str, ...]) -> bool:
    """Whether the index serving `path` exists and is valid."""
    cursor = await conn.execute(STATE, (index_name(path),))
    row = await cursor.fetchone()
    return bool(row and row[0])


async def progress(conn: Conn, path: tuple[str, ...]) -> Progress | None:
    """How far a build of the index serving `path` (by any replica) has come."""
    cursor = await conn.execute(PROGRESS, (index_name(path),))
    row = await cursor.fetchone()
    if row is None:
        return None
    phase, blocks_done, blocks_total, tuples_done, tuples_total = row
    if tuples_total:
        return Progress(f"{PHASE}: {phase}", tuples_done, tuples_total, "records")
    return Progress(f"{PHASE}: {phase}", blocks_done or 0, blocks_total or 0, "blocks")


@contextlib.asynccontextmanager
async def _locked(conn: Conn, path: tuple[str, ...]) -> AsyncIterator[None]:
    """The advisory lock of the index serving `path`, on `conn`'s session."""
    key = "strata.index." + index_name(path)
    while True:
        cursor = await conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,))
        row = await cursor.fetchone()
        if row is not None and row[0]:
            break
        await asyncio.sleep(LOCK_POLL_SECONDS)
    try:
        yield
    finally:
        with contextlib.suppress(psycopg.Error):  # a broken session released it anyway
            await conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))


async def build(conn: Conn, path: tuple[str, ...]) -> None:
    """Build the index serving `path` unless it is built; on an autocommit
    connection of its own for the whole build."""
    name = sql.Identifier(index_name(path))
    async with _locked(conn, path):
        cursor = await conn.execute(STATE, (index_name(path),))
        row = await cursor.fetchone()
        if row is not None and row[0]:
            return
        if row is not None:  # a failed build's invalid index
            await conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(name))
        expression = _expression(path)
        await conn.execute(
            sql.SQL(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON records "
                "(namespace, collection, ({}), id) WHERE ({}) IS NOT NULL"
            ).format(name, expression, expression)
        )


async def drop_unused(conn: Conn, path: tuple[str, ...]) -> None:
    """Drop the index serving `path` if no declaration needs it any more."""
    async with _locked(conn, path):
        cursor = await conn.execute(DECLARED_ANYWHERE, (".".join(path),))
        row = await cursor.fetchone()
        if row is not None and not row[0]:
            await conn.execute(
                sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
                    sql.Identifier(index_name(path))
                )
            )


class PostgresIndexes:
    """`IndexAdmin` over PostgreSQL. A build runs in a task of its own, which
    finishes even if the caller goes away; `close` abandons the builds still
    running (the next CreateIndex of the field replaces the invalid index one
    leaves)."""

    def __init__(self, runner: Runner, indexed: IndexedPaths) -> None:
        self.runner = runner
        self._indexed = indexed
        self._builds: dict[str, asyncio.Task[None]] = {}

    async def create_index(
        self, namespace: str, collection: str, path: tuple[str, ...], *, actor: Actor
    ) -> AsyncIterator[Progress | RecordIndex]:
        """Declare, then build CONCURRENTLY, yielding the build's progress."""
        run = self.runner.run
        created = await run(
            lambda conn: declare(conn, namespace, collection, path, actor=actor), transaction=True
        )
        name = index_name(path)
        yield Progress(f"{PHASE}: starting", 0, 0, "blocks")
        build = self._builds.get(name)
        if build is None:
            build = asyncio.create_task(self.rebuild(path), name=f"build {name}")
            self._builds[name] = build
            build.add_done_callback(lambda task: self._built(name, task))
        while not build.done():
            await asyncio.wait({build}, timeout=PROGRESS_SECONDS)
            if not build.done():
                found = await run(lambda conn: progress(conn, path))
                if found is not None:
                    yield found
        await build  # its error, if it failed
        yield RecordIndex(
            collection, path, name, await run(lambda conn: ready(conn, path)), created
        )

    def _built(self, name: str, task: asyncio.Task[None]) -> None:
        self._builds.pop(name, None)
        if not task.cancelled() and (error := task.exception()) is not None:
            # Logged here as well as raised to the callers still waiting: there may
            # be none left.
            log.warning("index build failed", index=name, error=str(error))

    async def rebuild(self, path: tuple[str, ...]) -> None:
        """Build the index of `path` (again, if a failed build left it invalid)."""
        try:
            async with self.runner.pool.connection() as conn:
                # A build may take long on a big collection: no statement_timeout for
                # it, and the session's own back before the pool hands it out again.
                await conn.execute("SET statement_timeout = 0")
                try:
                    await build(conn, path)
                finally:
                    await conn.execute("RESET statement_timeout")
        except psycopg.Error as error:
            raise translate(error) from error
        finally:
            self._indexed.invalidate()

    @borrowing()
    async def list_indexes(
        self, conn: Conn, namespace: str, collection: str | None
    ) -> list[RecordIndex]:
        """Declarations with whether the index serving each is built and valid."""
        cursor = await conn.execute(LIST, (namespace, collection, collection))
        return [
            RecordIndex(row[0], tuple(row[1].split(".")), row[2], bool(row[4]), row[3])
            for row in await cursor.fetchall()
        ]

    async def drop_index(
        self, namespace: str, collection: str, path: tuple[str, ...], *, actor: Actor
    ) -> None:
        """Undeclare; the index goes once nothing declares its path."""
        await self.runner.run(
            lambda conn: undeclare(conn, namespace, collection, path, actor=actor),
            transaction=True,
        )
        await self.runner.run(lambda conn: drop_unused(conn, path))
        self._indexed.invalidate()

    async def close(self) -> None:
        """Abandon the builds still running."""
        for task in list(self._builds.values()):
            task.cancel()
