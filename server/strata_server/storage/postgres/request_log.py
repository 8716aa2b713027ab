"""Idempotent retries: claiming a request_id inside the caller's transaction.

Shared by Commit and Enqueue, which store different result shapes: the claim hands
back the stored JSON and each caller decodes its own.
"""

from __future__ import annotations

from typing import Any

from strata_server.core.errors import Conflict, InvalidArgument
from strata_server.core.models import Idempotency
from strata_server.storage.postgres import queries
from strata_server.storage.postgres.pool import Conn
from strata_server.storage.postgres.record_rows import now

CLAIM_ATTEMPTS = 3


async def claim_request(conn: Conn, namespace: str, idempotency: Idempotency) -> Any | None:
    """Claim the request_id for this transaction (None), or return the result JSON
    stored by the request that already used it.

    Insert-first: two retries of one request race on the unique key; the second
    waits until the first commits, then reads its fingerprint and result (or, if
    the first rolled back, claims the id itself)."""
    for _ in range(CLAIM_ATTEMPTS):
        cursor = await conn.execute(
            queries.CLAIM_REQUEST,
            (namespace, idempotency.request_id, idempotency.fingerprint, now()),
            prepare=True,
        )
        if cursor.rowcount == 1:
            return None
        cursor = await conn.execute(
            queries.SELECT_REQUEST, (namespace, idempotency.request_id), prepare=True
        )
        row = await cursor.fetchone()
        if row is None:  # removed (by retention) between the two statements: claim again
            continue
        fingerprint, stored = row
        if fingerprint != idempotency.fingerprint:
            raise InvalidArgument.field("request_id", "was already used for a different request")
        return stored
    raise Conflict("the request_id is being claimed and released concurrently; retry")
