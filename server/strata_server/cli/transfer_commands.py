"""`strata export` and `strata import`: namespace archives to and from a running
server (`strata.Client.export_namespace` / `import_namespace`), with progress
bars and a result table. README "Export and import" has the archive format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from strata_server.cli.common import (
    DEFAULT_SERVER,
    PhaseBars,
    ServerOpt,
    TlsCaOpt,
    TokenOpt,
    connect,
    fail,
    size,
)
from strata_server.core.transfer_format import BLOBS, KINDS

Policy = Literal["skip", "overwrite", "fail"]
_POLICIES: dict[str, Policy] = {"skip": "skip", "overwrite": "overwrite", "fail": "fail"}


def export(
    namespace: Annotated[str, typer.Argument(help="The namespace to export.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The archive file to write.")],
    owner: Annotated[
        str, typer.Option(help="Only this owner's records, transcripts and artifacts.")
    ] = "",
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
) -> None:
    """Export a namespace (or one owner's data) to an archive file, with progress bars."""
    with connect(server, token, tls_ca) as client, PhaseBars() as bars:
        summary = client.export_namespace(
            output, owner=owner, progress=bars.update, namespace=namespace
        )
    table = Table("kind", "count", title=f"exported {summary.namespace} to {output}")
    for kind in (*KINDS, BLOBS):
        table.add_row(kind, f"{summary.counts.get(kind, 0):,}")
    table.add_row("archive", size(summary.archive_bytes))
    Console().print(table)


def import_(
    archive: Annotated[Path, typer.Argument(help="An archive made by `strata export`.")],
    namespace: Annotated[
        str, typer.Option("--namespace", "-n", help="Import into this namespace instead.")
    ] = "",
    on_conflict: Annotated[
        str, typer.Option(help="What to do with ids already stored: skip, overwrite or fail.")
    ] = "fail",
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
) -> None:
    """Import an archive into a namespace: all of it or, on any error, nothing."""
    policy = _POLICIES.get(on_conflict)
    if policy is None:
        raise fail(f"--on-conflict must be skip, overwrite or fail, not {on_conflict!r}")
    try:
        archive.stat()
    except OSError as error:
        raise fail(f"cannot read {archive}: {error.strerror}") from None
    with connect(server, token, tls_ca) as client, PhaseBars() as bars:
        result = client.import_namespace(
            archive,
            into=namespace or None,
            on_conflict=policy,
            progress=bars.update,
        )
    title = f"imported {archive} into {result.namespace}"
    if result.source_namespace != result.namespace:
        title += f" (exported from {result.source_namespace})"
    table = Table("kind", "imported", "skipped", "overwritten", title=title)
    for count in result.counts:
        table.add_row(
            count.kind, f"{count.imported:,}", f"{count.skipped:,}", f"{count.overwritten:,}"
        )
    Console().print(table)
    typer.echo(f"new blob bytes stored: {size(result.new_blob_bytes)}")


def register(app: typer.Typer) -> None:
    """Add `export` and `import` to the `strata` command."""
    app.command()(export)
    app.command("import")(import_)
