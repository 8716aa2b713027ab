"""Per-namespace storage quotas: what counts, and how a refusal gets its figures.

A namespace's usage is the bytes of its record data (JSON, as GetUsage counts it),
of its transcript entries (the transcripts' size_bytes counters) and of its
artifacts as stored (each artifact's stored_size, compressed or not; an artifact
that shares its blob with another still counts, since the namespace references
it). Jobs, audit entries and cache values do not count.

The database keeps the figure: triggers on records, transcripts and artifacts add
each write's change to the namespace's `used_bytes`, in the write's own
transaction, but only for namespaces that have a quota row, and refuse (roll back)
a statement that grows a namespace past its `max_bytes` (the migrations
`0013_quotas` say how, and what it costs a namespace without a quota). So every
write path is covered, the purges and deletes included, and the figure cannot
drift from what is stored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from strata_server.core.errors import InvalidArgument, QuotaExceeded
from strata_server.core.values import frozen

T = TypeVar("T")


@frozen
class Quota:
    """A namespace's storage quota: `max_bytes` (0: none) and what it uses now."""

    namespace: str
    max_bytes: int
    used_bytes: int


MAX_QUOTA_BYTES = 2**62
"""Far above any disk, and safely inside a signed 64-bit counter."""


def check_max_bytes(value: int) -> int:
    """A SetQuota max_bytes: 0 (remove the quota) or a positive byte count."""
    if not 0 <= value <= MAX_QUOTA_BYTES:
        raise InvalidArgument.field(
            "max_bytes", f"must be 0 (no quota) or from 1 to {MAX_QUOTA_BYTES} bytes"
        )
    return value


async def explained(
    namespace: str, lookup: Callable[[str], Awaitable[list[Quota]]], work: Awaitable[T]
) -> T:
    """`work`'s result, or its quota refusal given its figures.

    A trigger refuses a write mid-transaction, where the figures it sees include
    the refused transaction's own earlier statements; after the rollback, `lookup`
    (the adapter's list_quotas) reads what the namespace really stores now.
    """
    try:
        return await work
    except QuotaExceeded as error:
        if error.max_bytes:
            raise
        found = await lookup(namespace)
        quota = found[0] if found else Quota(namespace, 0, 0)
        raise QuotaExceeded(
            namespace, used_bytes=quota.used_bytes, max_bytes=quota.max_bytes
        ) from None
