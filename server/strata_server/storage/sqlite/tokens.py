"""Bearer tokens on SQLite (the `tokens` table of migration 0010): the
`storage.ports.TokenStore` port over the database's connections."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from strata_server.core.access_rules import ALL_NAMESPACES, Role
from strata_server.core.errors import AlreadyExists, NotFound
from strata_server.core.models import Actor, Page
from strata_server.core.token_rules import TOKEN_ENTITY, NewToken, Token
from strata_server.storage.sqlite.connection import Connections, Row
from strata_server.storage.sqlite.dialect import from_micros, to_micros
from strata_server.storage.sqlite.shared_sql import INSERT_AUDIT

COLUMNS = (
    "name, role, namespaces, create_time, expire_time, revoke_time, rate_limit, burst, created_by"
)

INSERT = f"""
INSERT INTO tokens (secret_hash, {COLUMNS})
VALUES (:secret_hash, :name, :role, :namespaces, :now, :expire_time, NULL, :rate_limit,
        :burst, :created_by)
ON CONFLICT DO NOTHING
RETURNING {COLUMNS}
"""

LIST = f"""
SELECT {COLUMNS} FROM tokens
WHERE (:after IS NULL OR name > :after)
  AND (:inactive OR (revoke_time IS NULL AND (expire_time IS NULL OR expire_time > :now)))
ORDER BY name
LIMIT :limit
"""

REVOKE = f"""
UPDATE tokens SET revoke_time = :now WHERE name = :name AND revoke_time IS NULL
RETURNING {COLUMNS}
"""

BY_NAME = f"SELECT {COLUMNS} FROM tokens WHERE name = ?"
BY_HASH = f"SELECT {COLUMNS} FROM tokens WHERE secret_hash = ?"
FINGERPRINT = "SELECT count(*), count(revoke_time) FROM tokens"

AUDIT_NAMESPACE = ALL_NAMESPACES
"""Token mutations are audited under "*": they belong to no namespace, no
namespace's export or audit listing shows them, and only a token for every
namespace can list them (ListAuditEntries with namespace "*")."""


def token_from_row(row: Row) -> Token:
    """A token from its columns in COLUMNS order."""
    name, role, namespaces, created, expires, revoked, rate_limit, burst, created_by = row
    return Token(
        name=name,
        role=Role.parse(role),
        namespaces=frozenset(json.loads(namespaces)),
        create_time=from_micros(created),
        expire_time=from_micros(expires) if expires is not None else None,
        revoke_time=from_micros(revoked) if revoked is not None else None,
        rate_limit=float(rate_limit),
        burst=int(burst),
        created_by=created_by,
    )


def _audit(now: int, actor: Actor, action: str, name: str) -> tuple[object, ...]:
    return (AUDIT_NAMESPACE, now, actor.name, action, TOKEN_ENTITY, name, 0, "[]", None)


class SqliteTokens:
    """`TokenStore` over SQLite."""

    def __init__(self, db: Connections) -> None:
        self._db = db

    async def create_token(self, token: NewToken, secret_hash: str, *, actor: Actor) -> Token:
        """Insert the token and its audit entry in one transaction."""
        now = datetime.now(UTC)
        created = to_micros(now)
        params: dict[str, object] = {
            "secret_hash": secret_hash,
            "name": token.name,
            "role": token.role.label,
            "namespaces": json.dumps(sorted(token.namespaces)),
            "now": created,
            "expire_time": to_micros(now + token.ttl) if token.ttl is not None else None,
            "rate_limit": token.rate_limit,
            "burst": token.burst,
            "created_by": actor.name,
        }
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(INSERT, params)
            if not rows:
                raise AlreadyExists(f"a token named {token.name!r} exists (names are never reused)")
            await tx.execute(INSERT_AUDIT, _audit(created, actor, "create_token", token.name))
        return token_from_row(rows[0])

    async def list_tokens(self, after: str | None, limit: int, *, inactive: bool) -> Page[Token]:
        """Tokens by name (byte order), one more than asked to know if more follow."""
        rows = await self._db.fetchall(
            LIST,
            {
                "after": after,
                "inactive": inactive,
                "now": to_micros(datetime.now(UTC)),
                "limit": limit + 1,
            },
        )
        tokens = [token_from_row(row) for row in rows[:limit]]
        more = len(rows) > limit and tokens
        return Page(tokens, (tokens[-1].name,) if more else None)

    async def revoke_token(self, name: str, *, actor: Actor) -> Token:
        """Set revoke_time and write the audit entry, in one transaction."""
        now = to_micros(datetime.now(UTC))
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(REVOKE, {"now": now, "name": name})
            if rows:
                await tx.execute(INSERT_AUDIT, _audit(now, actor, "revoke_token", name))
                return token_from_row(rows[0])
            rows = await tx.fetchall(BY_NAME, (name,))
        if not rows:
            raise NotFound(f"no token is named {name!r}")
        return token_from_row(rows[0])

    async def find_token(self, secret_hash: str) -> Token | None:
        """One probe of the unique index on secret_hash."""
        rows = await self._db.fetchall(BY_HASH, (secret_hash,))
        return token_from_row(rows[0]) if rows else None

    async def fingerprint(self) -> tuple[int, int]:
        """(tokens, revoked tokens)."""
        [(count, revoked)] = await self._db.fetchall(FINGERPRINT)
        return int(count), int(revoked)
