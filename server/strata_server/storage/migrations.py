"""Schema migrations with yoyo-migrations: one folder of SQL files per dialect.

yoyo is synchronous; these functions run at start-up or from `strata migrate`,
never on the request path. Every migration has a `.rollback.sql` twin.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import psycopg
from yoyo import get_backend, read_migrations
from yoyo.backends.core.sqlite3 import SQLiteBackend
from yoyo.connections import default_migration_table, parse_uri

from strata_server.core.errors import Unavailable
from strata_server.core.jsontypes import dumps
from strata_server.core.values import frozen
from strata_server.storage import entry_wire

T = TypeVar("T")
MIGRATIONS_ROOT = Path(__file__).resolve().parents[3] / "migrations"


class Target(Protocol):
    """The database to migrate, as configured (`settings.backend_settings.DatabaseTarget`
    is one): taken structurally, so storage does not depend on the configuration
    module."""

    @property
    def kind(self) -> str:
        """ "sqlite" or "postgres"."""
        ...

    @property
    def path(self) -> str:
        """The SQLite file (or ":memory:")."""
        ...

    @property
    def dsn(self) -> str:
        """The PostgreSQL URL."""
        ...

    @property
    def memory(self) -> bool:
        """A throwaway in-memory SQLite database (it has no migrations to manage)."""
        ...


@frozen
class MigrationState:
    """One migration and whether it is applied."""

    id: str
    applied: bool


def _folder(kind: str) -> Path:
    return MIGRATIONS_ROOT / ("sqlite" if kind == "sqlite" else "postgres")


def _yoyo_url(target: Target) -> str:
    if target.kind == "sqlite":
        return f"sqlite:///{target.path}"
    rest = target.dsn.partition("://")[2]
    return f"postgresql+psycopg://{rest}"


def memory_schema() -> str:
    """All SQLite migrations concatenated, to build a throwaway in-memory database."""
    files = sorted(
        p for p in _folder("sqlite").glob("*.sql") if not p.name.endswith(".rollback.sql")
    )
    return "\n".join(path.read_text() for path in files)


@contextmanager
def _translated() -> Iterator[None]:
    """Driver errors from yoyo's connections become Unavailable with a readable message."""
    try:
        yield
    except (psycopg.Error, sqlite3.Error, OSError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise Unavailable(f"cannot use the database for migrations: {first_line}") from None


def _backend(target: Target):  # type: ignore[no-untyped-def]
    if target.memory:
        raise ValueError("an in-memory database has no migrations to manage")
    if target.kind == "sqlite":
        Path(target.path).parent.mkdir(parents=True, exist_ok=True)
    if target.kind == "sqlite":
        return sqlite_backend(_yoyo_url(target))
    return get_backend(_yoyo_url(target))


class _SQLiteBackend(SQLiteBackend):  # type: ignore[misc]
    """yoyo's SQLite backend with the SQL functions SQLite migrations call that SQL
    alone cannot write: `strata_entry_data(wire_tail)`, an entry's data as JSON text
    decoded from its wire tail (0023's rollback; storage/entry_wire.py: tail_data).
    Registered on every connection yoyo opens (it runs each migration on a copy)."""

    def init_connection(self, connection: sqlite3.Connection) -> None:
        super().init_connection(connection)
        connection.create_function("strata_entry_data", 1, _entry_data, deterministic=True)


def sqlite_backend(url: str) -> Any:
    """A yoyo backend for a `sqlite:///` URL whose connections have Strata's SQL
    functions (what `get_backend` gives, otherwise)."""
    backend = _SQLiteBackend(parse_uri(url), default_migration_table)
    backend.init_database()
    return backend


def _entry_data(tail: bytes | None) -> str | None:
    data = entry_wire.tail_data(tail)
    return None if data is None else dumps(data)


def _with_backend(target: Target, action: Callable[..., T]) -> T:
    """Run `action(backend, migrations)` holding yoyo's lock, translating driver errors."""
    with _translated():
        backend = _backend(target)
        try:
            migrations = read_migrations(str(_folder(target.kind)))
            with backend.lock():
                return action(backend, migrations)
        finally:
            backend.connection.close()  # a PostgreSQL session must not outlive the run


def status(target: Target) -> list[MigrationState]:
    """Every known migration, oldest first, with whether it is applied."""

    def read(backend: Any, migrations: Any) -> list[MigrationState]:
        applied = {migration.id for migration in backend.to_rollback(migrations)}
        return [MigrationState(m.id, m.id in applied) for m in migrations]

    return _with_backend(target, read)


def pending(target: Target) -> list[str]:
    """Ids of migrations not yet applied, oldest first."""
    return [state.id for state in status(target) if not state.applied]


def backup_sqlite(path: str, backups: Path | None = None) -> Path | None:
    """Online backup of a SQLite file (consistent even while it is in use) into
    `<dir>/backups/`; None when there is nothing to back up yet."""
    source_path = Path(path)
    if not source_path.exists() or source_path.stat().st_size == 0:
        return None
    folder = backups or source_path.parent / "backups"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    destination = folder / f"{source_path.stem}-{stamp}.db"
    with (
        _translated(),
        sqlite3.connect(source_path) as source,
        sqlite3.connect(destination) as copy,
    ):
        source.backup(copy)
    return destination


def up(
    target: Target,
    *,
    backup: bool = True,
    applied: Callable[[str], None] | None = None,
    starting: Callable[[list[str]], None] | None = None,
) -> tuple[list[str], Path | None]:
    """Apply pending migrations one by one (calling `starting` with their ids, then
    `applied` with each id, for a progress bar); for SQLite with `backup`, copy the
    file first.

    Returns the ids applied and the backup's path (if one was made)."""
    # Only a file that existed before this call can hold anything worth a backup.
    existed = target.kind == "sqlite" and Path(target.path).exists()
    todo = pending(target)
    if starting is not None:
        starting(todo)
    saved = None
    if todo and backup and existed:
        saved = backup_sqlite(target.path)
    if todo:

        def apply(backend: Any, migrations: Any) -> None:
            chosen = backend.to_apply(migrations)
            for index in range(len(chosen)):
                backend.apply_migrations(chosen[index : index + 1])
                if applied is not None:
                    applied(chosen[index].id)

        _with_backend(target, apply)
    return todo, saved


def down(target: Target, steps: int = 1) -> list[str]:
    """Roll back the newest `steps` applied migrations; returns their ids."""

    def roll(backend: Any, migrations: Any) -> list[str]:
        chosen = backend.to_rollback(migrations)[:steps]
        backend.rollback_migrations(chosen)
        return [migration.id for migration in chosen]

    return _with_backend(target, roll)
