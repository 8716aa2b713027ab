"""`strata search`: one search across records, transcript entries and artifacts
on a running server (SearchService.Search), printed as a table, best first; and
`strata reindex`, which builds the artifact-text index that search reads
(AdminService.ReindexArtifacts)."""

from __future__ import annotations

import itertools
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from strata_server.cli.common import (
    DEFAULT_SERVER,
    AllNamespacesOpt,
    NamespaceOpt,
    ServerOpt,
    SinceOpt,
    TlsCaOpt,
    TokenOpt,
    UntilOpt,
    as_utc,
    connect,
    with_progress_bar,
)

KIND_NAMES = ("record", "transcript-entry", "artifact", "artifact-text")
RebuildOpt = Annotated[bool, typer.Option("--rebuild", help="Index every text artifact again.")]


def search(
    query: Annotated[str, typer.Argument(help="Words to find; every word must occur.")],
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    namespace: NamespaceOpt = "default",
    kind: Annotated[
        list[str] | None,
        typer.Option(help=f"Only this kind (repeatable): {', '.join(KIND_NAMES)}."),
    ] = None,
    collection: Annotated[
        list[str] | None, typer.Option(help="Only records of this collection (repeatable).")
    ] = None,
    owner: Annotated[str, typer.Option(help="Only entries and artifacts of this owner.")] = "",
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="Most hits to show.")] = 20,
) -> None:
    """Search records, transcript entries and artifacts at once, best first."""
    kinds = [name.replace("-", "_") for name in kind or []]
    unknown = [name for name in kind or [] if name not in KIND_NAMES]
    if unknown:
        typer.echo(f"unknown kind {unknown[0]!r}; use one of {', '.join(KIND_NAMES)}", err=True)
        raise typer.Exit(2)
    table = Table("score", "kind", "target", "owner", "time (UTC)", "snippet")
    for column in table.columns[:3]:
        column.no_wrap = True  # what a hit is stays whole; the snippet wraps
    shown = 0
    with connect(server, token, tls_ca) as client:
        hits = client.search(
            query,
            kinds=kinds,
            collections=collection or [],
            owner=owner,
            start_time=as_utc(since),
            end_time=as_utc(until),
            page_size=min(limit, 1000),
            namespace=namespace,
        )
        for hit in itertools.islice(hits, limit):
            first, second = hit.target
            table.add_row(
                f"{hit.score:.3f}",
                hit.kind.replace("_", "-"),
                f"{first}/{second}" if hit.kind != "transcript_entry" else f"{first}#{second}",
                hit.owner,
                hit.time.isoformat(timespec="seconds"),
                hit.snippet,
            )
            shown += 1
    Console().print(table)
    if shown == 0:
        typer.echo("nothing matches", err=True)


def reindex(
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    namespace: NamespaceOpt = "default",
    all_namespaces: AllNamespacesOpt = False,
    rebuild: RebuildOpt = False,
) -> None:
    """Index the text of text artifacts that have none (stored before search
    existed, or imported), with a progress bar; run it again to continue one that
    stopped. With --rebuild, index every text artifact again."""
    report = with_progress_bar(
        server,
        token,
        tls_ca,
        lambda client: client.reindex_artifacts,
        namespace=namespace,
        all_namespaces=all_namespaces,
        rebuild=rebuild,
    )
    typer.echo(
        f"{report.artifacts} artifacts: {report.indexed} indexed, {report.already_indexed}"
        f" already indexed, {report.not_text} not text, {report.failed} failed"
    )
    if report.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `strata search` and `strata reindex` to the `strata` command."""
    app.command()(search)
    app.command()(reindex)
