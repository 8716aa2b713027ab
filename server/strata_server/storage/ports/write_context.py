"""How a write is made, as the queue, transcripts and artifacts ports take it."""

from __future__ import annotations

from collections.abc import Sequence

from strata_server.core.models import Actor, Idempotency
from strata_server.core.values import frozen


@frozen
class WriteContext:
    """Who makes a write and what it answers, beside what it writes.

    `actor` goes into the write's audit entries. With `idempotency`, a repeat of the
    same request_id and fingerprint returns the first result and writes nothing (the
    same request_id with another fingerprint is InvalidArgument). `notices`
    (Events.commit_notice payloads) are sent with the write's commit by a store
    that can, from the write's own statement, and ignored by one that can't.

    One object, so that the ports, both engines' adapters and their callers name
    these three alike instead of each writing out the same keyword parameters.
    """

    actor: Actor
    idempotency: Idempotency | None = None
    notices: Sequence[str] = ()

    @property
    def request_id(self) -> str | None:
        """The request_id an audit entry records, if any."""
        return self.idempotency.request_id if self.idempotency is not None else None

    @property
    def notice(self) -> str | None:
        """The one notice of a write to a single topic (a transcript's append), for a
        statement that sends one."""
        return self.notices[0] if self.notices else None
