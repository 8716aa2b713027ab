"""Commit: several writes (records, jobs, transcript appends) applied all or nothing
in one database transaction, then the wakeups they owe.

The wakeups follow the commit, never precede it: a consumer, watch or follower woken
earlier could re-read before the writes are visible and go back to sleep.
"""

from __future__ import annotations

from collections.abc import Sequence

from strata_server.core import models
from strata_server.services.topics import Wakeups
from strata_server.storage.ports import CommitRequest, Events, RecordStore


class Commits:
    """Atomic multi-writes on the store's one write path (`RecordStore.commit`)."""

    def __init__(self, store: RecordStore, events: Events) -> None:
        self._store = store
        self._wakeups = Wakeups(events)

    async def commit(
        self,
        namespace: str,
        writes: Sequence[models.Write],
        *,
        actor: models.Actor,
        idempotency: models.Idempotency | None,
    ) -> list[models.WriteResult]:
        """Apply `writes` in order, all or none (preconditions checked first), and wake
        the consumers of the queues enqueued to, the watches of the collections
        written and the followers of the transcripts appended to."""
        results = await self._store.commit(CommitRequest(namespace, writes, actor, idempotency))
        self._wakeups.committed(namespace, writes)
        self._wakeups.children_deleted(namespace, results)
        return results
