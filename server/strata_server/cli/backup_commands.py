"""`strata backup` and `strata restore`: the embedded shape's backups, on demand.

Like `migrate`, these work on the files directly, not through a server: a backup is
online (SQLite's backup API, taken while the server writes; storage/sqlite/backups.py
says why the blobs copied after it match), and a restore fills an empty data
directory that no server uses yet. The production shape is backed up with pg_dump
and the bucket's own tools (docs/recovery.md).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from strata_server.cli.common import ConfigOpt, fail
from strata_server.config import ConfigError, load_settings
from strata_server.core.errors import StrataError


def backup(
    database_url: Annotated[
        str | None, typer.Option(help="The SQLite database (env STRATA_DATABASE_URL).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where the blobs are (env STRATA_DATA_DIR).")
    ] = None,
    to: Annotated[
        Path | None,
        typer.Option(
            "--to", help="The backup folder (env STRATA_BACKUP_DIR; default data/backups)."
        ),
    ] = None,
    keep: Annotated[
        int | None, typer.Option(min=1, help="Backups to keep (env STRATA_BACKUP_KEEP).")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Back up the SQLite database and the blobs it names, online, into a new
    folder; then remove the oldest backups beyond the count kept."""
    from strata_server.backends import StartupError, open_backups

    try:
        settings = load_settings(
            database_url=database_url,
            data_dir=data_dir,
            backup_dir=to,
            backup_keep=keep,
            config=config,
        )
        store = open_backups(settings)
    except (ConfigError, StartupError) as error:
        raise fail(str(error)) from None
    if store is None:
        raise fail(
            "strata backup copies a SQLite file with its blobs on local disk, which this "
            "configuration does not have (an in-memory database keeps nothing; back up "
            "PostgreSQL with pg_dump and an S3 bucket with its own tools: docs/recovery.md)"
        )
    try:
        summary = asyncio.run(store.backup())
    except StrataError as error:
        raise fail(error.message) from None
    folder = settings.backup_dir or settings.data_dir / "backups"
    typer.echo(
        f"{folder / summary.name}: database {summary.database_bytes:,} bytes, "
        f"{summary.blobs:,} blobs ({summary.blob_bytes:,} bytes)"
    )
    if summary.missing_blobs:
        typer.echo(
            f"warning: {len(summary.missing_blobs)} blob(s) the database names were already "
            "missing from the data directory (strata check --all lists their artifacts)",
            err=True,
        )


def restore(
    backup_path: Annotated[Path, typer.Argument(metavar="BACKUP", help="A backup folder.")],
    data_dir: Annotated[Path, typer.Option(help="The data directory to fill: new or empty.")],
) -> None:
    """Restore a backup into an empty data directory (a non-empty one is refused)."""
    from strata_server.storage.sqlite.backups import restore as restore_backup

    try:
        summary = asyncio.run(restore_backup(backup_path, data_dir))
    except StrataError as error:
        raise fail(error.message) from None
    database = (data_dir / "strata.db").resolve()
    typer.echo(
        f"restored {summary.name} ({summary.blobs:,} blobs) into {data_dir}; serve it with "
        f"--data-dir {data_dir} --database-url sqlite:///{database}"
    )


def register(app: typer.Typer) -> None:
    """Add `backup` and `restore` to the `strata` command."""
    app.command()(backup)
    app.command()(restore)
