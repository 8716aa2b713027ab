"""The `strata` command: serve, manage the schema, and (admin_commands,
transfer_commands, token_commands) what operators need.

Failures an operator can fix (bad configuration, unreachable database, pending
migrations) end with one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from strata_server.cli import (
    admin_commands,
    backup_commands,
    search_command,
    token_commands,
    transfer_commands,
)
from strata_server.cli.common import ConfigOpt, fail
from strata_server.cli.worker_processes import serve_workers
from strata_server.config import ConfigError, Settings, insecure_listen, load_settings

# Plain (click) help rather than typer's rich panels: typer 0.29's panels show
# every flag as taking a `<bool>` value (`--help <bool>`), and this way a flag
# reads as a flag and each default is shown.
app = typer.Typer(
    help="Strata: a gRPC data-access server.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
migrate_app = typer.Typer(
    help="Apply, roll back or list schema migrations.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(migrate_app, name="migrate")
admin_commands.register(app)
transfer_commands.register(app)
token_commands.register(app)
search_command.register(app)
backup_commands.register(app)


def _default(name: str) -> str:
    """A setting's default as --help shows it. The options themselves default to
    None so that an unset flag leaves the setting to STRATA_* and --config, so
    click's own `[default: ...]` cannot be used."""
    return f"  [default: {Settings.model_fields[name].default}]"


def _version(value: bool) -> None:
    if value:
        from strata.v1 import records_pb2
        from strata_server import __version__

        typer.echo(f"strata {__version__} (API {records_pb2.DESCRIPTOR.package})")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the server and API versions and exit.",
        ),
    ] = False,
) -> None:
    """Strata: a gRPC data-access server."""


DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="sqlite:///path, sqlite://:memory: or postgresql://… (env STRATA_DATABASE_URL)"
        + _default("database_url"),
    ),
]


def _settings(**flags: Any) -> Settings:
    try:
        return load_settings(**flags)
    except ConfigError as error:
        raise fail(str(error)) from None


@app.command()
def serve(
    listen: Annotated[
        str | None,
        typer.Option(
            help="host:port; port 0 picks a free one (env STRATA_LISTEN)." + _default("listen"),
        ),
    ] = None,
    database_url: DatabaseOpt = None,
    migrate: Annotated[
        bool | None, typer.Option("--migrate", help="PostgreSQL: apply pending migrations.")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Server processes sharing the port (SO_REUSEPORT), this one their "
            "supervisor; see docs/deployment.md (env STRATA_WORKERS)." + _default("workers")
        ),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(help="debug, info, warning or error." + _default("log_level")),
    ] = None,
    port_file: Annotated[Path | None, typer.Option(help="Write the bound port here.")] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            help="PEM certificate chain: serve TLS only, with --tls-key (env STRATA_TLS_CERT)."
        ),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(help="PEM private key of --tls-cert (env STRATA_TLS_KEY).")
    ] = None,
    tls_client_ca: Annotated[
        Path | None,
        typer.Option(
            help="PEM authorities of client certificates: require one (mTLS) "
            "(env STRATA_TLS_CLIENT_CA)."
        ),
    ] = None,
    metrics_listen: Annotated[
        str | None,
        typer.Option(
            help="Serve Prometheus metrics on a port (loopback) or host:port "
            "(env STRATA_METRICS_LISTEN).  [default: off]"
        ),
    ] = None,
    auth: Annotated[
        str | None,
        typer.Option(
            help="none (loopback addresses only) or token (every call but health needs "
            "`authorization: Bearer <token>`; env STRATA_AUTH)." + _default("auth"),
        ),
    ] = None,
    allow_insecure: Annotated[
        bool | None,
        typer.Option(
            "--allow-insecure",
            help="Serve with --auth none on a non-loopback address anyway "
            "(env STRATA_ALLOW_INSECURE).",
        ),
    ] = None,
    console_listen: Annotated[
        str | None,
        typer.Option(
            help="host:port of the web console (HTTP), or off (env STRATA_CONSOLE_LISTEN)."
            + _default("console_listen"),
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Serve gRPC until SIGTERM/SIGINT (graceful shutdown); SIGHUP re-reads the TLS
    certificates."""
    settings = _settings(
        auth=auth,
        allow_insecure=allow_insecure,
        listen=listen,
        database_url=database_url,
        migrate=migrate,
        workers=workers,
        log_level=log_level,
        port_file=port_file,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_client_ca=tls_client_ca,
        metrics_listen=metrics_listen,
        console_listen=console_listen,
        config=config,
    )
    problem = insecure_listen(settings)
    if problem is not None:
        raise fail(problem)
    from strata_server import logs

    logs.configure(settings.log_level, settings.log_format)
    if settings.workers > 1:
        raise typer.Exit(serve_workers(settings))
    from strata_server.app import serve as run
    from strata_server.backends import StartupError
    from strata_server.malloc_tuning import pin_mmap_threshold

    pin_mmap_threshold()
    try:
        if settings.event_loop == "uvloop":
            import uvloop

            uvloop.run(run(settings))
        else:
            asyncio.run(run(settings))
    except StartupError as error:
        raise fail(str(error)) from None


@app.command()
def console(
    target: Annotated[
        str, typer.Option(help="host:port of the Strata gRPC API to call.")
    ] = "127.0.0.1:50051",
    listen: Annotated[
        str, typer.Option(help="host:port to serve the console on (HTTP).")
    ] = "127.0.0.1:8080",
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Serve the web console alone, as a client of the API at --target (see
    docs/console.md); `strata serve` already serves it beside gRPC."""
    from strata_server import logs
    from strata_server.console.serving import run_standalone

    logs.configure(log_level, "console")
    raise typer.Exit(run_standalone(target, listen))


def _target(database_url: str | None, config: Path | None) -> Any:
    settings = _settings(database_url=database_url, config=config)
    if settings.database.memory:
        raise fail("an in-memory database has no migrations to manage")
    return settings.database


def _run_migration(action: Any) -> Any:
    from strata_server.core.errors import StrataError

    try:
        return action()
    except StrataError as error:
        raise fail(error.message) from None


def _pg_dump_command(dsn: str, file: Path) -> list[str]:
    """The backup `migrate up` recommends (or runs, with --pg-dump) on PostgreSQL."""
    return ["pg_dump", "--format=custom", f"--file={file}", f"--dbname={dsn}"]


def _shown(command: list[str]) -> str:
    """A command to print: any password in the DSN hidden."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    dsn = command[-1].removeprefix("--dbname=")
    params = conninfo_to_dict(dsn)
    if "password" in params:
        params["password"] = "***"
    return " ".join([*command[:-1], f"'--dbname={make_conninfo('', **params)}'"])


@migrate_app.command("up")
def migrate_up(
    database_url: DatabaseOpt = None,
    config: ConfigOpt = None,
    backup: Annotated[
        bool,
        typer.Option(
            help="Back up first: SQLite copies the file; PostgreSQL prints the pg_dump to run."
        ),
    ] = True,
    pg_dump: Annotated[
        bool,
        typer.Option("--pg-dump", help="PostgreSQL: run that pg_dump first, and stop if it fails."),
    ] = False,
    dump_file: Annotated[
        Path | None, typer.Option(help="Where --pg-dump writes (default strata-<time>.dump).")
    ] = None,
) -> None:
    """Apply every pending migration, with a progress bar."""
    from rich.progress import Progress

    from strata_server.storage import migrations

    target = _target(database_url, config)
    # Not for SQLite: opening the file to read its migrations would create it, and a
    # new file needs no backup (migrations.up looks before it opens).
    todo = _run_migration(lambda: migrations.pending(target)) if target.kind == "postgres" else []
    if todo and backup:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        command = _pg_dump_command(target.dsn, dump_file or Path(f"strata-{stamp}.dump"))
        if pg_dump:
            typer.echo(f"running {_shown(command)}")
            try:
                done = subprocess.run(command, capture_output=True, text=True, check=False)
            except FileNotFoundError:
                raise fail("pg_dump is not installed; nothing was migrated") from None
            if done.returncode != 0:
                reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
                raise fail(f"pg_dump failed ({reason}); nothing was migrated")
        else:
            typer.echo(f"back up first (or pass --pg-dump): {_shown(command)}")
    with Progress(transient=True) as bar:
        task = bar.add_task("migrating", total=len(todo))

        def step(id: str) -> None:
            bar.update(task, advance=1, description=f"applied {id}")

        applied, saved = _run_migration(lambda: migrations.up(target, backup=backup, applied=step))
    if saved:
        typer.echo(f"backed up to {saved}")
    typer.echo(
        f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else "")
    )


@migrate_app.command("down")
def migrate_down(
    database_url: DatabaseOpt = None,
    config: ConfigOpt = None,
    steps: Annotated[int, typer.Option(min=1, help="How many migrations to roll back.")] = 1,
) -> None:
    """Roll back the newest applied migrations."""
    from strata_server.storage import migrations

    target = _target(database_url, config)
    rolled = _run_migration(lambda: migrations.down(target, steps))
    typer.echo(
        f"rolled back {len(rolled)} migration(s)" + (f": {', '.join(rolled)}" if rolled else "")
    )


@migrate_app.command("status")
def migrate_status(database_url: DatabaseOpt = None, config: ConfigOpt = None) -> None:
    """List migrations and whether each is applied."""
    from strata_server.storage import migrations

    target = _target(database_url, config)
    for state in _run_migration(lambda: migrations.status(target)):
        typer.echo(f"{'applied' if state.applied else 'pending'}  {state.id}")


def main() -> None:
    """Entry point of the `strata` console script."""
    app()
