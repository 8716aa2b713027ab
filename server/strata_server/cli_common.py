"""What the `strata` client commands share: the server and credential options, the
one-line failure with exit status 2, a stub whose gRPC errors become that line, and
a progress bar fed by a stream's Progress messages.

Public so that command modules (archive_cli, ...) share one behaviour instead of
copying it.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import grpc
import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from strata.config import ClientConfig, environment_tls
from strata.v1 import admin_pb2, admin_pb2_grpc

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


def fail(message: str) -> typer.Exit:
    """Print `strata: message` on stderr; the Exit (status 2) to raise."""
    typer.echo(f"strata: {message}", err=True)
    return typer.Exit(2)


class _CallDetails(
    collections.namedtuple(
        "_CallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,
):
    """A call's details with more metadata (grpc's own class cannot be built)."""


class _WithMetadata(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds the same metadata (the bearer token) to every call of a channel."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def _extend(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return _CallDetails(
            details.method,
            details.timeout,
            (*(details.metadata or ()), *self._metadata),
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return continuation(self._extend(client_call_details), request)

    def intercept_unary_stream(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return continuation(self._extend(client_call_details), request)

    def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return continuation(self._extend(client_call_details), request_iterator)

    def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return continuation(self._extend(client_call_details), request_iterator)


def open_channel(server: str, token: str | None = None, tls_ca: Path | None = None) -> grpc.Channel:
    """A channel to `server`: over TLS when `tls_ca` (or the environment) says so,
    sending `token` (or $STRATA_TOKEN) with every call."""
    try:
        config = ClientConfig(server, token=token, tls=environment_tls(tls_ca)).with_environment()
        credentials = config.channel_credentials()
    except (OSError, ValueError) as error:
        raise fail(f"cannot use the TLS or token settings: {error}") from None
    if credentials is None:
        channel = grpc.insecure_channel(server)
    else:
        channel = grpc.secure_channel(server, credentials, config.grpc_options())
    metadata = config.call_metadata()
    return grpc.intercept_channel(channel, _WithMetadata(metadata)) if metadata else channel


@contextlib.contextmanager
def admin_stub(
    server: str, token: str | None = None, tls_ca: Path | None = None
) -> Iterator[admin_pb2_grpc.AdminServiceStub]:
    """An AdminService stub on `server` (see `open_channel`); gRPC errors become
    one line and exit 2."""
    try:
        with open_channel(server, token, tls_ca) as channel:
            yield admin_pb2_grpc.AdminServiceStub(channel)
    except grpc.RpcError as error:
        code = error.code()
        details = error.details()
        if code == grpc.StatusCode.UNAVAILABLE:
            raise fail(f"cannot reach the server at {server}: {details}") from None
        raise fail(f"{code.name}: {details}") from None


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
