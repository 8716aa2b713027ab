"""SQLite connections: one writer that every write transaction queues for, and a pool
of readers.

Each connection is an aiosqlite proxy (the sqlite3 connection lives on its own thread).
Writes are serialized twice over: by an asyncio.Lock here, and by SQLite's write lock
(`BEGIN IMMEDIATE`), which also keeps out other processes writing the same file (they
wait up to `busy_timeout`, then the caller gets Unavailable). In WAL mode readers never
block the writer nor each other, and see only committed transactions.

Durability: WAL with `synchronous=NORMAL` does not fsync on every commit, but a
commit is in the WAL file (the OS page cache) before it is acknowledged, so it
survives `kill -9` of the server; only an OS crash or power loss can drop the last
few commits. That is the trade the embedded shape makes for write latency.

`:memory:` becomes a named shared-cache database (`file:strata-<random>?mode=memory&
cache=shared`) so readers and the writer see the same data; the writer connection
keeps it alive until close(). Shared-cache mode has table-level locks that fail at
once (SQLITE_LOCKED, no busy_timeout) instead of WAL's snapshots, so in that mode
reads also take the write lock; it is meant for tests and throwaway servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

import aiosqlite

from strata_server.core.errors import Unavailable
from strata_server.storage.sqlite.driver_errors import translated

Row = tuple[Any, ...]
"""One result row, as the sqlite3 module returns it (no row factory)."""

BUSY_TIMEOUT_MS = 5000
STATEMENT_CACHE = 256

_COMMON_PRAGMAS = (
    f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
    "PRAGMA foreign_keys = ON",
    # Durable against process crashes (see module docstring); only writers care.
    "PRAGMA synchronous = NORMAL",
)
_WRITER_PRAGMAS = ("PRAGMA journal_mode = WAL", *_COMMON_PRAGMAS)
_READER_PRAGMAS = (*_COMMON_PRAGMAS, "PRAGMA query_only = ON")


class _Statements:
    """One connection inside an open transaction, as a reader of rows."""

    __slots__ = ("_conn",)

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def fetchall(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Row]:
        """Run one statement and return all its rows."""
        with translated():
            rows = await self._conn.execute_fetchall(sql, params)
        return cast(list[Row], rows)


class Transaction(_Statements):
    """The writer connection inside an open `BEGIN IMMEDIATE` transaction."""

    __slots__ = ()

    async def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> None:
        """Run one statement for its effect."""
        with translated():
            await self._conn.execute_fetchall(sql, params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per parameter row."""
        batch = list(rows)
        with translated():
            if len(batch) == 1:  # one trip to the writer thread instead of two
                await self._conn.execute_fetchall(sql, batch[0])
            else:
                cursor = await self._conn.executemany(sql, batch)
                await cursor.close()  # on the connection's thread, which owns it


class Snapshot(_Statements):
    """A reader connection inside a read transaction (`Connections.snapshot`)."""

    __slots__ = ()

    async def batches(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = (), size: int = 1000
    ) -> AsyncIterator[list[Row]]:
        """The rows of one statement, `size` at a time, never all at once."""
        with translated():
            cursor = await self._conn.execute(sql, params)
        try:
            while True:
                with translated():
                    rows = await cursor.fetchmany(size)
                if not rows:
                    return
                yield cast(list[Row], rows)
        finally:
            with contextlib.suppress(sqlite3.Error, ValueError):
                await cursor.close()


async def _connect(target: str, *, uri: bool, pragmas: Sequence[str]) -> aiosqlite.Connection:
    # isolation_level=None: sqlite3 issues no implicit BEGIN; transactions are ours.
    conn = await aiosqlite.connect(
        target, uri=uri, isolation_level=None, cached_statements=STATEMENT_CACHE
    )
    try:
        for pragma in pragmas:
            await conn.execute_fetchall(pragma)
    except BaseException:
        await conn.close()
        raise
    return conn


class Connections:
    """The writer, the reader pool and the lock that orders writes."""

    def __init__(
        self,
        writer: aiosqlite.Connection,
        readers: Sequence[aiosqlite.Connection],
        *,
        shared_memory: bool,
    ) -> None:
        self._writer = writer
        self._readers = tuple(readers)
        self._idle: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        for reader in self._readers:
            self._idle.put_nowait(reader)
        self._write_lock = asyncio.Lock()
        self._read_gate = self._write_lock if shared_memory else None
        self._closed = False
        self._requests = 0  # statements and transactions run, for pool_stats

    @classmethod
    async def open(cls, path: str, *, readers: int, schema_sql: str | None = None) -> Connections:
        """Connect the writer (running `schema_sql` on it first, if given) and `readers`."""
        if readers < 1:
            raise ValueError("readers must be at least 1")
        shared_memory = path == ":memory:"
        target = (
            f"file:strata-{secrets.token_hex(8)}?mode=memory&cache=shared"
            if (shared_memory)
            else path
        )
        opened: list[aiosqlite.Connection] = []
        try:
            with translated():
                writer = await _connect(target, uri=shared_memory, pragmas=_WRITER_PRAGMAS)
                opened.append(writer)
                if schema_sql is not None:
                    await writer.executescript(schema_sql)
                for _ in range(readers):
                    opened.append(
                        await _connect(target, uri=shared_memory, pragmas=_READER_PRAGMAS)
                    )
        except BaseException:
            for conn in reversed(opened):
                with contextlib.suppress(Exception):
                    await conn.close()
            raise
        return cls(opened[0], opened[1:], shared_memory=shared_memory)

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("the SQLite database is closed")

    async def fetchall(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Row]:
        """Run one read-only statement on a reader and return all its rows."""
        self._check_open()
        self._requests += 1
        conn = await self._idle.get()
        try:
            with translated():
                if self._read_gate is None:
                    rows = await conn.execute_fetchall(sql, params)
                else:
                    async with self._read_gate:
                        rows = await conn.execute_fetchall(sql, params)
        finally:
            self._idle.put_nowait(conn)
        return cast(list[Row], rows)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        self._check_open()
        self._requests += 1
        async with self._write_lock:
            tx = Transaction(self._writer)
            try:
                # Inside the try: a task cancelled while BEGIN is queued on the
                # writer's thread must still roll back what BEGIN then opens.
                await tx.execute("BEGIN IMMEDIATE")
                yield tx
                await tx.execute("COMMIT")
            except BaseException:
                # Queued on the writer's thread behind any statement still running,
                # so it runs even if this task was cancelled mid-statement.
                with contextlib.suppress(sqlite3.Error, ValueError):
                    await self._writer.rollback()
                raise

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Snapshot]:
        """One reader inside a read transaction: every statement of the block sees the
        same committed state (WAL keeps it while the block lasts; writers go on)."""
        self._check_open()
        self._requests += 1
        conn = await self._idle.get()
        try:
            async with contextlib.AsyncExitStack() as stack:
                if self._read_gate is not None:
                    await stack.enter_async_context(self._read_gate)
                try:
                    # Inside the try: a task cancelled while BEGIN is queued on the
                    # reader's thread (a caller gone mid-export) must still end the
                    # transaction BEGIN then opens, or the reader goes back to the
                    # pool inside it and every later BEGIN on it fails.
                    with translated():
                        await conn.execute_fetchall("BEGIN")
                    yield Snapshot(conn)
                finally:
                    # ROLLBACK ends a read transaction as COMMIT would, and also with
                    # a statement still open (a cursor of an abandoned iteration).
                    # Queued behind whatever runs on the reader's thread, it runs
                    # before the reader's next caller even if this task is cancelled.
                    with contextlib.suppress(sqlite3.Error, ValueError):
                        await conn.execute_fetchall("ROLLBACK")
        finally:
            self._idle.put_nowait(conn)

    def stats(self) -> dict[str, int]:
        """Reader connections open and idle, the writer's queued callers, and the reads
        and transactions run since the start (`requests`)."""
        waiting = len(getattr(self._write_lock, "_waiters", None) or ())
        return {
            "size": len(self._readers) + 1,
            "idle": self._idle.qsize(),
            "waiting": waiting,
            "requests": self._requests,
        }

    async def close(self) -> None:
        """Close every connection; later calls raise Unavailable."""
        if self._closed:
            return
        self._closed = True
        for conn in (*self._readers, self._writer):
            with contextlib.suppress(sqlite3.Error, ValueError):
                await conn.close()
