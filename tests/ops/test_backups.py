"""Backups of the embedded shape, as an operator makes them: `strata backup` while
the server writes, `strata restore` into an empty directory and a server started on
it holds the same records, transcript entries and artifact bytes (and nothing
written after the backup); a non-empty directory is refused; scheduled backups are
kept by count; the production shape refuses scheduled backups."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from strata_server.core import backup_rules
from tests.ops.recovery_support import integrity, read_data_set, strata, write_data_set
from tests.support.server import StrataProcess


def backup_args(server: StrataProcess, folder: Path) -> list[str]:
    return [
        "backup",
        "--database-url",
        server.database_url,
        "--data-dir",
        str(server.workdir / "data"),
        "--to",
        str(folder),
    ]


def test_backup_and_restore_round_trip(database_url: Callable[[str], str], tmp_path: Path):
    source = StrataProcess(database_url("sqlite"), tmp_path / "source")
    source.start()
    try:
        with source.channel() as channel:
            write_data_set(channel)
            before = read_data_set(channel)
            made = strata(*backup_args(source, tmp_path / "backups"), cwd=tmp_path)
            assert made.returncode == 0, made.stderr
            write_data_set(channel, tag="-later")  # after the backup: not in it
    finally:
        source.stop()
    [backup] = sorted((tmp_path / "backups").iterdir())
    assert backup.name.startswith(backup_rules.PREFIX) and str(backup) in made.stdout
    summary = backup_rules.BackupSummary.from_json((backup / "backup.json").read_text())
    assert summary.blobs == 2 and summary.missing_blobs == []

    restored = tmp_path / "restored"
    done = strata("restore", str(backup), "--data-dir", str(restored), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    copy = StrataProcess(
        f"sqlite:///{restored / 'strata.db'}", tmp_path / "copy", STRATA_DATA_DIR=str(restored)
    )
    copy.start()
    try:
        with copy.channel() as channel:
            after = read_data_set(channel)
            report = integrity(channel, verify_blobs=True)
    finally:
        copy.stop()
    assert after == before
    assert len(after.records) == 20 and len(after.entries) == 50 and len(after.artifacts) == 2
    assert list(report.findings) == []


def test_restore_refuses_a_directory_that_is_not_empty(
    database_url: Callable[[str], str], tmp_path: Path
):
    source = StrataProcess(database_url("sqlite"), tmp_path / "source")
    source.start()
    try:
        made = strata(*backup_args(source, tmp_path / "backups"), cwd=tmp_path)
        assert made.returncode == 0, made.stderr
    finally:
        source.stop()
    [backup] = (tmp_path / "backups").iterdir()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "strata.db").write_bytes(b"someone's data")
    refused = strata("restore", str(backup), "--data-dir", str(busy), cwd=tmp_path)
    assert refused.returncode == 2 and "not empty" in refused.stderr
    assert [p.name for p in busy.iterdir()] == ["strata.db"]
    assert (busy / "strata.db").read_bytes() == b"someone's data"
    not_a_backup = strata("restore", str(busy), "--data-dir", str(tmp_path / "new"), cwd=tmp_path)
    assert not_a_backup.returncode == 2 and "not a complete Strata backup" in not_a_backup.stderr
    assert not (tmp_path / "new").exists()


def test_scheduled_backups_are_kept_by_count(database_url: Callable[[str], str], tmp_path: Path):
    folder = tmp_path / "backups"
    server = StrataProcess(
        database_url("sqlite"),
        tmp_path / "server",
        STRATA_BACKUP_INTERVAL_SECONDS="0.3",
        STRATA_BACKUP_KEEP="2",
        STRATA_BACKUP_DIR=str(folder),
    )
    server.start()
    seen: set[str] = set()
    try:
        with server.channel() as channel:
            write_data_set(channel)
        before = {p.name for p in folder.iterdir()} if folder.exists() else set()
        deadline = time.monotonic() + 30
        complete: set[str] = set()
        # Two backups begun after the data was written, and pruned back to the count.
        while len(seen - before) < 2 or len(seen) < 4 or len(complete) != 2:
            assert time.monotonic() < deadline, f"backups seen: {sorted(seen)}"
            names = {p.name for p in folder.iterdir()} if folder.exists() else set()
            complete = {n for n in names if backup_rules.PARTIAL not in n}
            assert len(complete) <= 3, complete  # the newest lands before the oldest goes
            seen |= complete
            time.sleep(0.05)
    finally:
        server.stop()
    kept = sorted(p for p in folder.iterdir() if backup_rules.PARTIAL not in p.name)
    assert len(kept) <= 3 and kept[-1].name == max(seen | {p.name for p in kept})
    newest = kept[-1]
    summary = backup_rules.BackupSummary.from_json((newest / "backup.json").read_text())
    assert summary.blobs == 2


def test_the_production_shape_has_no_file_backups(
    database_url: Callable[[str], str], tmp_path: Path
):
    url = database_url("postgres")
    server = StrataProcess(url, tmp_path / "pg", STRATA_BACKUP_INTERVAL_SECONDS="60")
    with pytest.raises(RuntimeError, match="STRATA_BACKUP_INTERVAL_SECONDS"):
        server.start()
    refused = strata("backup", "--database-url", url, cwd=tmp_path)
    assert refused.returncode == 2 and "pg_dump" in refused.stderr


def test_a_restore_that_fails_leaves_nothing_behind(tmp_path: Path):
    backup = tmp_path / backup_rules.backup_name(datetime.now(UTC))
    (backup / "blobs" / "sha256").mkdir(parents=True)
    (backup / "strata.db").write_bytes(b"a database")
    (backup / "blobs" / "sha256" / "gone").symlink_to(tmp_path / "nowhere")  # unreadable
    summary = backup_rules.BackupSummary(backup.name, datetime.now(UTC), 10, 1, 1)
    (backup / backup_rules.MANIFEST).write_text(summary.to_json())
    target = tmp_path / "new"
    failed = strata("restore", str(backup), "--data-dir", str(target), cwd=tmp_path)
    assert failed.returncode == 2 and "restore" in failed.stderr
    assert not target.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    again = strata("restore", str(backup), "--data-dir", str(empty), cwd=tmp_path)
    assert again.returncode == 2 and list(empty.iterdir()) == []
