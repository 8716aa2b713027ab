"""Migration 0024 on both engines: the audit log gains a purge batch's lists, and its
rollback turns each batch row back into the per-record rows it stands for (one per
listed record, in the list's order, with the row's time, actor and action), so going
down loses no removal; the migration then applies again."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import psycopg
from yoyo import get_backend, read_migrations

from strata_server.storage.migrations import sqlite_backend
from tests.support.pg import PgServer

ROOT = Path(__file__).resolve().parents[2] / "migrations"
MICROS = 1_765_000_000_000_000

EXPECTED = [
    # action, entity_id, version, changed_fields: the ordinary row, then the batch's
    ("delete", "c/z", 3, '["data.a"]'),
    ("expire", "c/a", 1, "[]"),
    ("expire", "c/b", 4, "[]"),
    ("expire", "c/c", 2, "[]"),
]


def _migrate_down_and_up(backend: Any, migrations_dir: Path, check: Any) -> None:
    migrations = read_migrations(str(migrations_dir))
    with backend.lock():
        backend.rollback_migrations(
            backend.to_rollback(migrations.filter(lambda m: m.id >= "0024"))
        )
    check()
    with backend.lock():
        backend.apply_migrations(backend.to_apply(migrations))


def test_sqlite_rollback_expands_batch_rows(tmp_path: Path) -> None:
    path = tmp_path / "strata.db"
    backend = sqlite_backend(f"sqlite:///{path}")
    with backend.lock():
        backend.apply_migrations(backend.to_apply(read_migrations(str(ROOT / "sqlite"))))
    insert = (
        "INSERT INTO audit_log (namespace, time, actor, action, entity, entity_id, version,"
        " changed_fields, request_id, entity_ids, entity_versions)"
        " VALUES ('ns', ?, 'system', ?, 'record', ?, ?, ?, NULL, ?, ?)"
    )
    with sqlite3.connect(path) as conn:
        conn.execute(insert, (MICROS, "delete", "c/z", 3, '["data.a"]', None, None))
        conn.execute(insert, (MICROS, "expire", "c/", 0, "[]", '["c/a","c/b","c/c"]', "[1,4,2]"))

    def check() -> None:
        with sqlite3.connect(path) as conn:
            rows = conn.execute(
                "SELECT action, entity_id, version, changed_fields, time, actor"
                " FROM audit_log ORDER BY seq"
            ).fetchall()
            columns = {row[1] for row in conn.execute("PRAGMA table_info(audit_log)")}
        assert [row[:4] for row in rows] == EXPECTED
        assert {row[4:] for row in rows} == {(MICROS, "system")}
        assert "entity_ids" not in columns and "entity_versions" not in columns

    _migrate_down_and_up(backend, ROOT / "sqlite", check)
    backend.connection.close()


def test_postgres_rollback_expands_batch_rows(pg: PgServer) -> None:
    url = pg.create_database(f"batches_{uuid.uuid4().hex[:8]}")
    backend = get_backend(url.replace("postgresql://", "postgresql+psycopg://"))
    with backend.lock():
        backend.apply_migrations(backend.to_apply(read_migrations(str(ROOT / "postgres"))))
    insert = (
        "INSERT INTO audit_log (namespace, time, actor, action, entity, entity_id, version,"
        " changed_fields, request_id, entity_ids, entity_versions)"
        " VALUES ('ns', to_timestamp(1765000000), 'system', %s, 'record', %s, %s, %s::jsonb,"
        " NULL, %s, %s)"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(insert, ("delete", "c/z", 3, '["data.a"]', None, None))
        conn.execute(insert, ("expire", "c/", 0, "[]", ["c/a", "c/b", "c/c"], [1, 4, 2]))
        with psycopg.connect(url) as bad:  # the lists go together
            try:
                bad.execute(insert, ("expire", "c/", 0, "[]", ["c/a"], [1, 2]))
            except psycopg.errors.CheckViolation:
                pass
            else:
                raise AssertionError("lists of different lengths were accepted")

    def check() -> None:
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT action, entity_id, version, changed_fields::text, time, actor, xact"
                " FROM audit_log ORDER BY seq"
            ).fetchall()
            columns = {
                row[0]
                for row in conn.execute(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_name = 'audit_log'"
                )
            }
        assert [row[:4] for row in rows] == EXPECTED
        assert len({row[4:6] for row in rows}) == 1
        assert rows[1][6] == rows[2][6] == rows[3][6]  # the batch's transaction, kept
        assert "entity_ids" not in columns and "entity_versions" not in columns

    _migrate_down_and_up(backend, ROOT / "postgres", check)
    backend.connection.close()
