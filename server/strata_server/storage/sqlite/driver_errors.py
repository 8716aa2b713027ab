"""Turns sqlite3 exceptions into domain errors, at the one place the adapter meets the driver.

Nothing a caller did can make SQLite fail here (requests are validated and every
precondition is checked by `core.writes` first), so almost every driver error means
the database cannot serve right now: `Unavailable`, with a message an operator can
act on. The mapping goes by SQLite's primary result code, most specific first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from strata_server.core.errors import (
    AlreadyExists,
    Conflict,
    QuotaExceeded,
    StrataError,
    TooLarge,
    Unavailable,
)

_UNAVAILABLE: dict[int, str] = {
    sqlite3.SQLITE_BUSY: "the SQLite database stayed locked by another writer past busy_timeout",
    sqlite3.SQLITE_LOCKED: "an SQLite table is locked by another connection",
    sqlite3.SQLITE_IOERR: "SQLite could not read or write the database file (disk I/O error)",
    sqlite3.SQLITE_FULL: "the disk holding the SQLite database is full",
    sqlite3.SQLITE_CANTOPEN: "SQLite cannot open the database file",
    sqlite3.SQLITE_READONLY: "the SQLite database is read-only",
    sqlite3.SQLITE_CORRUPT: "the SQLite database file is corrupt",
    sqlite3.SQLITE_NOTADB: "the SQLite database path does not hold an SQLite database",
    sqlite3.SQLITE_NOMEM: "SQLite ran out of memory",
    sqlite3.SQLITE_INTERRUPT: "the SQLite operation was interrupted",
    sqlite3.SQLITE_PROTOCOL: "SQLite hit a locking protocol error",
    sqlite3.SQLITE_PERM: "SQLite was denied access to the database file",
    sqlite3.SQLITE_ABORT: "the SQLite operation was aborted",
}

QUOTA_REFUSAL = "STRATA_QUOTA_EXCEEDED"
"""What the quota triggers RAISE (migrations/sqlite/0013_quotas.sql): SQLite 3.40
takes only a literal there, so the message cannot name the namespace."""

_CLOSED_MESSAGES = ("Connection closed", "no active connection")
"""What aiosqlite raises (as ValueError) when used after close()."""


def translate(error: sqlite3.Error) -> StrataError:
    """The domain error for a driver error; raise it `from error`."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:  # ProgrammingError/InterfaceError, e.g. a closed connection
        return Unavailable(f"the SQLite database is not usable: {error}")
    primary = code & 0xFF
    if primary in _UNAVAILABLE:
        return Unavailable(f"{_UNAVAILABLE[primary]}: {error}; retry later")
    if primary == sqlite3.SQLITE_TOOBIG:
        return TooLarge(f"the value is larger than SQLite allows: {error}")
    if primary == sqlite3.SQLITE_CONSTRAINT and QUOTA_REFUSAL in str(error):
        # The namespace is named by the adapter method that wrote (core.quota_rules.explained).
        return QuotaExceeded()
    if primary == sqlite3.SQLITE_CONSTRAINT:
        # Only another writer on the same file (a second process) could get here:
        # every write checks its preconditions in the same IMMEDIATE transaction.
        if "UNIQUE" in str(error) and "records." in str(error):
            return AlreadyExists("the record was created concurrently by another writer")
        return Conflict(f"a concurrent write got in the way ({error}); retry the request")
    if "no such table" in str(error):
        return Unavailable(
            f"the SQLite database has no Strata schema ({error}): run `strata migrate`"
        )
    return StrataError(f"SQLite failed: {error}")


@contextmanager
def translated() -> Iterator[None]:
    """Run a block of driver calls, re-raising driver errors as domain errors."""
    try:
        yield
    except sqlite3.Error as error:
        raise translate(error) from error
    except ValueError as error:
        if str(error) in _CLOSED_MESSAGES:
            raise Unavailable("the SQLite database is closed") from error
        raise
