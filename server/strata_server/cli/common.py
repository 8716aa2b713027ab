"""What the `strata` commands share: the server and credential options, the
one-line failure with exit status 2, a `strata.Client` whose errors become that
line, and progress bars fed by a long call's Progress messages.

Public so that the command modules (admin_commands, transfer_commands, ...)
share one behaviour instead of copying it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import grpc
import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

import strata
from strata.config import environment_tls
from strata.v1 import admin_pb2

TIMEOUT_SECONDS = 30.0
"""Deadline of each unary call a command makes (the long calls stream, without one)."""

ServerOpt = Annotated[
    str,
    typer.Option("--server", envvar="STRATA_SERVER", help="host:port of a running server."),
]
DEFAULT_SERVER = "127.0.0.1:50051"
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="STRATA_TOKEN",
        show_envvar=False,
        help="Bearer token sent with every call (env STRATA_TOKEN).",
    ),
]
TlsCaOpt = Annotated[
    Path | None,
    typer.Option(
        "--tls-ca",
        envvar="STRATA_TLS_CA",
        show_envvar=False,
        help="PEM authorities the server's certificate must chain to: connect over TLS "
        "(env STRATA_TLS_CA; under mTLS, env STRATA_CLIENT_CERT and STRATA_CLIENT_KEY "
        "name the client certificate).",
    ),
]


ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML settings file.")]
NamespaceOpt = Annotated[str, typer.Option("--namespace", "-n", help="Tenant or workspace.")]
AllNamespacesOpt = Annotated[bool, typer.Option("--all", help="Every namespace.")]
SinceOpt = Annotated[
    datetime | None, typer.Option(help="From this time (UTC unless it says otherwise).")
]
UntilOpt = Annotated[datetime | None, typer.Option(help="Before this time.")]


def as_utc(value: datetime | None) -> datetime | None:
    """A `SinceOpt`/`UntilOpt` time: typer parses it without a zone, which the
    help text promises means UTC (not the operator's local time)."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def fail(message: str) -> typer.Exit:
    """Print `strata: message` on stderr; the Exit (status 2) to raise."""
    typer.echo(f"strata: {message}", err=True)
    return typer.Exit(2)


@contextlib.contextmanager
def connect(
    server: str, token: str | None = None, tls_ca: Path | None = None
) -> Iterator[strata.Client]:
    """A client of `server`: over TLS when `tls_ca` (or the environment) says so,
    sending `token` (or $STRATA_TOKEN) with every call, without retries (an
    operator sees a failure at once). A failed call becomes one line and exit 2."""
    try:
        client = strata.Client(
            server,
            token=token,
            tls=environment_tls(tls_ca),
            timeout=TIMEOUT_SECONDS,
            retry=strata.RetryPolicy(max_attempts=1),
        )
    except (OSError, ValueError) as error:
        raise fail(f"cannot use the TLS or token settings: {error}") from None
    try:
        with client:
            yield client
    except strata.StrataError as error:
        if error.code == grpc.StatusCode.UNAVAILABLE:
            raise fail(f"cannot reach the server at {server}: {error.message}") from None
        raise fail(f"{error.code.name}: {error.message}") from None


def size(value: int) -> str:
    """Bytes for people: 512 B, 1.5 KiB, 20.0 MiB, ..."""
    if value < 1024:
        return f"{value:,} B"
    amount = float(value)
    for unit in ("KiB", "MiB", "GiB"):
        amount /= 1024
        if amount < 1024:
            return f"{amount:,.1f} {unit}"
    return f"{amount / 1024:,.1f} TiB"


class StepBar:
    """One progress bar for a long call, named after the phase it is in. A
    context manager; `update` takes the call's Progress messages."""

    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
        )
        self._task = TaskID(0)

    def __enter__(self) -> StepBar:
        self._progress.__enter__()
        self._task = self._progress.add_task("starting", total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(None, None, None)

    def update(self, step: admin_pb2.Progress) -> None:
        """Show one Progress message."""
        phase = f"{step.phase} ({step.unit})" if step.unit else step.phase
        self._progress.update(
            self._task, description=phase, completed=step.done, total=step.total or None
        )


class PhaseBars:
    """One progress bar per phase of a long call (rows, blobs, ...): counts for rows,
    sizes for bytes. A context manager; `update` takes the call's Progress messages."""

    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            TextColumn("{task.fields[amount]}"),
            TimeElapsedColumn(),
            transient=True,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> PhaseBars:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(None, None, None)

    def update(self, step: admin_pb2.Progress) -> None:
        """Show one Progress message on its phase's bar."""
        if step.unit == "bytes":
            amount = f"{size(step.done)} / {size(step.total)}" if step.total else size(step.done)
        else:
            amount = f"{step.done:,} / {step.total:,} {step.unit}"
        if step.phase not in self._tasks:
            self._tasks[step.phase] = self._progress.add_task(step.phase, total=None, amount="")
        self._progress.update(
            self._tasks[step.phase], completed=step.done, total=step.total or None, amount=amount
        )


T = TypeVar("T")


def with_progress_bar(
    server: str,
    token: str | None,
    tls_ca: Path | None,
    call: Callable[[strata.Client], Callable[..., T]],
    *,
    namespace: str,
    all_namespaces: bool,
    **fields: Any,
) -> T:
    """One long admin call (`call` picks the client's method) over the namespace or,
    with `all_namespaces`, every namespace, drawing its progress as a bar."""
    with connect(server, token, tls_ca) as client, StepBar() as bar:
        return call(client)(
            all_namespaces=all_namespaces,
            progress=bar.update,
            namespace=None if all_namespaces else namespace,
            **fields,
        )
