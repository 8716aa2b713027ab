"""Idempotent retries on SQLite: the request_log read and write that Commit and
Enqueue both make inside their write transaction (the single writer serialises
retries of one request, so a read-then-insert cannot race here).

Each caller stores and decodes its own result shape as JSON.
"""

from __future__ import annotations

import json
from typing import Any

from strata_server.core.errors import InvalidArgument
from strata_server.core.models import Idempotency
from strata_server.storage.sqlite.connection import Transaction
from strata_server.storage.sqlite.shared_sql import INSERT_REQUEST, SELECT_REQUEST


async def stored_result(tx: Transaction, namespace: str, idempotency: Idempotency) -> Any | None:
    """The result JSON of the request that already used this request_id, or None;
    InvalidArgument when it came with a different request."""
    seen = await tx.fetchall(SELECT_REQUEST, (namespace, idempotency.request_id))
    if not seen:
        return None
    fingerprint, stored = seen[0]
    if fingerprint != idempotency.fingerprint:
        raise InvalidArgument.field("request_id", "was already used for a different request")
    return json.loads(stored)


async def store_result(
    tx: Transaction, namespace: str, idempotency: Idempotency, result: Any, now_us: int
) -> None:
    """Record this request's result under its request_id, in the same transaction."""
    text = json.dumps(result, separators=(",", ":"), ensure_ascii=False)
    await tx.execute(
        INSERT_REQUEST,
        (namespace, idempotency.request_id, idempotency.fingerprint, text, now_us),
    )
