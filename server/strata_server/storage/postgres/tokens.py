"""Bearer tokens on PostgreSQL (the `tokens` table of migration 0010): the
`storage.ports.TokenStore` port. Each mutation is one statement that writes the
token row and its audit entry together (a data-modifying CTE), so it is atomic
without a BEGIN/COMMIT round trip; times come from the database's clock, which
every replica shares."""

from __future__ import annotations

from typing import Any

from strata_server.core.access_rules import ALL_NAMESPACES, Role
from strata_server.core.errors import AlreadyExists, NotFound
from strata_server.core.models import Actor, Page
from strata_server.core.token_rules import TOKEN_ENTITY, NewToken, Token
from strata_server.storage.postgres.pool import Conn, Runner, borrowing

COLUMNS = (
    "name, role, namespaces, create_time, expire_time, revoke_time, rate_limit, burst, created_by"
)

AUDIT_COLUMNS = (
    "namespace, time, actor, action, entity, entity_id, version, changed_fields, request_id"
)
"""Token mutations are audited under "*": they belong to no namespace, no
namespace's export or audit listing shows them, and only a token for every
namespace can list them (ListAuditEntries with namespace "*")."""


def _audited(written: str, time: str, action: str) -> str:
    """The end of a statement whose CTE `written` returns the token rows it wrote:
    one audit entry per row (at the row's own `time` column), then the rows. So a
    mutation and its audit entry are one statement, written once for both."""
    return f"""), audited AS (
    INSERT INTO audit_log ({AUDIT_COLUMNS})
    SELECT '{ALL_NAMESPACES}', {time}, %(actor)s, '{action}', '{TOKEN_ENTITY}', name,
           0, '[]'::jsonb, NULL
    FROM {written}
)
SELECT {COLUMNS} FROM {written}"""


INSERT = f"""
WITH saved AS (
    INSERT INTO tokens (secret_hash, {COLUMNS})
    VALUES (%(secret_hash)s, %(name)s, %(role)s, %(namespaces)s, now(),
            now() + %(ttl)s::interval, NULL, %(rate_limit)s, %(burst)s, %(actor)s)
    ON CONFLICT DO NOTHING
    RETURNING {COLUMNS}
{_audited("saved", "create_time", "create_token")}
"""

LIST = f"""
SELECT {COLUMNS} FROM tokens
WHERE (%(after)s::text IS NULL OR name > %(after)s)
  AND (%(inactive)s OR (revoke_time IS NULL AND (expire_time IS NULL OR expire_time > now())))
ORDER BY name
LIMIT %(limit)s
"""

REVOKE = f"""
WITH revoked AS (
    UPDATE tokens SET revoke_time = now()
    WHERE name = %(name)s AND revoke_time IS NULL
    RETURNING {COLUMNS}
{_audited("revoked", "revoke_time", "revoke_token")}
UNION ALL
SELECT {COLUMNS} FROM tokens
WHERE name = %(name)s AND NOT EXISTS (SELECT 1 FROM revoked)
"""
"""Revoke and audit in one statement; a token revoked before comes back from the
second branch unchanged (it reads the snapshot the UPDATE started from)."""

BY_HASH = f"SELECT {COLUMNS} FROM tokens WHERE secret_hash = %s"
FINGERPRINT = "SELECT count(*), count(revoke_time) FROM tokens"


def token_from_row(row: tuple[Any, ...]) -> Token:
    """A token from its columns in COLUMNS order."""
    name, role, namespaces, created, expires, revoked, rate_limit, burst, created_by = row
    return Token(
        name=name,
        role=Role.parse(role),
        namespaces=frozenset(namespaces),
        create_time=created,
        expire_time=expires,
        revoke_time=revoked,
        rate_limit=float(rate_limit),
        burst=int(burst),
        created_by=created_by,
    )


class PostgresTokens:
    """`TokenStore` over PostgreSQL."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    @borrowing(writes=True)
    async def create_token(
        self, conn: Conn, token: NewToken, secret_hash: str, *, actor: Actor
    ) -> Token:
        """Insert the token and its audit entry in one statement."""
        params = {
            "secret_hash": secret_hash,
            "name": token.name,
            "role": token.role.label,
            "namespaces": sorted(token.namespaces),
            "ttl": token.ttl,
            "rate_limit": token.rate_limit,
            "burst": token.burst,
            "actor": actor.name,
        }
        row = await (await conn.execute(INSERT, params)).fetchone()
        if row is None:
            raise AlreadyExists(f"a token named {token.name!r} exists (names are never reused)")
        return token_from_row(row)

    @borrowing()
    async def list_tokens(
        self, conn: Conn, after: str | None, limit: int, *, inactive: bool
    ) -> Page[Token]:
        """Tokens by name (byte order), one more than asked to know if more follow."""
        params = {"after": after, "inactive": inactive, "limit": limit + 1}
        rows = await (await conn.execute(LIST, params)).fetchall()
        tokens = [token_from_row(row) for row in rows[:limit]]
        more = len(rows) > limit and tokens
        return Page(tokens, (tokens[-1].name,) if more else None)

    @borrowing(writes=True)
    async def revoke_token(self, conn: Conn, name: str, *, actor: Actor) -> Token:
        """Set revoke_time and write the audit entry, in one statement."""
        row = await (await conn.execute(REVOKE, {"name": name, "actor": actor.name})).fetchone()
        if row is None:
            raise NotFound(f"no token is named {name!r}")
        return token_from_row(row)

    @borrowing()
    async def find_token(self, conn: Conn, secret_hash: str) -> Token | None:
        """One probe of the unique index on secret_hash."""
        row = await (await conn.execute(BY_HASH, (secret_hash,))).fetchone()
        return token_from_row(row) if row is not None else None

    @borrowing()
    async def fingerprint(self, conn: Conn) -> tuple[int, int]:
        """(tokens, revoked tokens)."""
        row = await (await conn.execute(FINGERPRINT)).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])
