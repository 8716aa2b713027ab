"""The operator commands of `strata` that talk to a running server over gRPC.

Unlike `serve` and `migrate`, these never open the database: they are clients of
the server at `--server` (or STRATA_SERVER), local or remote, and print results
as tables. A server that cannot be reached or refuses a request ends the command
with one line on stderr and exit status 2.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

import grpc
import typer
from rich.console import Console
from rich.table import Table

from strata.v1 import admin_pb2, admin_pb2_grpc

ServerOpt = Annotated[
    str,
    typer.Option("--server", envvar="STRATA_SERVER", help="host:port of a running server."),
]
NamespaceOpt = Annotated[str, typer.Option("--namespace", "-n", help="Tenant or workspace.")]
TIMEOUT_SECONDS = 30.0


def _fail(message: str) -> typer.Exit:
    typer.echo(f"strata: {message}", err=True)
    return typer.Exit(2)


@contextlib.contextmanager
def _admin(server: str) -> Iterator[admin_pb2_grpc.AdminServiceStub]:
    """An AdminService stub on `server`; gRPC errors become one line and exit 2."""
    try:
        with grpc.insecure_channel(server) as channel:
            yield admin_pb2_grpc.AdminServiceStub(channel)
    except grpc.RpcError as error:
        code = error.code()
        details = error.details()
        if code == grpc.StatusCode.UNAVAILABLE:
            raise _fail(f"cannot reach the server at {server}: {details}") from None
        raise _fail(f"{code.name}: {details}") from None


def _time(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def audit(
    server: ServerOpt = "127.0.0.1:50051",
    namespace: NamespaceOpt = "default",
    entity: Annotated[str, typer.Option(help="record, job, ...")] = "",
    entity_id: Annotated[str, typer.Option("--id", help="e.g. tickets/t1")] = "",
    actor: Annotated[str, typer.Option(help="Only this actor's changes.")] = "",
    action: Annotated[str, typer.Option(help="create, update, delete, enqueue, ack, ...")] = "",
    since: Annotated[
        datetime | None, typer.Option(help="From this time (UTC unless it says otherwise).")
    ] = None,
    until: Annotated[datetime | None, typer.Option(help="Before this time.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Most entries to show.")] = 50,
) -> None:
    """Show audit entries, newest first."""
    request = admin_pb2.ListAuditEntriesRequest(
        namespace=namespace,
        entity=entity,
        entity_id=entity_id,
        actor=actor,
        action=action,
        page_size=min(limit, 1000),
    )
    if (start := _time(since)) is not None:
        request.start_time.FromDatetime(start)
    if (end := _time(until)) is not None:
        request.end_time.FromDatetime(end)
    table = Table("seq", "time (UTC)", "actor", "action", "entity", "id", "version", "fields")
    shown = 0
    with _admin(server) as stub:
        while shown < limit:
            page = stub.ListAuditEntries(request, timeout=TIMEOUT_SECONDS)
            for entry in page.entries[: limit - shown]:
                table.add_row(
                    str(entry.seq),
                    entry.time.ToDatetime().isoformat(timespec="milliseconds"),
                    entry.actor,
                    entry.action,
                    entry.entity,
                    entry.entity_id,
                    str(entry.version),
                    ", ".join(entry.changed_fields),
                )
                shown += 1
            if not page.next_page_token:
                break
            request.page_token = page.next_page_token
    Console().print(table)
    if shown == 0:
        typer.echo("no audit entries match", err=True)


def register(app: typer.Typer) -> None:
    """Add the client commands to the `strata` command."""
    app.command()(audit)
