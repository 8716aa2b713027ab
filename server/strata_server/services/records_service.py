"""The record use cases: single writes that wake their collection's watches, reads,
and WatchRecords, a live stream of a collection's changes from a cursor.

A watch listens on its collection's topic before it first reads, so a write that
commits between a read that found nothing and the wait still wakes it; it then
re-reads the change log from its cursor (the wakeup carries no data). What no
wakeup announces is covered by the collection's shared re-check (`_Settled`).
A cursor older than what the audit log's retention keeps fails with CursorExpired, at the
start or mid-stream, never resuming past the purged changes.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence

from strata_server.core import errors, models
from strata_server.core.filters import Filter
from strata_server.core.idle import Probed
from strata_server.core.values import frozen
from strata_server.services.topics import Wakeups, records_topic
from strata_server.storage.ports import CommitRequest, Events, Recheck, RecordStore

WATCH_BATCH = 500
"""Most audit entries a WatchRecords stream reads per query."""

WATCH_RECHECK_SECONDS = 1.0
"""How often a watched collection is re-checked for settled changes while some are
pending, one read per collection shared by all its watches. It covers what no
wakeup announces: on PostgreSQL a change is read only once every older transaction
of the cluster has ended (storage/postgres/changes.py), which may be after its own
wakeup. A collection with nothing pending rests until a write wakes it (writes on
replicas whose wakeups do not reach this one: the registry's degraded interval)."""


@frozen
class WatchStarted:
    """The first thing a watch yields: the cursor it reads from, so a client that
    reconnects can resume there."""

    cursor: str


class _Settled:
    """A watched collection's re-check probe: its cursor after the newest settled
    change, moving while committed changes wait to settle.

    It starts from `head`, a cursor taken before the first watch listened, and its
    first answer is that cursor, read from nothing: the first answer wakes no one
    (storage/event_rechecks.py), so had it been read, a change settling between a
    watch's read and that first read would be taken as the starting point and never
    reach the watch. It says it is moving, so the next round reads from `head`. Each
    round asks whether changes are pending before it reads them: asked after, the
    older transaction could end between the two, and the round would neither see
    the change nor say one is coming."""

    def __init__(self, store: RecordStore, namespace: str, collection: str, head: str) -> None:
        self._store = store
        self._namespace = namespace
        self._collection = collection
        self._cursor = head
        self._started = False

    async def __call__(self) -> Probed:
        if not self._started:
            self._started = True
            return Probed(self._cursor, moving=True)
        pending = await self._store.changes_pending(self._namespace, self._collection)
        try:
            batch = await self._store.record_changes(
                self._namespace, self._collection, self._cursor, None, WATCH_BATCH
            )
        except errors.CursorExpired as expired:
            # Retention purged past the probe (a short policy): it only tells movement,
            # so it carries on from the horizon; the watches behind it meet the error.
            self._cursor = expired.horizon
            return Probed(self._cursor, moving=True)
        self._cursor = batch.cursor
        return Probed(batch.cursor, moving=pending)


class Records:
    """Records on a RecordStore, with watches woken through an Events port."""

    def __init__(self, store: RecordStore, events: Events) -> None:
        self._store = store
        self._events = events
        self._wakeups = Wakeups(events)

    async def write(
        self,
        namespace: str,
        write: models.RecordWrite,
        *,
        actor: models.Actor,
        idempotency: models.Idempotency | None = None,
    ) -> models.WriteResult:
        """Apply one create, update or delete and wake its collection's watches."""
        # Its commit carries the wakeup of other replicas' watches where it can.
        wakeup = self._wakeups.announce([records_topic(namespace, write.collection)])
        try:
            [result] = await self._store.commit(
                CommitRequest(namespace, [write], actor, idempotency, wakeup.sent)
            )
        except errors.StrataError as error:
            error.metadata.pop("write_index", None)  # meaningful only for Commit
            raise
        wakeup.done()
        self._wakeups.children_deleted(namespace, [result])
        return result

    async def get(self, namespace: str, collection: str, id: str) -> models.Record:
        """One record; NotFound when it does not exist (or has expired)."""
        return await self._store.get_record(namespace, collection, id)

    async def batch_get(
        self, namespace: str, collection: str, ids: Sequence[str]
    ) -> list[models.Record]:
        """The records of `ids` that exist, in no particular order."""
        return await self._store.batch_get_records(namespace, collection, ids)

    async def list_records(
        self, namespace: str, query: models.ListQuery
    ) -> models.Page[models.Record]:
        """A page of a collection's records, filtered and ordered."""
        return await self._store.list_records(namespace, query)

    async def count(self, namespace: str, collection: str, filter: Filter | None) -> int:
        """How many of a collection's records match `filter`."""
        return await self._store.count_records(namespace, collection, filter)

    async def search(
        self, namespace: str, query: models.SearchQuery
    ) -> models.Page[models.SearchHit]:
        """A page of a collection's records ranked by full-text match."""
        return await self._store.search_records(namespace, query)

    async def watch(
        self, namespace: str, collection: str, filter: Filter | None, from_cursor: str
    ) -> AsyncGenerator[WatchStarted | models.RecordChange, None]:
        """The changes of a collection from `from_cursor` (empty: from now), for as
        long as the caller iterates: first WatchStarted, then each change."""
        # The head may come before listening: a change that commits after it lies
        # after it. Listening before the first read: a write committed between a
        # read that found nothing and the wait still wakes the stream.
        head = await self._store.changes_head(namespace)
        wake = records_topic(namespace, collection)
        settled = _Settled(self._store, namespace, collection, head)
        recheck = Recheck(wake, settled, every=WATCH_RECHECK_SECONDS)
        with self._events.listen(wake, recheck=recheck) as wakeups:
            cursor = from_cursor or head
            # Reject a foreign cursor, or one the audit log's retention has purged
            # past (CursorExpired), now, before telling the client where it starts.
            await self._store.record_changes(namespace, collection, cursor, filter, 1)
            yield WatchStarted(cursor)
            while True:
                batch = await self._store.record_changes(
                    namespace, collection, cursor, filter, WATCH_BATCH
                )
                for change in batch.changes:
                    yield change
                advanced = batch.cursor != cursor
                cursor = batch.cursor
                if not advanced:
                    await wakeups.wait(None)
