"""tests/storage: what the port-contract suite (tests/ports) does not cover, each
engine's own paths. PostgreSQL modules take a database of the session's server
(`database_with`) instead of starting their own."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.support.pg import PgServer

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations" / "postgres"


@dataclass(frozen=True)
class Database:
    """One database of the session's PostgreSQL for a module: `dsn` as a PgServer's,
    so helpers that connect to `pg.dsn` reach it."""

    server: PgServer
    dsn: str

    def create_database(self, name: str) -> str:
        """Another empty database on the same server."""
        return self.server.create_database(name)


def every_migration() -> list[str]:
    """The file names of every PostgreSQL migration, in order: the schema the
    adapters expect (a module that picks a subset breaks when a later migration
    adds a column an adapter writes)."""
    return sorted(p.name for p in MIGRATIONS.glob("*.sql") if not p.name.endswith(".rollback.sql"))


def database_with(pg: PgServer, *migrations: str) -> Database:
    """A new database on `pg` holding the schema of `migrations` (file names under
    migrations/postgres/, applied in order without yoyo)."""
    url = pg.create_database(f"storage_{uuid.uuid4().hex[:12]}")
    with psycopg.connect(url, autocommit=True) as conn:
        for name in migrations:
            conn.execute((MIGRATIONS / name).read_text())
    return Database(pg, url)
