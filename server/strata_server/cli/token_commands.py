"""`strata token create | list | revoke`: bearer tokens, managed in the configured
database itself, so the first admin token can be made before any server runs (and
without one). A revocation made here is also sent on the events channel the
configuration names (Redis, else PostgreSQL NOTIFY), as a server's RevokeToken is,
so running servers refuse the token within a second; run it with the servers'
configuration (STRATA_REDIS_URL included) for that. On a SQLite file without Redis
servers find it by re-checking the tokens table, also within a second
(services/access_service.py).
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from strata_server.cli.common import ConfigOpt, fail
from strata_server.config import ConfigError, Settings, load_settings
from strata_server.core.access_rules import Role
from strata_server.core.errors import StrataError
from strata_server.core.models import Actor
from strata_server.core.token_rules import Token, check_new_token, parse_ttl
from strata_server.services.access_service import TokenAdmin

T = TypeVar("T")

token_app = typer.Typer(
    help="Create, list and revoke bearer tokens in the configured database "
    "(no running server needed).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="sqlite:///path or postgresql://… (env STRATA_DATABASE_URL)",
    ),
]


def register(app: typer.Typer) -> None:
    """Add `strata token` to the `strata` command."""
    app.add_typer(token_app, name="token")


def _actor() -> Actor:
    """The audit actor of a token change made here: the operating-system user."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor(f"cli:{user}")


def _with_tokens(
    database_url: str | None,
    config: Path | None,
    work: Callable[[TokenAdmin], Awaitable[T]],
    *,
    announce: bool = False,
) -> T:
    """Open the configured database (applying SQLite's pending migrations, as the
    server would), run `work(tokens)`, close it; failures end with one line. With
    `announce`, the configured events channel is opened too, for `work`'s
    revocations to reach running servers."""
    try:
        settings: Settings = load_settings(database_url=database_url, config=config)
    except ConfigError as error:
        raise fail(str(error)) from None
    if settings.database.memory:
        raise fail("an in-memory database keeps no tokens: name a file or PostgreSQL")
    from strata_server import logs
    from strata_server.backends import StartupError, open_database, open_events

    # Log lines (a migration applied first) go to stderr: stdout's last line is
    # the secret, for scripts to take.
    logs.configure(settings.log_level, settings.log_format)

    async def run() -> T:
        database = await open_database(settings)
        try:
            if not announce:
                return await work(TokenAdmin(database.tokens))
            events = await open_events(settings)
            try:
                return await work(TokenAdmin(database.tokens, events))
            finally:
                await events.close()
        finally:
            await database.close()

    try:
        return asyncio.run(run())
    except StartupError as error:
        raise fail(str(error)) from None
    except StrataError as error:
        raise fail(error.message) from None


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


def describe(token: Token) -> str:
    """One line about a token (never a secret: none is kept)."""
    state = "revoked" if token.revoke_time is not None else "active"
    return (
        f"{token.name}  role={token.role.label}  namespaces={','.join(sorted(token.namespaces))}"
        f"  expires={_when(token.expire_time)}  {state}"
    )


@token_app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="Unique name: the audit actor.")],
    role: Annotated[str, typer.Option("--role", help="reader, writer or admin.")],
    namespace: Annotated[
        list[str],
        typer.Option(
            "--namespace",
            "-n",
            help="A namespace the token covers; repeat for more, or '*' for every one.",
        ),
    ],
    ttl: Annotated[
        str | None,
        typer.Option(help="How long it is accepted, e.g. 90s, 12h, 30d; unset: until revoked."),
    ] = None,
    rate_limit: Annotated[
        float, typer.Option(help="Requests per second, sustained; 0: the server's default.")
    ] = 0.0,
    burst: Annotated[
        int, typer.Option(help="Requests in one burst above the rate; 0: the server's default.")
    ] = 0,
    database_url: DatabaseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create a token and print its secret alone on the last line: it is shown only
    this once (the database keeps its hash)."""
    try:
        parsed_role = Role.parse(role)
        lifetime = parse_ttl(ttl) if ttl is not None else None
        new = check_new_token(name, parsed_role, namespace, lifetime, rate_limit, burst)
    except ValueError as error:
        raise fail(str(error)) from None
    except StrataError as error:
        raise fail(error.message) from None
    token, secret = _with_tokens(
        database_url, config, lambda tokens: tokens.create(new, actor=_actor())
    )
    typer.echo(f"created {describe(token)}")
    typer.echo("the secret is shown only now; send it as `authorization: Bearer <secret>`:")
    typer.echo(secret)


@token_app.command("list")
def list_tokens(
    show_all: Annotated[
        bool, typer.Option("--all", help="Include revoked and expired tokens.")
    ] = False,
    database_url: DatabaseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List tokens by name (never their secrets: only hashes are kept)."""

    async def every(tokens: TokenAdmin) -> list[Token]:
        found: list[Token] = []
        after = None
        while True:
            page = await tokens.list(after, 1000, inactive=show_all)
            found.extend(page.items)
            if page.last_key is None:
                return found
            after = page.last_key[0]

    found = _with_tokens(database_url, config, every)
    for token in found:
        typer.echo(describe(token))
    if not found:
        typer.echo("no tokens", err=True)


@token_app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="The token's name.")],
    database_url: DatabaseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Revoke a token. Running servers refuse it within a second: it is sent on the
    configured events channel, as AdminService RevokeToken sends it."""
    token = _with_tokens(
        database_url, config, lambda tokens: tokens.revoke(name, actor=_actor()), announce=True
    )
    typer.echo(f"revoked {describe(token)}")
