"""The disaster-recovery rehearsals of docs/recovery.md, embedded shape: a damaged
SQLite file is reported by CheckIntegrity and recovered by restoring a backup; a
lost blob directory is reported artifact by artifact (downloads fail DATA_LOSS)
and recovered by copying the backup's blobs back; blobs no row names (a restore
whose blob copy is newer than its database) are reported with their bytes and
swept by the repair."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import grpc

from strata.v1 import artifacts_pb2_grpc
from tests.contract.artifacts_support import download, random_bytes, upload
from tests.ops.recovery_support import integrity, read_data_set, strata, write_data_set
from tests.support.server import StrataProcess


def backed_up_server(
    database_url: Callable[[str], str], tmp_path: Path
) -> tuple[StrataProcess, Path, object]:
    """A stopped server that holds the data set, its one backup, and what it held."""
    server = StrataProcess(database_url("sqlite"), tmp_path / "server")
    server.start()
    try:
        with server.channel() as channel:
            write_data_set(channel)
            held = read_data_set(channel)
        made = strata(
            "backup",
            "--database-url",
            server.database_url,
            "--data-dir",
            str(server.workdir / "data"),
            "--to",
            str(tmp_path / "backups"),
            cwd=tmp_path,
        )
        assert made.returncode == 0, made.stderr
    finally:
        server.stop()
    [backup] = (tmp_path / "backups").iterdir()
    return server, backup, held


def test_a_damaged_sqlite_file_is_reported_and_a_backup_restores_it(
    database_url: Callable[[str], str], tmp_path: Path
):
    server, backup, held = backed_up_server(database_url, tmp_path)
    path = Path(server.database_url.removeprefix("sqlite:///"))
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        [(root,)] = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = 'records'"
        ).fetchall()
    with path.open("r+b") as file:  # scribble over the records' page, as a bad disk would
        file.seek((root - 1) * page_size)
        file.write(b"\xa5" * page_size)

    server.start()
    try:
        with server.channel() as channel:
            report = integrity(channel)
    finally:
        server.stop()
    damage = [f for f in report.findings if f.check == "database_file"]
    assert damage and not any(f.repairable for f in damage), list(report.findings)

    restored = tmp_path / "restored"
    done = strata("restore", str(backup), "--data-dir", str(restored), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    copy = StrataProcess(
        f"sqlite:///{restored / 'strata.db'}", tmp_path / "copy", STRATA_DATA_DIR=str(restored)
    )
    copy.start()
    try:
        with copy.channel() as channel:
            assert read_data_set(channel) == held
            assert list(integrity(channel).findings) == []
    finally:
        copy.stop()


def test_a_lost_blob_directory_is_reported_and_the_backups_blobs_restore_it(
    database_url: Callable[[str], str], tmp_path: Path
):
    server, backup, held = backed_up_server(database_url, tmp_path)
    data = server.workdir / "data"
    shutil.rmtree(data / "blobs")

    server.start()
    try:
        with server.channel() as channel:
            report = integrity(channel)
            lost = {f.entity_id for f in report.findings if f.entity == "artifact"}
            assert lost == set(held.artifacts)  # type: ignore[attr-defined]
            assert all("missing" in f.problem and not f.repairable for f in report.findings)
            arts = artifacts_pb2_grpc.ArtifactServiceStub(channel)
            try:
                download(arts, next(iter(lost)))
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.DATA_LOSS
            else:
                raise AssertionError("a download of a lost blob succeeded")

            # The repair: the backup's blobs back in place (same layout), no restart.
            shutil.copytree(backup / "blobs", data / "blobs", dirs_exist_ok=True)
            assert list(integrity(channel, verify_blobs=True).findings) == []
            assert read_data_set(channel) == held
    finally:
        server.stop()


def test_blobs_no_row_names_are_reported_with_their_bytes_and_swept(
    database_url: Callable[[str], str], tmp_path: Path
):
    # The usual cause: a restore whose blob copy is newer than its database copy.
    server, backup, held = backed_up_server(database_url, tmp_path)
    server.start()
    try:
        with server.channel() as channel:
            late = upload(
                artifacts_pb2_grpc.ArtifactServiceStub(channel),
                random_bytes(50_000),
                name="after-the-backup.bin",
            )
    finally:
        server.stop()
    restored = tmp_path / "restored"
    done = strata("restore", str(backup), "--data-dir", str(restored), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    shutil.copytree(server.workdir / "data" / "blobs", restored / "blobs", dirs_exist_ok=True)

    copy = StrataProcess(
        f"sqlite:///{restored / 'strata.db'}",
        tmp_path / "copy",
        STRATA_DATA_DIR=str(restored),
        STRATA_BLOB_SWEEP_GRACE_SECONDS="0",
    )
    copy.start()
    try:
        with copy.channel() as channel:
            assert read_data_set(channel) == held
            report = integrity(channel, verify_blobs=True)
            assert {f.entity for f in report.findings} == {"blob"}, list(report.findings)
            orphans = {f.entity_id: f.bytes for f in report.findings}
            assert orphans == {late.sha256: late.stored_size}
            assert report.unreferenced_bytes == late.stored_size

            integrity(channel, repair=True)  # the sweep `strata check --repair` runs
            assert list(integrity(channel, verify_blobs=True).findings) == []
            assert read_data_set(channel) == held
    finally:
        copy.stop()
