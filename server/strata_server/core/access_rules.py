"""Who is calling and what they may do: principals, roles and namespace scopes.

No gRPC and no SQL here. The transport (api/) authenticates a call (a bearer
token, or a client certificate under mTLS) into a `Principal`, and binds it to
the call with `bind`; every layer below reads it with `current()`. A context
variable carries it because grpc.aio runs each RPC in its own task, so a
principal bound in one call can never be seen by another.

Roles are ordered: each includes the ones below it. A principal's namespaces
are a set of names or `*` for all of them.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
from datetime import datetime

from strata_server.core.values import frozen

ALL_NAMESPACES = "*"
"""The namespace scope that names every namespace."""


class Role(enum.IntEnum):
    """What a principal may do; a higher role includes every lower one."""

    READER = 1
    WRITER = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        """The role's name as operators write it (`reader`, `writer`, `admin`)."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        """The role an operator named; ValueError for anything else."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown role {text!r}: reader, writer or admin") from None


@frozen
class Principal:
    """An authenticated caller: a token or a certificate subject.

    `name` is the audit actor of everything it does. `claimed` is what the
    caller's `x-strata-actor` header said, kept only as a sub-actor.
    """

    name: str
    role: Role
    namespaces: frozenset[str]
    expire_time: datetime | None = None
    rate_limit: float = 0.0
    """Requests per second, sustained; 0 means the server's default."""
    burst: int = 0
    """Requests in one burst above the rate; 0 means the server's default."""
    claimed: str = ""

    def may(self, role: Role) -> bool:
        """Whether this principal's role includes `role`."""
        return self.role >= role

    def covers(self, namespace: str) -> bool:
        """Whether this principal may name `namespace`."""
        return ALL_NAMESPACES in self.namespaces or namespace in self.namespaces

    @property
    def all_namespaces(self) -> bool:
        """Whether this principal may name every namespace (and call across them)."""
        return ALL_NAMESPACES in self.namespaces

    @property
    def actor(self) -> str:
        """The audit actor: the principal's name, with any claimed sub-actor
        shown beside it (never in its place). Without authentication there is no
        name, and the claim is all there is (or "anonymous")."""
        return self.actor_claiming(self.claimed)

    def actor_claiming(self, claimed: str) -> str:
        """`actor` as if this principal's caller claimed `claimed`: what each call's
        audit entry names, without building a copy of the principal per call."""
        if not self.name:
            return claimed or "anonymous"
        return f"{self.name} (claims: {claimed})" if claimed else self.name


ANONYMOUS = Principal("", Role.ADMIN, frozenset({ALL_NAMESPACES}))
"""The principal of every call under `--auth none`: the server trusts its
(loopback) callers, and the audit actor is whatever `x-strata-actor` says."""

_current: contextvars.ContextVar[Principal] = contextvars.ContextVar(
    "strata_principal", default=ANONYMOUS
)


def current() -> Principal:
    """The principal of the call being served (ANONYMOUS outside any call)."""
    return _current.get()


def assume(principal: Principal) -> None:
    """Make `principal` the current one for the rest of the current context: `bind`
    without restoring, for a call whose context ends with it (grpc.aio serves each
    RPC in a task of its own), so a unary call pays no context manager."""
    _current.set(principal)


def bind(principal: Principal) -> Binding:
    """Make `principal` the current one for the code inside the `with` block."""
    return Binding(principal)


class Binding:
    """The `with` block of `bind`: a plain context manager rather than a
    `contextlib.contextmanager` generator, since every authenticated call enters
    one."""

    __slots__ = ("_principal", "_token")

    def __init__(self, principal: Principal) -> None:
        self._principal = principal
        self._token: contextvars.Token[Principal] | None = None

    def __enter__(self) -> Principal:
        self._token = _current.set(self._principal)
        return self._principal

    def __exit__(self, *exc_info: object) -> None:
        token, self._token = self._token, None
        if token is None:
            return
        # A streaming call's generator closed by the loop's finalizer (the server
        # stopping with the stream open) runs in another context, where this value
        # was never set: there is nothing to restore there.
        with contextlib.suppress(ValueError):
            _current.reset(token)
