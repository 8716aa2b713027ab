"""`strata migrate up | down | status` on both dialects, and configuration errors, run
as an operator runs them: as subprocesses."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import psycopg
import pytest

from tests.support.cli import run_strata

ROOT = Path(__file__).resolve().parents[2]
YOYO_TABLES = {"_yoyo_migration", "_yoyo_log", "_yoyo_version", "yoyo_lock"}
CORE_TABLES = {"records"}


def strata(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `strata <args>` (a process of its own) with `env` as its only STRATA_* settings."""
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("STRATA_")}
    return run_strata(list(args), env={**inherited, **env}, cwd=cwd, timeout=60)


def ok(*args: str, cwd: Path) -> str:
    result = strata(*args, cwd=cwd)
    assert result.returncode == 0, f"strata {' '.join(args)}:\n{result.stdout}{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def migration_ids(dialect: str) -> list[str]:
    folder = ROOT / "migrations" / dialect
    ids = sorted(
        p.name.removesuffix(".sql")
        for p in folder.glob("*.sql")
        if not p.name.endswith(".rollback.sql")
    )
    assert ids, f"no migrations in {folder}"
    return ids


def tables(url: str) -> set[str]:
    """The tables a database holds, without SQLite's internal ones."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return {name for (name,) in rows if not name.startswith("sqlite_")}
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    return {name for (name,) in rows}


def status(url: str, cwd: Path) -> dict[str, str]:
    """`strata migrate status` as {migration id: "applied" | "pending"}."""
    out = ok("migrate", "status", "--database-url", url, cwd=cwd)
    pairs = [line.split() for line in out.splitlines() if line.strip()]
    return {ident: state for state, ident in pairs}


@pytest.fixture(params=["sqlite", "postgres"])
def target(request, database_url) -> tuple[str, str]:
    """(dialect, URL of a fresh, empty database)."""
    return request.param, database_url(request.param)


def test_up_down_up(target, tmp_path):
    dialect, url = target
    ids = migration_ids(dialect)
    assert status(url, tmp_path) == dict.fromkeys(ids, "pending")

    out = ok("migrate", "up", "--database-url", url, cwd=tmp_path)
    assert f"applied {len(ids)} migration(s)" in out
    assert status(url, tmp_path) == dict.fromkeys(ids, "applied")
    assert tables(url) >= CORE_TABLES
    migrated = tables(url)

    assert "applied 0 migration(s)" in ok("migrate", "up", "--database-url", url, cwd=tmp_path)

    ok("migrate", "down", "--database-url", url, cwd=tmp_path)
    assert status(url, tmp_path) == {**dict.fromkeys(ids, "applied"), ids[-1]: "pending"}

    ok("migrate", "down", "--steps", str(len(ids)), "--database-url", url, cwd=tmp_path)
    assert status(url, tmp_path) == dict.fromkeys(ids, "pending")
    assert tables(url) - YOYO_TABLES == set(), "down left tables behind"

    ok("migrate", "up", "--database-url", url, cwd=tmp_path)
    assert status(url, tmp_path) == dict.fromkeys(ids, "applied")
    assert tables(url) == migrated


def backups(db_path: Path) -> list[Path]:
    folder = db_path.parent / "backups"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_sqlite_up_backs_up_an_existing_database_first(tmp_path):
    db_path = tmp_path / "db" / "strata.db"
    url = f"sqlite:///{db_path}"
    ok("migrate", "up", "--database-url", url, cwd=tmp_path)
    assert backups(db_path) == [], "a brand-new file holds nothing to back up"
    assert "applied 0" in ok("migrate", "up", "--database-url", url, cwd=tmp_path)
    assert backups(db_path) == [], "nothing was pending, yet a backup was made"

    # an existing file at an older schema state, then `up`
    ids = migration_ids("sqlite")
    ok("migrate", "down", "--steps", str(len(ids)), "--database-url", url, cwd=tmp_path)
    out = ok("migrate", "up", "--database-url", url, cwd=tmp_path)
    made = backups(db_path)
    assert len(made) == 1, f"expected one backup in {db_path.parent / 'backups'}, found {made}"
    assert str(made[0]) in out, out
    with sqlite3.connect(made[0]) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        names = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    assert "_yoyo_migration" in names
    assert "records" not in names, "the backup holds the state before `up`"


REFUSALS = {
    "listen": (["serve", "--listen", "nonsense"], {}, "listen"),
    "listen port": (["serve", "--listen", "127.0.0.1:99999"], {}, "listen"),
    "database scheme": (["serve", "--database-url", "mysql://x/y"], {}, "database_url"),
    "env value": (["serve"], {"STRATA_MAX_RECORD_BYTES": "lots"}, "max_record_bytes"),
    "migrate url": (["migrate", "up", "--database-url", "sqlite://relative"], {}, "database_url"),
    # {tmp} is this test's folder, which holds a file `not-a-db` of plain text
    "not a database": (["serve", "--database-url", "sqlite:///{tmp}/not-a-db"], {}, "database"),
    "path below a file": (
        ["migrate", "up", "--database-url", "sqlite:///{tmp}/not-a-db/x.db"],
        {},
        "database",
    ),
}


@pytest.mark.parametrize(("args", "env", "mentions"), REFUSALS.values(), ids=REFUSALS.keys())
def test_a_refused_start_exits_2_with_one_line_naming_the_cause(tmp_path, args, env, mentions):
    (tmp_path / "not-a-db").write_text("plain text, not SQLite\n" * 100)
    result = strata(*(arg.format(tmp=tmp_path) for arg in args), cwd=tmp_path, **env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert mentions in lines[0], lines[0]
    assert not (tmp_path / "data").exists(), "a refused start must not create a database"


def test_postgres_up_recommends_a_pg_dump_or_runs_it(database_url, tmp_path):
    url = database_url("postgres")
    shown = strata("migrate", "up", "--no-backup", "--database-url", url, cwd=tmp_path)
    assert shown.returncode == 0 and "pg_dump" not in shown.stdout
    ok("migrate", "down", "--steps", "1", "--database-url", url, cwd=tmp_path)

    advised = ok("migrate", "up", "--database-url", url, cwd=tmp_path)
    assert "back up first (or pass --pg-dump): pg_dump --format=custom" in advised
    assert "applied 1 migration(s)" in advised
    ok("migrate", "down", "--steps", "1", "--database-url", url, cwd=tmp_path)

    dump = tmp_path / "before.dump"
    ran = ok(
        "migrate", "up", "--pg-dump", "--dump-file", str(dump), "--database-url", url, cwd=tmp_path
    )
    assert "running pg_dump" in ran and "applied 1 migration(s)" in ran
    assert dump.stat().st_size > 0 and dump.read_bytes().startswith(b"PGDMP")


def test_postgres_up_stops_when_pg_dump_fails(database_url, tmp_path):
    url = database_url("postgres")
    failed = strata(
        "migrate",
        "up",
        "--pg-dump",
        "--dump-file",
        str(tmp_path / "no" / "such" / "dir" / "x.dump"),
        "--database-url",
        url,
        cwd=tmp_path,
    )
    assert failed.returncode == 2 and "pg_dump failed" in failed.stderr
    assert "nothing was migrated" in failed.stderr
    assert set(status(url, tmp_path).values()) == {"pending"}
