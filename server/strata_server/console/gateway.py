"""The console's only way to Strata's data: the public API, through the Python client.

Every page opens an `AsyncClient` with the signed-in user's bearer token (none
under `--auth none`), so roles and namespace scopes apply to the console exactly
as to any other caller, and a page a reader may not use fails in the API, not
in a check of the console's own. The console never opens the database.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import field
from typing import Literal, TypeVar

import grpc
from cachetools import TTLCache

from strata import AsyncClient, PermissionDenied, RetryPolicy, StrataError, TLSConfig
from strata._rpc import Page, PagedRpc
from strata_server.core.values import frozen

T = TypeVar("T")

Role = Literal["reader", "writer", "admin"]
"""What the signed-in user may do in the namespace shown: as the API decides."""

ROLE_RANK: dict[Role, int] = {"reader": 0, "writer": 1, "admin": 2}

ACTOR = "console"
"""The audit actor of changes made through the console without token auth (with
token auth, the API records the token's name instead)."""

ONE_ATTEMPT = RetryPolicy(max_attempts=1)
"""The console does not retry: a person waits for the page, which says what is
down (a reload is the retry). Retrying UNAVAILABLE would make them wait for
every attempt of every call, each as long as the server waits for its database,
before the page could say that the database is down."""


@frozen
class Upstream:
    """Where the console sends its calls: a Strata server (or a load balancer)."""

    target: str
    """host:port of the gRPC API."""
    tls: TLSConfig | None = None
    """TLS towards the API; None: plaintext."""
    timeout: float = 10.0
    """Deadline of each unary call, in seconds."""
    retry: RetryPolicy = ONE_ATTEMPT
    """How calls are retried (by default, not at all)."""

    def client(self, token: str | None, namespace: str) -> AsyncClient:
        """A client that calls as the bearer of `token` in `namespace`."""
        return AsyncClient(
            self.target,
            namespace=namespace,
            token=token or None,
            tls=self.tls,
            timeout=self.timeout,
            retry=self.retry,
            actor=ACTOR,
        )


async def page_of(client: AsyncClient, paged: PagedRpc[T], token: str) -> Page[T]:
    """One page of a List-style call and the token of the next. The client's list
    methods iterate over every page; a console shows one page at a time and links
    the next by its token, so it sends the call of that single page itself."""
    return await client._call(paged(token))


@frozen
class Failure:
    """A failed call as a page shows it: status, reason and the server's words,
    never a traceback."""

    status: str
    """The gRPC status code's name, e.g. ABORTED."""
    reason: str
    """ErrorInfo.reason, e.g. VERSION_CONFLICT; empty when absent."""
    message: str
    """What the server said."""
    metadata: dict[str, str] = field(default_factory=dict)
    """ErrorInfo.metadata, e.g. current_version."""
    violations: list[tuple[str, str]] = field(default_factory=list)
    """BadRequest field violations: (field, description)."""

    @classmethod
    def of(cls, error: StrataError) -> Failure:
        """The failure a client error describes."""
        return cls(
            error.code.name,
            error.reason,
            error.message,
            dict(error.metadata),
            list(error.violations),
        )

    @property
    def http_status(self) -> int:
        """The HTTP status of a page showing this failure."""
        return HTTP_STATUS.get(self.status, 502)


HTTP_STATUS: dict[str, int] = {
    grpc.StatusCode.INVALID_ARGUMENT.name: 400,
    grpc.StatusCode.OUT_OF_RANGE.name: 400,
    grpc.StatusCode.UNAUTHENTICATED.name: 401,
    grpc.StatusCode.PERMISSION_DENIED.name: 403,
    grpc.StatusCode.NOT_FOUND.name: 404,
    grpc.StatusCode.ALREADY_EXISTS.name: 409,
    grpc.StatusCode.ABORTED.name: 409,
    grpc.StatusCode.FAILED_PRECONDITION.name: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED.name: 429,
    grpc.StatusCode.UNAVAILABLE.name: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED.name: 504,
}


class Roles:
    """The role of each (token, namespace), found by asking the API and kept for
    a minute, so write controls are shown only to those the API would let write.

    The API has no "who am I" call, so the console asks what the roles decide:
    an admin may list the namespace's retention policies; a writer may delete a
    cache key (a random one that does not exist: nothing changes). Whatever is
    shown, every action is still decided by the API when it is sent."""

    def __init__(self, upstream: Upstream, ttl_seconds: float = 60.0) -> None:
        self._upstream = upstream
        self._known: TTLCache[tuple[str, str], Role] = TTLCache(maxsize=4096, ttl=ttl_seconds)

    async def of(self, client: AsyncClient, token: str | None, namespace: str) -> Role:
        """The role of `token` in `namespace`; raises Unauthenticated for a bad
        token and Unavailable when the API cannot be reached."""
        key = (hashlib.sha256((token or "").encode()).hexdigest(), namespace)
        role = self._known.get(key)
        if role is None:
            role = await self._probe(client)
            self._known[key] = role
        return role

    def forget(self, token: str | None) -> None:
        """Drop what is known of `token` (it signed out)."""
        digest = hashlib.sha256((token or "").encode()).hexdigest()
        for key in [key for key in self._known if key[0] == digest]:
            self._known.pop(key, None)

    @staticmethod
    async def _probe(client: AsyncClient) -> Role:
        try:
            await client.list_retention_policies()
            return "admin"
        except PermissionDenied:
            pass
        try:
            await client.cache_delete(f"strata-console-probe-{secrets.token_hex(8)}")
            return "writer"
        except PermissionDenied:
            return "reader"


def at_least(role: Role, needed: Role) -> bool:
    """Whether `role` includes what `needed` may do."""
    return ROLE_RANK[role] >= ROLE_RANK[needed]
