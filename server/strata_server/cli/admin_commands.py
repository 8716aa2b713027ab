"""The operator commands of `strata` that ask a running server (audit, index,
cleanup, usage, check, quota), through `strata.Client`.

Unlike `serve` and `migrate`, these never open the database: they are clients of
the server at `--server` (or STRATA_SERVER), local or remote, and print results
as tables. A server that cannot be reached or refuses a request ends the command
with one line on stderr and exit status 2 (`common.connect`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from datetime import UTC
from typing import Annotated

import typer
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console
from rich.table import Table

from strata.v1 import access_pb2, admin_pb2
from strata_server.cli.common import (
    DEFAULT_SERVER,
    NamespaceOpt,
    ServerOpt,
    SinceOpt,
    StepBar,
    TlsCaOpt,
    TokenOpt,
    UntilOpt,
    as_utc,
    connect,
    size,
    with_progress_bar,
)
from strata_server.cli.usage_table import usage_table


def audit(
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    namespace: NamespaceOpt = "default",
    entity: Annotated[str, typer.Option(help="record, job, ...")] = "",
    entity_id: Annotated[str, typer.Option("--id", help="e.g. tickets/t1")] = "",
    actor: Annotated[str, typer.Option(help="Only this actor's changes.")] = "",
    action: Annotated[str, typer.Option(help="create, update, delete, enqueue, ack, ...")] = "",
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="Most entries to show.")] = 50,
) -> None:
    """Show audit entries, newest first."""
    table = Table("seq", "time (UTC)", "actor", "action", "entity", "id", "version", "fields")
    shown = 0
    with connect(server, token, tls_ca) as client:
        entries = client.list_audit_entries(
            entity=entity,
            entity_id=entity_id,
            actor=actor,
            action=action,
            since=as_utc(since),
            until=as_utc(until),
            page_size=min(limit, 1000),
            namespace=namespace,
        )
        for entry in itertools.islice(entries, limit):
            table.add_row(
                str(entry.seq),
                entry.time.ToDatetime().isoformat(timespec="milliseconds"),
                entry.actor,
                entry.action,
                entry.entity,
                # A purge batch's entry stands for the records it lists.
                f"{entry.entity_id} ({len(entry.entity_ids)} records)"
                if entry.entity_ids
                else entry.entity_id,
                str(entry.version),
                ", ".join(entry.changed_fields),
            )
            shown += 1
    Console().print(table)
    if shown == 0:
        typer.echo("no audit entries match", err=True)


index_app = typer.Typer(
    help="Declare, list and drop secondary indexes on a record field.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
CollectionArg = Annotated[str, typer.Argument(help="The collection.")]
FieldArg = Annotated[str, typer.Argument(help="The data field, as filters name it: data.status")]


def _index_table(indexes: Iterable[admin_pb2.Index]) -> Table:
    table = Table("collection", "field", "ready", "database index", "declared (UTC)")
    for index in indexes:
        table.add_row(
            index.collection,
            index.field,
            "yes" if index.ready else "building",
            index.index_name,
            index.create_time.ToDatetime().isoformat(timespec="seconds"),
        )
    return table


@index_app.command("create")
def index_create(
    collection: CollectionArg,
    field: FieldArg,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    namespace: NamespaceOpt = "default",
) -> None:
    """Declare an index and build it (without blocking writes on PostgreSQL),
    with a progress bar."""
    with connect(server, token, tls_ca) as client, StepBar() as bar:
        built = client.create_index(collection, field, progress=bar.update, namespace=namespace)
    Console().print(_index_table([built]))


@index_app.command("list")
def index_list(
    collection: Annotated[str, typer.Argument(help="Only this collection's.")] = "",
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    namespace: NamespaceOpt = "default",
) -> None:
    """Show the declared indexes."""
    with connect(server, token, tls_ca) as client:
        found = client.list_indexes(collection, namespace=namespace)
    Console().print(_index_table(found))
    if not found:
        typer.echo("no indexes declared", err=True)


@index_app.command("drop")
def index_drop(
    collection: CollectionArg,
    field: FieldArg,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    namespace: NamespaceOpt = "default",
) -> None:
    """Remove a declared index."""
    with connect(server, token, tls_ca) as client:
        client.drop_index(collection, field, namespace=namespace)
    typer.echo(f"dropped the index on {field} of {collection}")


def cleanup(
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    namespace: NamespaceOpt = "default",
    all_namespaces: Annotated[
        bool, typer.Option("--all", help="Every namespace, expired records included.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would go.")] = False,
    status: Annotated[
        bool,
        typer.Option(
            "--status", help="Show the scheduled cleanup's passes instead of running one."
        ),
    ] = False,
    owner: Annotated[
        str,
        typer.Option(
            help="Instead of the policies, remove this owner's records, transcripts "
            "and artifacts from the namespace."
        ),
    ] = "",
) -> None:
    """Run a cleanup now (retention policies, expired records, completed jobs), with a
    progress bar; prints what went, or with --dry-run what would go. With --owner,
    removes everything that owner holds in the namespace instead. With --status,
    shows the scheduled pass running now and the last one, from any replica."""
    if status:
        with connect(server, token, tls_ca) as client:
            _print_status(client.cleanup_status())
        return
    report = with_progress_bar(
        server,
        token,
        tls_ca,
        lambda client: client.run_cleanup,
        namespace=namespace,
        all_namespaces=all_namespaces,
        dry_run=dry_run,
        owner=owner,
    )
    verb = "would remove" if report.dry_run else "removed"
    table = Table("step", "namespace", verb, title=f"cleanup: {report.total} {verb}")
    for done in report.steps:
        table.add_row(done.name, done.namespace or "(all)", str(done.count))
    Console().print(table)


def _print_status(found: admin_pb2.GetCleanupStatusResponse) -> None:
    if found.HasField("running"):
        now = found.running
        typer.echo(
            f"running on {now.replica} since {_when(now.start_time)}: {now.progress.phase}"
            f" {now.progress.done}/{now.progress.total}"
        )
    if not found.HasField("last"):
        typer.echo("no scheduled cleanup has finished yet")
        return
    last = found.last
    title = (
        f"last cleanup on {last.replica}, {_when(last.start_time)} to {_when(last.end_time)}:"
        f" {last.total} removed"
    )
    if last.error:
        typer.echo(f"{title}; failed: {last.error}")
        return
    table = Table("step", "namespace", "removed", title=title)
    for done in last.steps:
        table.add_row(done.name, done.namespace or "(all)", str(done.count))
    Console().print(table)


def _when(stamp: Timestamp) -> str:
    return stamp.ToDatetime(UTC).isoformat(timespec="seconds")


def usage(
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    namespace: NamespaceOpt = "default",
    all_namespaces: Annotated[bool, typer.Option("--all", help="Every namespace.")] = False,
    owner: Annotated[
        str, typer.Option(help="Only this owner's records, transcripts and artifacts.")
    ] = "",
) -> None:
    """Show what a namespace stores, by type, as a table with bars; with --owner,
    only that owner's records, transcripts and artifacts."""
    with connect(server, token, tls_ca) as client:
        found = client.usage(
            owner=owner,
            all_namespaces=all_namespaces,
            namespace=None if all_namespaces else namespace,
        )
    Console().print(usage_table(found, owner))


def check(
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    tls_ca: TlsCaOpt = None,
    namespace: NamespaceOpt = "default",
    all_namespaces: Annotated[bool, typer.Option("--all", help="Every namespace.")] = False,
    repair: Annotated[bool, typer.Option(help="Repair what is safe to repair.")] = False,
    verify_blobs: Annotated[
        bool, typer.Option("--verify-blobs", help="Read every blob and check its hash.")
    ] = False,
    sample: Annotated[
        int,
        typer.Option(
            min=0, max=100, help="Check the hash of this percent of the blobs, picked at random."
        ),
    ] = 0,
    last: Annotated[
        bool, typer.Option("--last", help="Show the last check's report instead of checking.")
    ] = False,
) -> None:
    """Check what is stored for consistency, with a progress bar; exit status 1
    when problems remain."""
    scope = None if all_namespaces else namespace
    with connect(server, token, tls_ca) as client:
        if last:
            status = client.get_integrity_status(all_namespaces=all_namespaces, namespace=scope)
            if not status.HasField("last_report"):
                typer.echo("no integrity check has run yet")
                return
            report = status.last_report
            typer.echo(f"last check finished {report.end_time.ToDatetime().isoformat()} UTC")
        else:
            with StepBar() as bar:
                report = client.check_integrity(
                    repair=repair,
                    verify_blobs=verify_blobs,
                    verify_sample_percent=sample,
                    all_namespaces=all_namespaces,
                    progress=bar.update,
                    namespace=scope,
                )
    checked = ", ".join(f"{c.count:,} {c.check}" for c in report.checked)
    table = Table("check", "namespace", "what", "problem", "repair", title=f"checked {checked}")
    for f in report.findings:
        state = "repaired" if f.repaired else ("safe" if f.repairable else "manual")
        problem = f"{f.problem} ({size(f.bytes)})" if f.bytes else f.problem
        table.add_row(f.check, f.namespace, f"{f.entity} {f.entity_id}", problem, state)
    Console().print(table)
    left = sum(1 for f in report.findings if not f.repaired)
    typer.echo(f"{len(report.findings)} problem(s), {report.repaired} repaired, {left} left")
    if report.unreferenced_bytes:
        typer.echo(f"unreferenced blobs hold {size(report.unreferenced_bytes)}")
    if left:
        raise typer.Exit(1)


quota_app = typer.Typer(
    help="Per-namespace storage quotas: bytes of records, transcript entries and "
    "artifacts (as stored) together.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


def parse_bytes(text: str) -> int:
    """A byte count as operators write it: 1048576, 512MiB, 10GB (KB, MB, GB, TB are
    powers of 1000; KiB, MiB, GiB, TiB of 1024)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise typer.BadParameter(f"{text!r} is not a size: write e.g. 1048576, 512MiB or 10GB")
    return int(float(match.group(1)) * _UNITS[unit])


def _quota_table(quotas: Iterable[access_pb2.Quota]) -> Table:
    table = Table("namespace", "used", "quota", "used %")
    for quota in quotas:
        share = f"{100 * quota.used_bytes / quota.max_bytes:.1f}%" if quota.max_bytes else "—"
        table.add_row(
            quota.namespace,
            size(quota.used_bytes),
            size(quota.max_bytes) if quota.max_bytes else "none",
            share,
        )
    return table


@quota_app.command("set")
def quota_set(
    namespace: Annotated[str, typer.Argument(help="The namespace.")],
    max_bytes: Annotated[
        str,
        typer.Argument(
            metavar="BYTES", help="Most bytes it may store, e.g. 10GiB; 0 removes the quota."
        ),
    ],
    server: ServerOpt = DEFAULT_SERVER,
) -> None:
    """Set (or with 0 remove) a namespace's storage quota; prints what it uses."""
    limit = parse_bytes(max_bytes)
    with connect(server) as client:
        saved = client.set_quota(limit, namespace=namespace)
    Console().print(_quota_table([saved]))


@quota_app.command("list")
def quota_list(
    namespace: Annotated[str, typer.Argument(help="Only this namespace's quota.")] = "",
    server: ServerOpt = DEFAULT_SERVER,
) -> None:
    """Show storage quotas and what each namespace uses now."""
    with connect(server) as client:
        found = client.list_quotas(all_namespaces=not namespace, namespace=namespace or None)
    Console().print(_quota_table(found))
    if not found:
        typer.echo("no quotas set", err=True)


def register(app: typer.Typer) -> None:
    """Add the client commands to the `strata` command."""
    app.command()(audit)
    app.command()(cleanup)
    app.command()(usage)
    app.command()(check)
    app.add_typer(index_app, name="index")
    app.add_typer(quota_app, name="quota")
