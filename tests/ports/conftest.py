"""The port-contract suite: each test runs in process, with no gRPC, against both
storage adapters (a SQLite file, and a database on the session's PostgreSQL), so a
behaviour of a port is written once and both engines are held to it.

Each test gets a storage of its own: a copy of a SQLite file migrated once per
session, or a PostgreSQL database cloned from a template migrated once per session
(`CREATE DATABASE ... TEMPLATE`), so tests may count what a whole database holds.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import psycopg
import pytest

from strata_server.core.models import Actor
from strata_server.settings.backend_settings import DatabaseTarget
from strata_server.storage import migrations
from strata_server.storage.composite import Storage
from strata_server.storage.postgres import open_postgres
from strata_server.storage.sqlite import open_sqlite
from tests.support.pg import PgServer

MAX_RECORD_BYTES = 4096
"""The largest record the storages under test accept."""

ACTOR = Actor("tester")

ENGINES = ("sqlite", "postgres")

Reopen = Callable[[], Awaitable[Storage]]
"""Opens another storage on the test's database (as another server process would),
closed when the test ends."""


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with every migration applied, copied for each test."""
    path = tmp_path_factory.mktemp("ports") / "template.db"
    migrations.up(DatabaseTarget("sqlite", path=str(path)), backup=False)
    return path


@pytest.fixture(scope="session")
def postgres_template(pg: PgServer) -> str:
    """A database of the session's PostgreSQL with every migration applied, the
    template each test's database is cloned from."""
    name = f"ports_{uuid.uuid4().hex[:12]}"
    url = pg.create_database(name)
    migrations.up(DatabaseTarget("postgres", dsn=url))
    return name


async def _clone(pg: PgServer, template: str) -> str:
    name = f"port_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(pg.dsn, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return pg.url(name)


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """ "sqlite" or "postgres": the engine of this test's storage."""
    return str(request.param)


@pytest.fixture
async def reopen(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Reopen]:
    """`Reopen` for this test's database (made on first use)."""
    opened: list[Storage] = []
    target: list[str] = []

    async def open_another() -> Storage:
        if not target:
            if engine == "sqlite":
                path = tmp_path / "strata.db"
                shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
                target.append(str(path))
            else:
                pg: PgServer = request.getfixturevalue("pg")
                target.append(await _clone(pg, request.getfixturevalue("postgres_template")))
        if engine == "sqlite":
            storage = await open_sqlite(target[0], max_record_bytes=MAX_RECORD_BYTES, readers=2)
        else:
            storage = await open_postgres(
                target[0], max_record_bytes=MAX_RECORD_BYTES, min_size=1, max_size=4
            )
        opened.append(storage)
        return storage

    try:
        yield open_another
    finally:
        for storage in opened:
            await storage.close()


@pytest.fixture
async def storage(reopen: Reopen) -> Storage:
    """A storage of its own for this test, on `engine`."""
    return await reopen()


@pytest.fixture
def ns() -> str:
    """A namespace no other test uses."""
    return f"n{uuid.uuid4().hex[:12]}"
