"""Bearer tokens: what one is, how its secret is made and how it is kept.

No gRPC and no SQL here. A token has a unique name (the audit actor of every call
made with it), a role, the namespaces it covers (or `*`), an optional expiry and
the rate its calls may come at. Its secret is shown once, when it is made; the
database keeps only `secret_hash(secret)`, so every replica can check a token and a
dump of the database reveals none.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from strata_server.core import validation
from strata_server.core.access_rules import ALL_NAMESPACES, Principal, Role
from strata_server.core.errors import InvalidArgument
from strata_server.core.values import frozen

SECRET_PREFIX = "st_"
"""Every secret starts with this, so a leaked one is recognisable (secret scanners,
log scrubbers) and a malformed one is refused without a database read."""
SECRET_BYTES = 32
"""Random bytes in a secret: 256 bits, base64url-encoded into 43 characters."""
_SECRET_RE = re.compile(re.escape(SECRET_PREFIX) + r"[A-Za-z0-9_-]{43}")

NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""A token name: letters, digits, '.', '_' and '-', at most 64 characters."""
MIN_TTL = timedelta(seconds=1)
MAX_TTL = timedelta(days=36525)
"""A token's lifetime, when it has one: 1 second to 100 years."""
TOKEN_ENTITY = "token"
"""The audit log's entity kind of token mutations."""

_TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_TTL_RE = re.compile(r"(\d{1,9})([smhdw])")


@frozen
class NewToken:
    """A token to create, checked (`check_new_token`)."""

    name: str
    role: Role
    namespaces: frozenset[str]
    ttl: timedelta | None = None
    rate_limit: float = 0.0
    burst: int = 0


@frozen
class Token:
    """A token as stored, without its secret."""

    name: str
    role: Role
    namespaces: frozenset[str]
    create_time: datetime
    expire_time: datetime | None = None
    revoke_time: datetime | None = None
    rate_limit: float = 0.0
    burst: int = 0
    created_by: str = ""

    def active(self, now: datetime) -> bool:
        """Whether the token is accepted at `now`: not revoked and not expired."""
        return self.revoke_time is None and (self.expire_time is None or now < self.expire_time)

    def principal(self) -> Principal:
        """The caller a call made with this token acts as."""
        return Principal(
            self.name,
            self.role,
            self.namespaces,
            expire_time=self.expire_time,
            rate_limit=self.rate_limit,
            burst=self.burst,
        )


def new_secret() -> str:
    """A fresh secret: the prefix and 256 random bits (`secrets`, the OS CSPRNG)."""
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def well_formed(secret: str) -> bool:
    """Whether `secret` has the shape `new_secret` makes (checked before any lookup)."""
    return _SECRET_RE.fullmatch(secret) is not None


def secret_hash(secret: str) -> str:
    """What the database keeps of a secret: its SHA-256, in hex.

    A plain hash, not a password hash (bcrypt, argon2), on purpose: those are slow so
    that guessing a human-chosen password from its hash is expensive, but a secret of
    256 random bits cannot be guessed however fast the hash is. A fast, unsalted hash
    lets a replica look a token up by it with one index probe (a salted one could not
    be looked up at all) and costs about a microsecond per call, where argon2 would
    cost tens of milliseconds on the path of every cache miss.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_ttl(text: str) -> timedelta:
    """A lifetime as operators write it: `90s`, `15m`, `12h`, `30d`, `2w`, or a sum
    such as `1d12h`; InvalidArgument (field ttl) for anything else."""
    compact = text.strip().lower().replace(" ", "")
    parts = _TTL_RE.findall(compact)
    if not compact or "".join(number + unit for number, unit in parts) != compact:
        raise InvalidArgument.field("ttl", "must look like 90s, 15m, 12h, 30d or 2w")
    return timedelta(seconds=sum(int(number) * _TTL_UNITS[unit] for number, unit in parts))


def check_new_token(
    name: str,
    role: Role | None,
    namespaces: Iterable[str],
    ttl: timedelta | None = None,
    rate_limit: float = 0.0,
    burst: int = 0,
) -> NewToken:
    """The token to create, or InvalidArgument naming the first bad field."""
    if not NAME_RE.fullmatch(name):
        raise InvalidArgument.field("name", "must be 1-64 letters, digits, '.', '_' or '-'")
    if role is None:
        raise InvalidArgument.field("role", "must be reader, writer or admin")
    scopes = list(namespaces)
    if not scopes:
        raise InvalidArgument.field("namespaces", "must name at least one namespace, or '*'")
    if ALL_NAMESPACES in scopes and len(set(scopes)) > 1:
        raise InvalidArgument.field("namespaces", "'*' covers every namespace: give it alone")
    checked = frozenset(scope if scope == ALL_NAMESPACES else _scope(scope) for scope in scopes)
    if ttl is not None and not MIN_TTL <= ttl <= MAX_TTL:
        raise InvalidArgument.field("ttl", "must be from 1 second to 100 years")
    if not math.isfinite(rate_limit) or rate_limit < 0:
        raise InvalidArgument.field("rate_limit", "must be 0 (the default) or more")
    if burst < 0:
        raise InvalidArgument.field("burst", "must be 0 (the default) or more")
    return NewToken(name, role, checked, ttl, rate_limit, burst)


def _scope(namespace: str) -> str:
    if not namespace:
        raise InvalidArgument.field("namespaces", "must not hold an empty name")
    try:
        return validation.namespace(namespace)
    except InvalidArgument:
        raise InvalidArgument.field(
            "namespaces",
            f"{namespace[:64]!r} is not a namespace: 1-63 of a-z, 0-9, '_' or '-', or '*'",
        ) from None
