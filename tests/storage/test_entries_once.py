"""Migrations 0021 and 0023 on both engines: each entry's wire form stored around its content
(wire_head, wire_tail), the content once. Entries stored with a whole wire form are
cut so that head + content + tail gives back exactly those bytes, whatever the
lengths of their varints; entries stored before 0009 (no wire form) stay without
one; the rollback joins them back. 0023 clears the `data` column of every entry
whose wire tail holds its data (entries before 0009 keep theirs), without a byte
of the wire forms changing, and its rollback decodes the column back from the
tails. Also the cut done in Python, for restores, the data read back from a tail,
and what an append stores on each engine."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from yoyo import get_backend, read_migrations

from strata_server.core.jsontypes import JSON
from strata_server.core.models import Actor
from strata_server.core.transcript_rules import AppendEntries, NewTranscript, new_entry
from strata_server.storage import entry_wire
from strata_server.storage.composite import Storage
from strata_server.storage.migrations import sqlite_backend
from strata_server.storage.ports.write_context import WriteContext
from strata_server.storage.postgres import open_postgres
from strata_server.storage.postgres.transcript_queries import STORED_WIRE as PG_WIRE
from strata_server.storage.sqlite import open_sqlite
from strata_server.storage.sqlite.transcript_queries import STORED_WIRE as SQLITE_WIRE
from tests.storage.conftest import database_with, every_migration
from tests.support.pg import PgServer
from tests.support.wire import sent

ROOT = Path(__file__).resolve().parents[2] / "migrations"
TIME = datetime(2026, 12, 7, 18, 0, 0, 123456, tzinfo=UTC)
ACTOR = Actor("tester")

ENTRIES: list[tuple[int, str, str, JSON | None, bool]] = [
    # seq, role, content, data, stored with a wire form (False: appended before 0009)
    (1, "user", "hello", None, True),
    (2, "", "", {"calls": [1, "x"], "ok": True}, True),
    (3, "tool", "é" * 100, {"n": None}, True),  # a 2-byte content length
    (4, "assistant", "before 0009", {"old": 1}, False),
    (5, "a" * 64, "x" * 20_000, None, True),  # 3-byte lengths (content, entry)
    (300, "user", "a 2-byte seq", None, True),
    (20_000, "system", "y" * 127, {"k": "v"}, True),  # 3-byte seq, 1-byte length edge
]


def expected_wire(seq: int, role: str, content: str, data: JSON | None) -> bytes:
    return entry_wire.encode_entry(seq, role, content, data, TIME)


@pytest.mark.parametrize(("seq", "role", "content", "data", "_stored"), ENTRIES)
def test_a_stored_entry_is_cut_around_its_content_and_joins_back(
    seq: int, role: str, content: str, data: JSON | None, _stored: bool
) -> None:
    whole = expected_wire(seq, role, content, data)
    head, tail = entry_wire.stored_parts(seq, role, content, data, entry_wire.time_field(TIME))
    assert head + content.encode() + tail == whole
    assert entry_wire.split_stored(whole, content) == (head, tail)
    assert content.encode() not in head + tail or not content


@pytest.mark.parametrize(
    "data",
    [
        None,
        {},
        {"calls": [1, "x"], "ok": True},
        {"n": None, "f": 42.5, "neg": -3, "big": 2**53, "e": 1e300},
        {"nested": {"a": [{"b": [None, False, "é"]}], "c": {}}, "": ""},
    ],
)
def test_the_data_comes_back_from_the_tail_as_the_column_holds_it(data: JSON | None) -> None:
    _, tail = entry_wire.stored_parts(7, "tool", "text", data, entry_wire.time_field(TIME))
    decoded = entry_wire.tail_data(tail)
    assert decoded == data
    # ints stay ints and floats floats (a Struct's map keeps no key order)
    assert json.dumps(decoded, sort_keys=True) == json.dumps(data, sort_keys=True)


def _split(migrations_dir: Path) -> tuple[Any, Any]:
    migrations = read_migrations(str(migrations_dir))
    before = migrations.filter(lambda m: m.id < "0021")
    return migrations, before


def _json(data: JSON | None) -> str | None:
    import json

    return None if data is None else json.dumps(data)


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "strata.db"


def test_sqlite_migration_0021_cuts_and_its_rollback_joins(sqlite_path: Path) -> None:
    backend = sqlite_backend(f"sqlite:///{sqlite_path}")
    migrations, before = _split(ROOT / "sqlite")
    with backend.lock():
        backend.apply_migrations(backend.to_apply(before))
    micros = int(TIME.timestamp() * 1_000_000)
    with sqlite3.connect(sqlite_path) as conn:
        conn.executemany(
            "INSERT INTO transcript_entries (namespace, transcript_id, seq, start_offset, size,"
            " role, content, data, create_time, wire) VALUES ('ns', 't', ?, ?, 1, ?, ?, ?, ?, ?)",
            [
                (
                    seq,
                    seq,
                    role,
                    content,
                    _json(data),
                    micros,
                    expected_wire(seq, role, content, data) if stored else None,
                )
                for seq, role, content, data, stored in ENTRIES
            ],
        )
    with backend.lock():
        backend.apply_migrations(backend.to_apply(migrations))
    with sqlite3.connect(sqlite_path) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(transcript_entries)")}
        stored = dict(conn.execute(f"SELECT seq, {SQLITE_WIRE} FROM transcript_entries"))
    assert "wire" not in columns and {"wire_head", "wire_tail"} <= columns
    assert stored == {
        seq: expected_wire(seq, role, content, data) if kept else None
        for seq, role, content, data, kept in ENTRIES
    }
    with backend.lock():
        backend.rollback_migrations(
            backend.to_rollback(migrations.filter(lambda m: m.id >= "0021"))
        )
    with sqlite3.connect(sqlite_path) as conn:
        wires = dict(conn.execute("SELECT seq, wire FROM transcript_entries"))
    backend.connection.close()
    assert wires == stored


def test_postgres_migration_0021_cuts_and_its_rollback_joins(pg: PgServer) -> None:
    url = pg.create_database(f"once_{uuid.uuid4().hex[:8]}")
    backend = get_backend(url.replace("postgresql://", "postgresql+psycopg://"))
    migrations, before = _split(ROOT / "postgres")
    with backend.lock():
        backend.apply_migrations(backend.to_apply(before))
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO transcript_entries (namespace, transcript_id, seq, start_offset, size,"
            " role, content, data, create_time, wire)"
            " VALUES ('ns', 't', %s, %s, 1, %s, %s, %s::jsonb, %s, %s)",
            [
                (
                    seq,
                    seq,
                    role,
                    content,
                    _json(data),
                    TIME,
                    expected_wire(seq, role, content, data) if stored else None,
                )
                for seq, role, content, data, stored in ENTRIES
            ],
        )
    with backend.lock():
        backend.apply_migrations(backend.to_apply(migrations))
    with psycopg.connect(url, autocommit=True) as conn:
        columns = {
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = 'transcript_entries'"
            )
        }
        stored = {
            seq: None if wire is None else bytes(wire)
            for seq, wire in conn.execute(f"SELECT seq, {PG_WIRE} FROM transcript_entries")
        }
        compression = conn.execute(
            "SELECT attcompression FROM pg_attribute"
            " WHERE attrelid = 'transcript_entries'::regclass AND attname = 'content'"
        ).fetchone()
    assert "wire" not in columns and {"wire_head", "wire_tail"} <= columns
    assert compression == ("l",)  # lz4
    assert stored == {
        seq: expected_wire(seq, role, content, data) if kept else None
        for seq, role, content, data, kept in ENTRIES
    }
    with backend.lock():
        backend.rollback_migrations(
            backend.to_rollback(migrations.filter(lambda m: m.id >= "0021"))
        )
    backend.connection.close()
    with psycopg.connect(url, autocommit=True) as conn:
        wires = {
            seq: None if wire is None else bytes(wire)
            for seq, wire in conn.execute("SELECT seq, wire FROM transcript_entries")
        }
    assert wires == stored


TEXTS = ["the first words", "", "ünïcödé " * 40, "z" * 5000]
"""Contents an append stores: short, empty, multi-byte, long (compressed on PostgreSQL)."""


def _appended(db: Storage, ns: str) -> Any:
    entries = [new_entry("user" if text else "tool", text, None, 1 << 20) for text in TEXTS]
    entries[1] = new_entry("tool", "", {"calls": [1, "x"]}, 1 << 20)
    return db.transcripts.append_entries(ns, AppendEntries("t", entries), WriteContext(ACTOR))


async def test_an_append_on_sqlite_stores_the_content_once(tmp_path: Path) -> None:
    path = tmp_path / "strata.db"
    backend = get_backend(f"sqlite:///{path}")
    with backend.lock():
        backend.apply_migrations(backend.to_apply(read_migrations(str(ROOT / "sqlite"))))
    backend.connection.close()
    db = await open_sqlite(str(path), max_record_bytes=1 << 20)
    try:
        await db.transcripts.create_transcript("ns", NewTranscript("t"), WriteContext(ACTOR))
        await _appended(db, "ns")
        read = sent(await db.transcripts.read_batch("ns", "t", 1, 1 << 20))
    finally:
        await db.close()
    assert [entry.content for entry in read] == TEXTS
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT content, wire_head, wire_tail FROM transcript_entries"
        ).fetchall()
    assert len(rows) == len(TEXTS)
    for content, head, tail in rows:
        assert len(head) < 24 and (not content or content.encode() not in head + tail)


async def test_an_append_on_postgres_stores_the_content_once(pg: PgServer) -> None:
    database = database_with(pg, *every_migration())
    db = await open_postgres(database.dsn, max_record_bytes=1 << 20, min_size=1)
    try:
        await db.transcripts.create_transcript("ns", NewTranscript("t"), WriteContext(ACTOR))
        await _appended(db, "ns")
        read = sent(await db.transcripts.read_batch("ns", "t", 1, 1 << 20))
    finally:
        await db.close()
    assert [entry.content for entry in read] == TEXTS
    with psycopg.connect(database.dsn) as conn:
        rows = conn.execute(
            "SELECT content, wire_head, wire_tail, pg_column_compression(content)"
            " FROM transcript_entries ORDER BY seq"
        ).fetchall()
    for content, head, tail, _ in rows:
        assert len(head) < 24 and (not content or content.encode() not in head + tail)
    assert rows[-1][3] == "lz4"  # the long content, compressed in the row


DATA_ENTRIES = [
    *ENTRIES,
    (21_000, "tool", "numbers", {"f": 42.5, "neg": -3, "e": 1e300, "tiny": 5e-324, "z": 0}, True),
    (21_001, "", "nesting", {"a": [{"b": [None, False, "é"]}], "": "", "o": {}, "l": []}, True),
    (21_002, "user", "an empty object", {}, True),
    (21_003, "old", "", {"before": [0.5, "0009"]}, False),
]
"""ENTRIES and more data: doubles (subnormal included), nesting, empty keys and values."""


def _data_rows() -> list[tuple[Any, ...]]:
    """Rows as appends stored them from 0021 to 0023: data in the column and in the tail."""
    time = entry_wire.time_field(TIME)
    return [
        (seq, seq, role, content, _json(data))
        + (entry_wire.stored_parts(seq, role, content, data, time) if kept else (None, None))
        for seq, role, content, data, kept in DATA_ENTRIES
    ]


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _check_0023(
    up: dict[int, tuple[Any, bytes | None, bytes | None]],
    down: dict[int, tuple[Any, bytes | None, bytes | None]],
    before: dict[int, tuple[Any, bytes | None, bytes | None]],
) -> None:
    """After 0023 (`up`: seq -> data, wire, tail) only entries without a tail keep the
    column, and every entry's data reads back from the row; after its rollback
    (`down`) the column is back for all, as it was `before` (jsonb prints 1e300 as
    an integer: the column's reading, not the rollback's); the wire forms never
    change."""
    for seq, role, content, data, kept in DATA_ENTRIES:
        column, wire, tail = up[seq]
        parsed = json.loads(column) if isinstance(column, str) else column
        assert (parsed is None) if kept else (parsed == data)
        assert wire == before[seq][1]
        assert wire == (expected_wire(seq, role, content, data) if kept else None)
        assert entry_wire.stored_data(parsed, tail) == data
        column, wire, _ = down[seq]
        parsed = json.loads(column) if isinstance(column, str) else column
        was = json.loads(before[seq][0]) if isinstance(before[seq][0], str) else before[seq][0]
        assert parsed == was and (data is None or type(parsed) is dict)
        assert json.dumps(parsed, sort_keys=True) == json.dumps(was, sort_keys=True)
        assert wire == before[seq][1]


def test_sqlite_migration_0023_keeps_data_in_the_tail_and_its_rollback_decodes_it(
    sqlite_path: Path,
) -> None:
    backend = sqlite_backend(f"sqlite:///{sqlite_path}")
    migrations = read_migrations(str(ROOT / "sqlite"))
    with backend.lock():
        backend.apply_migrations(backend.to_apply(migrations.filter(lambda m: m.id < "0023")))
    micros = int(TIME.timestamp() * 1_000_000)
    read = f"SELECT seq, data, {SQLITE_WIRE}, wire_tail FROM transcript_entries"
    with sqlite3.connect(sqlite_path) as conn:
        conn.executemany(
            "INSERT INTO transcript_entries (namespace, transcript_id, seq, start_offset, size,"
            " role, content, data, wire_head, wire_tail, create_time)"
            f" VALUES ('ns', 't', ?, ?, 1, ?, ?, ?, ?, ?, {micros})",
            _data_rows(),
        )
        before = {row[0]: row[1:] for row in conn.execute(read)}
    with backend.lock():
        backend.apply_migrations(backend.to_apply(migrations))
    with sqlite3.connect(sqlite_path) as conn:
        up = {row[0]: row[1:] for row in conn.execute(read)}
    with backend.lock():
        backend.rollback_migrations(
            backend.to_rollback(migrations.filter(lambda m: m.id >= "0023"))
        )
    with sqlite3.connect(sqlite_path) as conn:
        down = {row[0]: row[1:] for row in conn.execute(read)}
    backend.connection.close()
    _check_0023(up, down, before)


def test_postgres_migration_0023_keeps_data_in_the_tail_and_its_rollback_decodes_it(
    pg: PgServer,
) -> None:
    url = pg.create_database(f"data_{uuid.uuid4().hex[:8]}")
    backend = get_backend(url.replace("postgresql://", "postgresql+psycopg://"))
    migrations = read_migrations(str(ROOT / "postgres"))
    with backend.lock():
        backend.apply_migrations(backend.to_apply(migrations.filter(lambda m: m.id < "0023")))
    read = f"SELECT seq, data, {PG_WIRE}, wire_tail FROM transcript_entries"

    def rows(conn: psycopg.Connection[Any]) -> dict[int, tuple[Any, bytes | None, bytes | None]]:
        return {
            seq: (
                data,
                None if wire is None else bytes(wire),
                None if tail is None else bytes(tail),
            )
            for seq, data, wire, tail in conn.execute(read)
        }

    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO transcript_entries (namespace, transcript_id, seq, start_offset, size,"
            " role, content, data, wire_head, wire_tail, create_time)"
            " VALUES ('ns', 't', %s, %s, 1, %s, %s, %s::jsonb, %s, %s, %s)",
            [(*row, TIME) for row in _data_rows()],
        )
        before = rows(conn)
    with backend.lock():
        backend.apply_migrations(backend.to_apply(migrations))
    with psycopg.connect(url, autocommit=True) as conn:
        up = rows(conn)
    with backend.lock():
        backend.rollback_migrations(
            backend.to_rollback(migrations.filter(lambda m: m.id >= "0023"))
        )
    backend.connection.close()
    with psycopg.connect(url, autocommit=True) as conn:
        down = rows(conn)
    _check_0023(up, down, before)
