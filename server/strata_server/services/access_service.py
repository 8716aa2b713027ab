"""Bearer tokens as use cases: managing them (`TokenAdmin`) and checking a call's
secret (`Verifier`) without a database read per call.

How a revocation reaches every server process within a second:
1. `TokenAdmin.revoke` commits the revocation, makes its own process's verifier
   forget at once, then sends `TOPIC` on the events port and waits until the
   channel has it (`Events.send`: Redis pub/sub, else PostgreSQL NOTIFY; in
   process on a SQLite file without Redis). AdminService.RevokeToken and
   `strata token revoke` take this same path: the CLI opens the events channel
   the configuration names, as a server would, so a revocation made without any
   server is announced like one made through a server. It waits for the send
   because a CLI exits next, and a background sender would die with it.
2. Each process's `Verifier.watch` hears it and forgets every token it knew; the
   next call with any token reads that token's row once, and sees the revocation.
3. Where no event can come, one small query is the safety net: the tokens topic's
   re-check (storage/event_rechecks.py, shared like every topic's) compares how
   many tokens exist and how many are revoked with its last answer, and a change
   wakes the verifier as an event would. Its interval is the server's
   `recheck_seconds` while the events channel carries other processes' news
   (a wakeup lost at the wrong moment is all it covers). It falls to at most a
   second where they cannot arrive: every UNTOLD_SECONDS on a SQLite file without
   Redis, whose other writers (`strata token revoke`, the sibling processes of
   `serve --workers`) cannot tell this one; and every second (the events port's
   degraded interval, or UNTOLD_SECONDS if shorter) while the channel is down or
   the SQLite file is shared. That is one query per process per period, however
   many calls it serves, never one per call.

A read racing a revocation cannot put a stale entry back: each read notes the
cache's generation before it starts and keeps its result only if no forget
happened meanwhile. Expiry needs no event: every call compares the cached
expire_time with the clock.

Every call of an accepted token is recalled by its secret (`recall`), not by the
secret's hash: the SHA-256 was most of what checking a token cost a call, and a
server's memory holds the secrets of its recent calls anyway (their metadata, freed
but not wiped). Only secrets the database accepted are kept so; unknown or revoked
ones are remembered by hash, and the database holds nothing but hashes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from strata_server.core.access_rules import Principal
from strata_server.core.errors import Unauthenticated, Unavailable
from strata_server.core.models import Actor, Page
from strata_server.core.token_rules import NewToken, Token, new_secret, secret_hash, well_formed
from strata_server.services.topics import TOKENS_REVOKED
from strata_server.storage.ports import Events, Recheck, TokenStore

log = structlog.get_logger("strata.access")

TOPIC = TOKENS_REVOKED
"""The events topic a revocation is announced on."""
UNTOLD_SECONDS = 0.5
"""The tokens re-check's interval where other processes' revocations cannot arrive
as events (a SQLite file without Redis): half the promised second, so that a
revocation committed just after one probe is seen by the next one well in time."""
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
        """Revoke a token and tell every process to forget what it knew of tokens;
        returns once the events channel has taken the news (module docstring). A
        channel that cannot be reached fails nothing: the revocation is committed,
        and the servers' re-check finds it (within a second while their channel is
        down too, else within their `recheck_seconds`)."""
        token = await self._store.revoke_token(name, actor=actor)
        if self._forget is not None:
            self._forget()  # this process at once, before the call returns
        if self._events is not None:
            try:
                await self._events.send(TOPIC)
            except Unavailable as error:
                log.warning(
                    "revocation not announced: servers see it at their next tokens re-check",
                    token=name,
                    error=error.message,
                )
                self._events.notify(TOPIC)  # a server's sender sends it once it reconnects
        return token


class Verifier:
    """Turns a bearer secret into the Principal of its token, from memory.

    Run `watch` as a background task for as long as the verifier is used.
    `recheck_seconds` is the tokens re-check's interval while other processes'
    revocations arrive as events; `told` says whether they can (False for an
    in-process events port), so the re-check runs every UNTOLD_SECONDS at most.
    """

    def __init__(
        self, store: TokenStore, events: Events, *, recheck_seconds: float, told: bool
    ) -> None:
        self._store = store
        self._events = events
        self._recheck = recheck_seconds if told else min(recheck_seconds, UNTOLD_SECONDS)
        self._known: dict[str, Principal | Refused] = {}
        self._unknown: dict[str, Principal | Refused] = {}
        self._accepted: dict[str, Principal] = {}  # by secret (module docstring)
        self._loading: dict[str, asyncio.Future[Principal | Refused]] = {}
        self._generation = 0

    async def authenticate(self, secret: str) -> Principal:
        """The principal of the token with this secret; Unauthenticated when the
        secret is malformed, unknown, revoked or expired."""
        key = secret_hash(secret)
        found = self._known.get(key) or self._unknown.get(key)
        if isinstance(found, Principal):
            # Read before this call, under the current generation: forget() clears both.
            if len(self._accepted) >= MAX_KNOWN:
                self._accepted.clear()
            self._accepted[secret] = found
        elif found is None:
            # Only a well-formed secret is ever remembered, so its shape is checked
            # before a read, not on every call.
            if not well_formed(secret):
                raise Unauthenticated("the bearer token is malformed")
            found = await self._load(key)
        if isinstance(found, Refused):
            raise Unauthenticated(found.reason)
        if found.expire_time is not None and datetime.now(UTC) >= found.expire_time:
            raise Unauthenticated(f"token {found.name!r} has expired")
        return found

    def recall(self, secret: str) -> Principal | None:
        """The principal of a secret `authenticate` accepted since the last forget,
        while its token has not expired; None for any other (`authenticate` then
        answers, with the reason). Awaits nothing, for the common call."""
        found = self._accepted.get(secret)
        expire_time = found.expire_time if found is not None else None
        if expire_time is not None and datetime.now(UTC) >= expire_time:
            return None
        return found

    def forget(self) -> None:
        """Drop everything remembered; reads in flight will not store their results."""
        self._generation += 1
        self._known = {}
        self._unknown = {}
        self._accepted = {}

    async def watch(self) -> None:
        """Forget on every revocation event, and whenever the tokens topic's re-check
        sees the table change behind the events' back. Runs until cancelled.

        The re-check is the events port's own, for one topic: so it speeds up to the
        degraded interval by itself while the channel is down, like every topic's.
        Its `every` is the interval of this safety net (the port's default one, for
        streams, is minutes long)."""
        recheck = Recheck(TOPIC, self._store.fingerprint, every=self._recheck)
        with self._events.listen(TOPIC, recheck=recheck) as revocations:
            while True:
                await revocations.wait(None)
                self.forget()

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
