"""Bearer tokens as use cases: managing them (`TokenAdmin`) and checking a call's
secret (`Verifier`) without a database read per call.

How a revocation reaches every replica within a second:
1. `TokenAdmin.revoke` commits the revocation, makes its own replica's verifier
   forget at once, then notifies `TOPIC` on the events port (Redis pub/sub or
   PostgreSQL NOTIFY between replicas; in process on the embedded shape).
2. Each replica's `Verifier.watch` hears it and forgets every token it knew; the
   next call with any token reads that token's row once, and sees the revocation.
3. Lost wakeups (an events connection down at the wrong moment) and revocations
   made outside a server (`strata token revoke` writes the database directly) are
   caught by a shared re-check: every `recheck_seconds` one small query compares
   how many tokens exist and how many are revoked with what it saw last.

A read racing a revocation cannot put a stale entry back: each read notes the
cache's generation before it starts and keeps its result only if no forget
happened meanwhile. Expiry needs no event: every call compares the cached
expire_time with the clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from strata_server.core.access_rules import Principal
from strata_server.core.errors import StrataError, Unauthenticated
from strata_server.core.models import Actor, Page
from strata_server.core.token_rules import NewToken, Token, new_secret, secret_hash, well_formed
from strata_server.services.topics import TOKENS_REVOKED
from strata_server.storage.ports import Events, TokenStore

log = structlog.get_logger("strata.access")

TOPIC = TOKENS_REVOKED
"""The events topic a revocation is announced on."""
MAX_KNOWN = 100_000
"""Most tokens (and, separately, unknown secrets) a verifier remembers; past it the
memory is dropped and refilled, one read per token."""


@dataclass(frozen=True, slots=True)
class Refused:
    """A remembered secret that is not accepted, and why (never the secret)."""

    reason: str


class TokenAdmin:
    """Create, list and revoke tokens (AdminService and `strata token`)."""

    def __init__(
        self,
        store: TokenStore,
        events: Events | None = None,
        forget: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._events = events
        self._forget = forget

    async def create(self, token: NewToken, *, actor: Actor) -> tuple[Token, str]:
        """Store a new token; returns it and its secret (shown this once, kept nowhere)."""
        secret = new_secret()
        stored = await self._store.create_token(token, secret_hash(secret), actor=actor)
        return stored, secret

    async def list(self, after: str | None, limit: int, *, inactive: bool) -> Page[Token]:
        """A page of tokens by name (without secrets: none are kept)."""
        return await self._store.list_tokens(after, limit, inactive=inactive)

    async def revoke(self, name: str, *, actor: Actor) -> Token:
        """Revoke a token and tell every replica to forget what it knew of tokens."""
        token = await self._store.revoke_token(name, actor=actor)
        if self._forget is not None:
            self._forget()  # this replica at once, before the call returns
        if self._events is not None:
            self._events.notify(TOPIC)
        return token


class Verifier:
    """Turns a bearer secret into the Principal of its token, from memory.

    Run `watch` as a background task for as long as the verifier is used.
    """

    def __init__(self, store: TokenStore, events: Events, *, recheck_seconds: float) -> None:
        self._store = store
        self._events = events
        self._recheck = recheck_seconds
        self._known: dict[str, Principal | Refused] = {}
        self._unknown: dict[str, Principal | Refused] = {}
        self._loading: dict[str, asyncio.Future[Principal | Refused]] = {}
        self._generation = 0

    async def authenticate(self, secret: str) -> Principal:
        """The principal of the token with this secret; Unauthenticated when the
        secret is malformed, unknown, revoked or expired."""
        if not well_formed(secret):
            raise Unauthenticated("the bearer token is malformed")
        key = secret_hash(secret)
        found = self._known.get(key) or self._unknown.get(key) or await self._load(key)
        if isinstance(found, Refused):
            raise Unauthenticated(found.reason)
        if found.expire_time is not None and datetime.now(UTC) >= found.expire_time:
            raise Unauthenticated(f"token {found.name!r} has expired")
        return found

    def forget(self) -> None:
        """Drop everything remembered; reads in flight will not store their results."""
        self._generation += 1
        self._known = {}
        self._unknown = {}

    async def watch(self) -> None:
        """Forget on every revocation event, and whenever the shared re-check sees the
        tokens table change behind the events' back. Runs until cancelled."""
        seen = await self._fingerprint()
        with self._events.listen(TOPIC) as revocations:
            while True:
                if await revocations.wait(self._recheck):
                    self.forget()
                now = await self._fingerprint()
                if now is not None and now != seen:
                    self.forget()
                    seen = now

    async def _fingerprint(self) -> tuple[int, int] | None:
        try:
            return await self._store.fingerprint()
        except StrataError as error:
            log.warning("tokens not re-checked", error=error.message)
            return None

    async def _load(self, key: str) -> Principal | Refused:
        """Read one token, sharing the read among concurrent callers of the same key."""
        loading = self._loading.get(key)
        if loading is None:
            loading = asyncio.ensure_future(self._read(key))
            self._loading[key] = loading
            loading.add_done_callback(lambda _: self._loading.pop(key, None))
        return await asyncio.shield(loading)

    async def _read(self, key: str) -> Principal | Refused:
        generation = self._generation
        token = await self._store.find_token(key)
        found: Principal | Refused
        if token is None:
            found = Refused("the bearer token is not known")
        elif token.revoke_time is not None:
            found = Refused(f"token {token.name!r} was revoked")
        else:
            found = token.principal()
        if generation == self._generation:
            memory = self._unknown if token is None else self._known
            if len(memory) >= MAX_KNOWN:
                memory.clear()
            memory[key] = found
        return found
