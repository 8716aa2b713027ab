"""What the `strata` client commands share: the server option, the one-line failure
with exit status 2, a stub whose gRPC errors become that line, and a progress bar
fed by a stream's Progress messages.

Public so that command modules (archive_cli, ...) share one behaviour instead of
copying it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

import grpc
import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from strata.v1 import admin_pb2, admin_pb2_grpc

ServerOpt = Annotated[
    str,
    typer.Option("--server", envvar="STRATA_SERVER", help="host:port of a running server."),
]
DEFAULT_SERVER = "127.0.0.1:50051"


def fail(message: str) -> typer.Exit:
    """Print `strata: message` on stderr; the Exit (status 2) to raise."""
    typer.echo(f"strata: {message}", err=True)
    return typer.Exit(2)


@contextlib.contextmanager
def admin_stub(server: str) -> Iterator[admin_pb2_grpc.AdminServiceStub]:
    """An AdminService stub on `server`; gRPC errors become one line and exit 2."""
    try:
        with grpc.insecure_channel(server) as channel:
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
