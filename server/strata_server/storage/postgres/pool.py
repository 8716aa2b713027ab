"""The connection pool, and the one place psycopg errors become domain errors.

Pooled connections are autocommit: a read is one round trip, and writes open an
explicit transaction (`conn.transaction()`). Each session starts with TimeZone=UTC
(a startup option, so no per-call SET), so timestamptz values load as UTC datetimes.

The pool does not test connections on checkout (that would double the round trips of
every GetRecord). A connection left dead by a database restart is found when it is
used instead; `Runner.run` then has the pool check its idle connections and
retries on a fresh one when that is safe. Every adapter borrows its connections
through one `Runner`, mostly by the `borrowing` decorator.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeAlias, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout, TooManyRequests

from strata_server.core.errors import (
    Conflict,
    InvalidArgument,
    QueryTimeout,
    QuotaExceeded,
    StrataError,
    TooLarge,
    Unavailable,
)

Conn: TypeAlias = psycopg.AsyncConnection[TupleRow]
Pool: TypeAlias = AsyncConnectionPool[Conn]

CONNECT_TIMEOUT = 5
"""Seconds libpq waits for a TCP connection/handshake, unless the DSN says otherwise."""

RECONNECT_TIMEOUT = 10.0
"""Seconds the pool keeps retrying (with backoff) to replace a lost connection before
it leaves the slot to be refilled on demand. Short, so that after an outage the next
request triggers a fresh attempt instead of waiting out a long backoff."""

T = TypeVar("T")
P = ParamSpec("P")

QUOTA_SQLSTATE = "SQ001"
"""What the quota triggers raise (migrations/postgres/0013_quotas.sql), with the
namespace as the error's DETAIL."""


def conninfo(dsn: str, *, statement_timeout: float = 0.0) -> str:
    """The DSN plus the session settings the adapter relies on (existing options kept):
    UTC, and `statement_timeout` seconds as the session's statement_timeout (0: none)."""
    params = conninfo_to_dict(dsn)
    options = str(params.get("options") or "")
    options = f"{options} -c TimeZone=UTC"
    if statement_timeout > 0:
        options += f" -c statement_timeout={max(1, round(statement_timeout * 1000))}"
    extra: dict[str, Any] = {"options": options.strip()}
    if "connect_timeout" not in params:
        extra["connect_timeout"] = CONNECT_TIMEOUT
    if "application_name" not in params:
        extra["application_name"] = "strata"
    return make_conninfo(dsn, **extra)


async def open_pool(
    dsn: str, *, min_size: int, max_size: int, pool_timeout: float, statement_timeout: float = 0.0
) -> Pool:
    """Open a pool and wait for `min_size` connections; Unavailable if the database
    cannot be reached within `pool_timeout` seconds. Every pooled session runs with
    `statement_timeout` seconds (0: no limit)."""
    pool: Pool = AsyncConnectionPool(
        conninfo(dsn, statement_timeout=statement_timeout),
        connection_class=psycopg.AsyncConnection[TupleRow],
        # prepare_threshold stays at psycopg's default (prepare a statement text on its
        # 5th use): the fixed statements pass prepare=True and are prepared on first
        # use; list/count texts vary with the filter, so only recurring ones qualify.
        kwargs={"autocommit": True},
        min_size=min_size,
        max_size=max_size,
        timeout=pool_timeout,
        reconnect_timeout=RECONNECT_TIMEOUT,
        name="strata-postgres",
        open=False,
    )
    try:
        await pool.open(wait=True, timeout=pool_timeout)
    except psycopg.Error as error:
        await pool.close()
        raise translate(error) from error
    return pool


def lost(conn: Conn | None) -> bool:
    """Whether `conn` was checked out and has since died (server restart, network)."""
    return conn is not None and conn.closed


def translate(error: psycopg.Error) -> StrataError:
    """The domain error for a driver or pool error; raise it `from error`.

    Most specific class first: SerializationFailure and the pool errors are
    OperationalErrors too.
    """
    if getattr(error, "sqlstate", None) == QUOTA_SQLSTATE:
        return QuotaExceeded(error.diag.message_detail or "")
    if isinstance(error, pg_errors.SerializationFailure | pg_errors.DeadlockDetected):
        return Conflict(f"a concurrent transaction got in the way ({error}); retry the request")
    if isinstance(error, pg_errors.LockNotAvailable | pg_errors.UniqueViolation):
        return Conflict(f"a concurrent write got in the way ({error}); retry the request")
    if isinstance(error, pg_errors.UntranslatableCharacter):
        return InvalidArgument.field(
            "data", "contains the NUL character (\\u0000), which PostgreSQL cannot store"
        )
    if isinstance(error, pg_errors.ProgramLimitExceeded):
        return TooLarge(f"the value is larger than PostgreSQL allows: {error}")
    if isinstance(error, psycopg.DataError):
        return InvalidArgument(f"PostgreSQL cannot store a value of the request: {error}")
    if isinstance(error, pg_errors.UndefinedTable | pg_errors.UndefinedColumn):
        return Unavailable(
            f"the PostgreSQL database has no Strata schema ({error}): run `strata migrate`"
        )
    if isinstance(error, pg_errors.QueryCanceled) and "statement timeout" in str(error):
        return QueryTimeout(
            "the query ran longer than the server allows one query to run "
            "(STRATA_DB_STATEMENT_TIMEOUT_SECONDS): narrow it with a more selective "
            "filter, a declared index or a smaller page"
        )
    if isinstance(error, pg_errors.QueryCanceled):
        return Unavailable(f"PostgreSQL cancelled the statement ({error}); retry later")
    if isinstance(error, PoolTimeout | TooManyRequests):
        return Unavailable(
            f"no PostgreSQL connection became free in time ({error}): "
            "the database is unreachable or overloaded; retry later"
        )
    if isinstance(error, PoolClosed):
        return Unavailable("the PostgreSQL connection pool is closed")
    if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
        return Unavailable(f"PostgreSQL cannot be reached ({error}); retry later")
    return StrataError(f"PostgreSQL failed: {error}")


class Runner:
    """The pool, and the one way every adapter borrows a connection from it."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def run(
        self,
        work: Callable[[Conn], Awaitable[T]],
        *,
        transaction: bool = False,
        writes: bool = False,
    ) -> T:
        """Run `work` on a pooled connection (inside a transaction if asked), with
        driver errors translated and one retry after a dead pooled connection.

        The retry is safe for reads, and for a transaction whose BEGIN failed (the
        BEGIN finds the dead connection before anything is written). `writes` marks
        autocommit work that writes: a connection lost under it may have committed,
        so it is not run again (the caller gets UNAVAILABLE, as for a COMMIT lost)."""
        for attempt in (1, 2):
            conn: Conn | None = None
            begun = writes and not transaction
            try:
                async with self.pool.connection() as conn:
                    if not transaction:
                        return await work(conn)
                    async with conn.transaction():
                        begun = True
                        return await work(conn)
            except psycopg.Error as error:
                if lost(conn):
                    await self.pool.check()
                    if attempt == 1 and not begun:
                        continue
                raise translate(error) from error
        raise AssertionError("unreachable")  # pragma: no cover


class Borrower(Protocol):
    """An adapter that borrows its connections through a Runner."""

    @property
    def runner(self) -> Runner:
        """The runner of the adapter's pool."""
        ...


B = TypeVar("B", bound=Borrower)
Method: TypeAlias = Callable[Concatenate[B, Conn, P], Coroutine[Any, Any, T]]
Borrowing: TypeAlias = Callable[Concatenate[B, P], Coroutine[Any, Any, T]]


def borrowing(
    *, transaction: bool = False, writes: bool = False
) -> Callable[[Method[B, P, T]], Borrowing[B, P, T]]:
    """Turn an adapter method that works on a connection (its first argument after
    self) into the port's method without it: each call runs the body through
    `Runner.run` with these flags, so connection handling, error translation and
    the retry after a dead connection are written once, here."""

    def decorate(method: Method[B, P, T]) -> Borrowing[B, P, T]:
        @functools.wraps(method)
        async def borrow(self: B, /, *args: P.args, **kwargs: P.kwargs) -> T:
            return await self.runner.run(
                lambda conn: method(self, conn, *args, **kwargs),
                transaction=transaction,
                writes=writes,
            )

        return borrow

    return decorate
