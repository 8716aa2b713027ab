"""Online backups of the embedded shape (SQLite file + blob directory) and their
restore into an empty data directory. core/backup_rules.py says what a backup holds.

**Why the copy is consistent.** A blob is published (fsynced, linked) before any
row names it, so the order is: the database first, with SQLite's online backup API
(a consistent snapshot while the server writes), then exactly the blobs the
snapshot's artifact rows name. Every one of those was on disk before the snapshot.
The one way it could go missing before it is copied is the orphan sweep, after its
artifact is deleted in the meantime: so before the snapshot every blob a row names
is pinned (`blob_pins`, which the sweep honours under the blob's lock; uploads use
the same pins), and the pins are dropped when the copy is done (or expire after
PIN_TTL if the backup dies). Blobs the snapshot names but the directory lacked
already are listed in the manifest, not invented.

A backup is written under a `.partial` name and renamed when complete, its
manifest last; then the oldest beyond `keep` are removed. Memory is one copy
buffer; the statements are SQL of this adapter only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from strata_server.core import backup_rules
from strata_server.core.artifact_rules import Compression
from strata_server.core.backup_rules import BackupSummary
from strata_server.core.errors import FailedPrecondition, InvalidArgument, Unavailable
from strata_server.core.values import frozen
from strata_server.storage.blobs import layout
from strata_server.storage.sqlite.dialect import to_micros

PIN_TTL = timedelta(hours=6)
"""How long a backup's blob pins outlive a backup that died without dropping them."""

PIN = """
INSERT OR IGNORE INTO blob_pins (namespace, upload_id, sha256, expire_time)
SELECT DISTINCT '', ? || sha256, sha256, ? FROM artifacts
"""
UNPIN = "DELETE FROM blob_pins WHERE namespace = '' AND upload_id LIKE ? || '%'"
NAMED = "SELECT DISTINCT sha256, compression FROM artifacts ORDER BY sha256"


@frozen
class SqliteBackups:
    """Backups of one SQLite file and its data directory's blobs into `folder`."""

    database: Path
    data_dir: Path
    folder: Path
    keep: int

    async def backup(self) -> BackupSummary:
        """Make one backup now (see the module docstring), then prune to `keep`."""
        return await asyncio.to_thread(self._backup_sync)

    def _backup_sync(self) -> BackupSummary:
        if not self.database.is_file():
            raise FailedPrecondition(f"there is no database at {self.database} to back up")
        now = datetime.now(UTC)
        name = backup_rules.backup_name(now)
        work = self.folder / (name + backup_rules.PARTIAL)
        pin = f"backup:{name}:"
        try:
            work.mkdir(parents=True)
            with _connect(self.database) as live:
                live.execute(PIN, (pin, to_micros(now + PIN_TTL)))
            try:
                summary = self._copy(name, now, work)
            finally:
                with _connect(self.database) as live:
                    live.execute(UNPIN, (pin,))
            (work / backup_rules.MANIFEST).write_text(summary.to_json())
            _fsync_tree(work)
            work.rename(self.folder / name)
            for old in backup_rules.to_remove([p.name for p in self.folder.iterdir()], self.keep):
                shutil.rmtree(self.folder / old, ignore_errors=True)
        except (OSError, sqlite3.Error) as error:
            shutil.rmtree(work, ignore_errors=True)
            raise Unavailable(f"the backup into {self.folder} failed: {error}") from error
        return summary

    def _copy(self, name: str, now: datetime, work: Path) -> BackupSummary:
        copy_path = work / backup_rules.DATABASE
        with _connect(self.database) as source, _connect(copy_path) as copy:
            source.backup(copy)
        blobs = blob_bytes = 0
        missing: list[str] = []
        with _connect(copy_path) as copy:
            named = copy.execute(NAMED).fetchall()
        for sha256, compression in named:
            key = layout.key(sha256, Compression(compression))
            target = work / key
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(self.data_dir / key, target)
            except FileNotFoundError:
                missing.append(sha256)
                continue
            blobs += 1
            blob_bytes += target.stat().st_size
        return BackupSummary(name, now, copy_path.stat().st_size, blobs, blob_bytes, missing)


def read_backup(backup: Path) -> BackupSummary:
    """The summary of a complete backup; InvalidArgument for anything else."""
    try:
        return BackupSummary.from_json((backup / backup_rules.MANIFEST).read_text())
    except (OSError, ValueError, KeyError) as error:
        raise InvalidArgument(
            f"{backup} is not a complete Strata backup (no readable {backup_rules.MANIFEST})"
        ) from error


async def restore(backup: Path, data_dir: Path) -> BackupSummary:
    """Copy a backup into `data_dir`, which must be empty or absent (FailedPrecondition
    otherwise: a restore never mixes with data already there). The database
    becomes `<data_dir>/strata.db`, the blobs `<data_dir>/blobs/`."""
    return await asyncio.to_thread(_restore_sync, backup, data_dir)


def _restore_sync(backup: Path, data_dir: Path) -> BackupSummary:
    summary = read_backup(backup)
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise FailedPrecondition(f"{data_dir} is not empty: restore into an empty or new directory")
    created = not data_dir.exists()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(backup / backup_rules.DATABASE, data_dir / backup_rules.DATABASE)
        if (backup / "blobs").is_dir():
            shutil.copytree(backup / "blobs", data_dir / "blobs")
        _fsync_tree(data_dir)
    except OSError as error:
        # Nothing half-restored stays: the directory was empty (or absent) before.
        with contextlib.suppress(OSError):
            for child in data_dir.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
            if created:
                data_dir.rmdir()
        raise Unavailable(f"the restore into {data_dir} failed: {error}") from error
    return summary


@contextlib.contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    """An autocommit connection, closed on leaving (sqlite3's own `with` only commits)."""
    with contextlib.closing(sqlite3.connect(path, timeout=30, isolation_level=None)) as conn:
        yield conn


def _fsync_tree(root: Path) -> None:
    """Make the copied files and directories durable before the backup is named."""
    for directory, _, files in os.walk(root):
        for name in files:
            fd = os.open(Path(directory) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
