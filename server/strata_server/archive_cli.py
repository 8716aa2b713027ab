"""`strata export` and `strata import`: namespace archives to and from a running
server over gRPC (AdminService.ExportNamespace / ImportNamespace), with progress
bars and a result table. README "Export and import" has the archive format."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from strata.v1 import admin_pb2
from strata_server.cli_common import (
    DEFAULT_SERVER,
    PhaseBars,
    ServerOpt,
    TlsCaOpt,
    TokenOpt,
    admin_stub,
    fail,
    size,
)
from strata_server.core.archive import BLOBS, KINDS

CHUNK = 256 << 10
"""Archive bytes per ImportNamespace message."""

_POLICIES = {
    "skip": admin_pb2.CONFLICT_POLICY_SKIP,
    "overwrite": admin_pb2.CONFLICT_POLICY_OVERWRITE,
    "fail": admin_pb2.CONFLICT_POLICY_FAIL,
}


def export(
    namespace: Annotated[str, typer.Argument(help="The namespace to export.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The archive file to write.")],
    owner: Annotated[str, typer.Option(help="Only this owner's transcripts and artifacts.")] = "",
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
) -> None:
    """Export a namespace (or one owner's data) to an archive file, with progress bars."""
    partial = output.with_name(output.name + ".partial")
    summary = None
    request = admin_pb2.ExportNamespaceRequest(namespace=namespace, owner=owner)
    try:
        with (
            partial.open("wb") as file,
            admin_stub(server, token, tls_ca) as stub,
            PhaseBars() as bars,
        ):
            for event in stub.ExportNamespace(request):
                part = event.WhichOneof("event")
                if part == "chunk":
                    file.write(event.chunk)
                elif part == "progress":
                    bars.update(event.progress)
                else:
                    summary = event.summary
            file.flush()
            os.fsync(file.fileno())
        if summary is None:  # pragma: no cover - the server always ends with it
            raise fail("the server ended the export without its summary")
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
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
        total = archive.stat().st_size
    except OSError as error:
        raise fail(f"cannot read {archive}: {error.strerror}") from None
    header = admin_pb2.ImportHeader(namespace=namespace, on_conflict=policy, size=total)

    def messages() -> Iterator[admin_pb2.ImportNamespaceRequest]:
        yield admin_pb2.ImportNamespaceRequest(header=header)
        with archive.open("rb") as file:
            while data := file.read(CHUNK):
                yield admin_pb2.ImportNamespaceRequest(chunk=data)

    result = None
    with admin_stub(server, token, tls_ca) as stub, PhaseBars() as bars:
        for event in stub.ImportNamespace(messages()):
            if event.HasField("progress"):
                bars.update(event.progress)
            else:
                result = event.result
    if result is None:  # pragma: no cover - the server always ends with it
        raise fail("the server ended the import without its result")
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
