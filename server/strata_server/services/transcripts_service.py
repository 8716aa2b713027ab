"""The transcript use cases: create, append (waking followers on every replica),
seal, delete, search, and reading a transcript from a seq, live when following.

A read keeps only a cursor (the next seq to deliver) and reads one byte-bounded
batch at a time from the database (an archived transcript's from its segments, one
segment at a time: services/archive_service.py), so memory is bounded by the batch
size whatever the transcript's length; the caller takes each batch before the next
but one is read, so a slow reader is never buffered far ahead of. A follower listens on its
transcript's topic before it first reads: an append on any replica wakes that topic
after it commits, and the follower re-reads the database (the wakeup carries no
data). An idle follower reads nothing: a wakeup that never came (the events channel
between replicas was down) is covered by the transcript's re-check, one query
shared by all its followers (storage/memory/events.py). Between reads a follower
holds no database connection, only its listener, which the `with` block releases
however the read ends (a cancelled call included).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from strata_server.core import idle
from strata_server.core import transcript_rules as transcripts
from strata_server.core.errors import DataLoss
from strata_server.core.models import Actor, Idempotency, Page
from strata_server.core.values import frozen
from strata_server.services.topics import Wakeups, transcript_topic
from strata_server.storage.ports import Events, Recheck, TranscriptStore
from strata_server.storage.ports.write_context import WriteContext


@frozen
class UpToDate:
    """A read has delivered every entry there is (`next_seq` is the next to come)."""

    next_seq: int


@frozen
class Sealed:
    """The transcript is sealed and every entry delivered: the read ends."""

    transcript: transcripts.Transcript


@frozen
class Heartbeat:
    """An idle follower is still there (sent every heartbeat interval without news),
    so proxies keep the stream and the client knows the server is alive."""

    next_seq: int
    time: datetime


ReadItem = transcripts.EntryBatch | UpToDate | Sealed | Heartbeat
"""What a read yields, in the order the client should see it."""


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Consume the outcome of a read no one awaits, so its error is not logged as
    never retrieved."""
    if not task.cancelled():
        task.exception()


def _never() -> bool:
    return False


ArchivedRead = Callable[[str, str, int, int], AsyncIterator[transcripts.EntryBatch]]
"""An archived transcript's batches from a seq (services/archive_service.py)."""


async def _no_archive(
    namespace: str, id: str, from_seq: int, max_bytes: int
) -> AsyncIterator[transcripts.EntryBatch]:
    return
    yield


class Transcripts:
    """Transcripts on a TranscriptStore, with followers woken through an Events port;
    an archived transcript's entries are read through `archived`."""

    def __init__(
        self,
        store: TranscriptStore,
        events: Events,
        *,
        heartbeat_seconds: float,
        archived: ArchivedRead = _no_archive,
    ) -> None:
        self._store = store
        self._archived = archived
        self._events = events
        self._wakeups = Wakeups(events)
        self._heartbeat = heartbeat_seconds
        # The followed transcripts' re-checks fall due together: one query per round.
        self._states = idle.Batched(store.transcript_states)

    async def create(
        self,
        namespace: str,
        new: transcripts.NewTranscript,
        *,
        actor: Actor,
        idempotency: Idempotency | None,
    ) -> transcripts.Transcript:
        """Start an empty transcript."""
        return await self._store.create_transcript(namespace, new, WriteContext(actor, idempotency))

    async def get(self, namespace: str, id: str) -> transcripts.Transcript:
        """One transcript's metadata (not its entries)."""
        return await self._store.get_transcript(namespace, id)

    async def list_transcripts(
        self, namespace: str, query: transcripts.TranscriptListQuery
    ) -> Page[transcripts.Transcript]:
        """A page of transcripts, newest first, optionally of one owner and/or parent."""
        return await self._store.list_transcripts(namespace, query)

    async def append(
        self,
        namespace: str,
        append: transcripts.AppendEntries,
        *,
        actor: Actor,
        idempotency: Idempotency | None,
    ) -> transcripts.Appended:
        """Append entries (gapless seqs) and wake the transcript's followers."""
        # With PostgreSQL events the append's own commit tells the other replicas.
        wake = self._wakeups.transcript_appended(namespace, append.id)
        appended = await self._store.append_entries(
            namespace, append, WriteContext(actor, idempotency, wake.sent)
        )
        wake.done()
        return appended

    async def seal(self, namespace: str, id: str, *, actor: Actor) -> transcripts.Transcript:
        """Refuse further appends; followers get `Sealed` and end."""
        transcript = await self._store.seal_transcript(namespace, id, actor=actor)
        self._wakeups.transcript_changed(namespace, id)
        return transcript

    async def delete(self, namespace: str, id: str, *, actor: Actor) -> None:
        """Remove a transcript and its entries; followers end with NotFound."""
        await self._store.delete_transcript(namespace, id, actor=actor)
        self._wakeups.transcript_changed(namespace, id)

    async def search(
        self, namespace: str, query: transcripts.TranscriptSearch
    ) -> Page[transcripts.TranscriptHit]:
        """A page of entries ranked by full-text match."""
        return await self._store.search_transcripts(namespace, query)

    async def read(
        self,
        namespace: str,
        id: str,
        from_seq: int,
        max_bytes: int,
        *,
        follow: bool,
        ended: Callable[[], bool] = _never,
    ) -> AsyncGenerator[ReadItem, None]:
        """The entries from `from_seq` in batches of about `max_bytes`, then UpToDate;
        Sealed ends a sealed transcript's read. Following, the read stays open for new
        entries, with Heartbeats while idle, until the caller stops iterating or
        `ended` (checked after each wait) says the caller is gone."""
        loop = asyncio.get_running_loop()
        # Listening before the first read: an append that commits between a read
        # that found nothing and the wait still wakes the stream.
        wake = transcript_topic(namespace, id)
        recheck = Recheck(wake, functools.partial(self._version, namespace, id))
        with self._events.listen(wake, recheck=recheck) as wakeups:
            transcript = await self._store.get_transcript(namespace, id)
            cursor = transcripts.start_seq(from_seq, transcript.next_seq)
            if cursor > transcript.next_seq and (not follow or transcript.sealed):
                raise transcripts.past_end(id, cursor, transcript.next_seq)
            told_up_to_date = False  # for the current cursor
            quiet_since = loop.time()  # when the stream last sent anything
            look = True  # whether entries may be waiting at the cursor
            ahead: asyncio.Task[transcripts.EntryBatch | None] | None = None  # the next batch
            try:
                while True:
                    if look:
                        if ahead is not None:
                            batch, ahead = await ahead, None
                        else:
                            batch = await self._store.read_batch(namespace, id, cursor, max_bytes)
                        if batch is not None:
                            cursor = batch.next_seq
                            # Read the next batch while this one is written, so the
                            # write and the database round trip no longer take turns
                            # (bench/transcripts.py measures it). At most two batches
                            # are held, so memory stays bounded.
                            ahead = asyncio.create_task(
                                self._store.read_batch(namespace, id, cursor, max_bytes)
                            )
                            yield batch
                            told_up_to_date = False
                            quiet_since = loop.time()
                            continue
                    # Nothing at the cursor: where does the transcript stand? (NotFound
                    # once it is deleted, which ends the read with that error.)
                    transcript = await self._store.get_transcript(namespace, id)
                    if transcript.archive_time is not None and transcript.next_seq > cursor:
                        # Archived (before the read or during it): the same batches,
                        # from its segments, at most two segments in memory.
                        moved = cursor
                        async for batch in self._archived(namespace, id, cursor, max_bytes):
                            cursor = batch.next_seq
                            yield batch
                            told_up_to_date = False
                            quiet_since = loop.time()
                        if (
                            cursor == moved
                            and (await self._store.get_transcript(namespace, id)).archive_time
                            is not None
                        ):
                            raise DataLoss(f"the archive of transcript {id} lacks seq {cursor}")
                        continue
                    if transcript.next_seq > cursor:
                        look = True  # committed between the two reads
                        continue
                    if transcript.sealed:
                        yield Sealed(transcript)
                        return
                    if cursor == transcript.next_seq and not told_up_to_date:
                        yield UpToDate(transcript.next_seq)
                        told_up_to_date = True
                        quiet_since = loop.time()
                    if not follow:
                        return
                    # Idle until a wakeup (an append, seal or delete on any replica, or
                    # the topic's shared re-check): heartbeats only, no database read.
                    while True:
                        due = idle.heartbeat_at(quiet_since, self._heartbeat) - loop.time()
                        if due <= 0:
                            yield Heartbeat(cursor, datetime.now(UTC))
                            quiet_since = loop.time()
                            continue
                        woke = await wakeups.wait(due)
                        if ended():
                            return
                        if woke:
                            break
                    look = True
            finally:
                if ahead is not None:  # the read ended (or failed) with a read in flight
                    ahead.add_done_callback(_retrieve)
                    ahead.cancel()

    async def _version(self, namespace: str, id: str) -> tuple[int, bool] | None:
        """What the followers of a transcript re-check: its next seq and whether it is
        sealed (None once it is gone)."""
        return await self._states.get((namespace, id))
