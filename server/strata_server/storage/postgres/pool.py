"""The connection pool, and the one place psycopg errors become domain errors.

Pooled connections are autocommit: a read is one round trip, and writes open an
explicit transaction (`conn.transaction()`). Each session starts with TimeZone=UTC
(a startup option, so no per-call SET), so timestamptz values load as UTC datetimes.

The pool does not test connections on checkout (that would double the round trips of
every GetRecord). A connection left dead by a database restart is found when it is
used instead; `database.PostgresDatabase` then has the pool check its idle
connections and retries on a fresh one when that is safe.
"""

from __future__ import annotations

from typing import Any, TypeAlias

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
    dsn: str,
    *,
    min_size: int,
    max_size: int,
    pool_timeout: float,
    statement_timeout: float = 0.0,
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
